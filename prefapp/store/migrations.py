"""The schema as an append-only list of small named steps, applied on open and recorded in `_migrations`, so a
fresh file and an upgraded old file end up identical. Never edit a step that has shipped; add a new one."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb

from prefapp.store.records import _now, _transaction

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Schema. Append only: the names are recorded in every database file that has applied them.

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_create_prompts",
        """
        CREATE SEQUENCE prompts_id_seq START 1;
        CREATE TABLE prompts (
            id BIGINT PRIMARY KEY DEFAULT nextval('prompts_id_seq'),
            messages JSON NOT NULL,          -- [{"role", "content"}, ...], the last one is the user turn
            hash VARCHAR NOT NULL UNIQUE,    -- sha256 of the canonical JSON, for dedup
            source VARCHAR NOT NULL,         -- 'demo', 'typed', 'file:x.jsonl', ...
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "002_create_pairs",
        """
        CREATE TABLE pairs (
            id VARCHAR PRIMARY KEY,          -- uuid4 hex, safe to put in a page
            prompt_id BIGINT NOT NULL,
            prompt JSON NOT NULL,            -- snapshot of the prompt's messages
            response_a VARCHAR NOT NULL,     -- as shown on the left
            response_b VARCHAR NOT NULL,     -- as shown on the right
            swapped BOOLEAN NOT NULL,        -- true when side A shows the 2nd sample of the generate call
            model_id VARCHAR NOT NULL,
            adapter_id VARCHAR,              -- NULL for the base model
            sampling JSON NOT NULL,          -- temperature, top_p, max_new_tokens, ...
            served_to VARCHAR,               -- annotator the pair was generated for, if known
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "003_create_votes",
        """
        CREATE SEQUENCE votes_id_seq START 1;
        CREATE TABLE votes (
            id BIGINT PRIMARY KEY DEFAULT nextval('votes_id_seq'),
            pair_id VARCHAR NOT NULL,
            annotator VARCHAR NOT NULL,
            choice VARCHAR NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'both_bad')),
            prompt_id BIGINT NOT NULL,       -- lets exports split train/test by prompt
            prompt JSON NOT NULL,            -- from here to shown_at: what the annotator saw
            response_a VARCHAR NOT NULL,
            response_b VARCHAR NOT NULL,
            swapped BOOLEAN NOT NULL,
            model_id VARCHAR NOT NULL,
            adapter_id VARCHAR,
            sampling JSON NOT NULL,
            shown_at TIMESTAMPTZ NOT NULL,   -- the pair's created_at
            created_at TIMESTAMPTZ NOT NULL,
            UNIQUE (pair_id, annotator)      -- a double click or a retry never makes a second vote
        );
        """,
    ),
    (
        "004_create_rounds",
        """
        CREATE TABLE rounds (
            id INTEGER PRIMARY KEY,          -- 1, 2, ...: the round number shown to users
            status VARCHAR NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
            base_model VARCHAR NOT NULL,
            adapter_path VARCHAR,
            export_path VARCHAR,
            n_pairs INTEGER NOT NULL,
            config JSON NOT NULL,
            metrics JSON,
            error VARCHAR,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ
        );
        """,
    ),
    (
        "005_rounds_provenance",  # what a round was trained on: dataset hash + counts, export, adapter dir, resumes
        "ALTER TABLE rounds ADD COLUMN provenance JSON;",
    ),
    (
        "006_probes_and_vote_notes",
        """
        ALTER TABLE pairs ADD COLUMN probe_of VARCHAR;  -- a repeat probe: the voted pair it repeats, sides swapped
        CREATE TABLE vote_notes (
            vote_id BIGINT PRIMARY KEY,      -- votes.id; deleted with the vote on undo
            reason VARCHAR,                  -- the annotator's optional free-text reason
            written_chosen VARCHAR           -- a human-written (or edited) response that replaces `chosen`
        );
        """,
    ),
    (
        "050_create_feedback",  # labelled completions: chat thumbs, imported unpaired data (see store/feedback.py)
        """
        CREATE SEQUENCE feedback_id_seq START 1;
        CREATE TABLE feedback (
            id BIGINT PRIMARY KEY DEFAULT nextval('feedback_id_seq'),
            key VARCHAR NOT NULL UNIQUE,     -- sha256 of (prompt, completion, annotator): one opinion per reply
            prompt JSON NOT NULL,            -- [{"role", "content"}, ...], the last one is the user turn
            completion VARCHAR NOT NULL,
            label BOOLEAN NOT NULL,          -- true: desirable, false: undesirable
            source VARCHAR NOT NULL,         -- 'chat', 'import:x.jsonl', ...
            annotator VARCHAR,               -- who rated it; NULL for imported data
            provenance JSON NOT NULL,        -- model_id, adapter_id, sampling, dataset, row, ...
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "030_store_sessions",  # each run of a store: a clean shutdown records its figures (prefapp.store.durability)
        """
        CREATE TABLE store_sessions (
            id BIGINT PRIMARY KEY,           -- 1, 2, ...: one per run that opened the file
            opened_at TIMESTAMPTZ NOT NULL,
            pid INTEGER,
            closed_at TIMESTAMPTZ,           -- NULL: still running, or the run stopped without closing the store
            votes BIGINT,                    -- figures at the clean shutdown
            rounds INTEGER,
            pairs BIGINT,
            prompts BIGINT
        );
        """,
    ),
    (
        "040_create_imported_pairs",  # pairs labelled elsewhere, with provenance (see store/imports.py)
        """
        CREATE SEQUENCE imported_pairs_id_seq START 1;
        CREATE TABLE imported_pairs (
            id BIGINT PRIMARY KEY DEFAULT nextval('imported_pairs_id_seq'),
            hash VARCHAR NOT NULL UNIQUE,    -- sha256 of (prompt, chosen, rejected): a re-import adds nothing
            prompt JSON NOT NULL,            -- [{"role", "content"}, ...], the last one is the user turn
            chosen VARCHAR NOT NULL,
            rejected VARCHAR NOT NULL,
            source VARCHAR NOT NULL,         -- file name or Hub dataset id (with its split)
            format VARCHAR NOT NULL,         -- the format it was read as: 'hh-rlhf', 'sharegpt', ...
            source_row BIGINT NOT NULL,      -- 0-based row of the source table
            file_sha256 VARCHAR NOT NULL,    -- of the source's bytes
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "060_pair_backends",  # which engine wrote each pair: "local" or the OpenAI-compatible server's URL, and model
        """
        CREATE TABLE pair_backends (
            pair_id VARCHAR PRIMARY KEY,     -- pairs.id (a probe has none: it repeats its original's responses)
            backend VARCHAR NOT NULL,        -- "local" (in-process transformers) or the engine's base URL
            model VARCHAR NOT NULL           -- the model name the engine was asked for (base; adapter in pairs)
        );
        """,
    ),
    (
        "020_eval_prompts",  # held-out prompts: never served for labelling (their own table, so no query can)
        """
        CREATE SEQUENCE eval_prompts_id_seq START 1;
        CREATE TABLE eval_prompts (
            id BIGINT PRIMARY KEY DEFAULT nextval('eval_prompts_id_seq'),
            messages JSON NOT NULL,
            hash VARCHAR NOT NULL UNIQUE,    -- same sha256 as prompts.hash: a prompt is in one set, not both
            source VARCHAR NOT NULL,         -- 'demo', 'file:x.jsonl', 'holdout:import:y.csv', ...
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "021_eval_pairs_and_votes",  # blind comparisons of two policies; kept apart from training votes
        """
        CREATE TABLE eval_pairs (
            id VARCHAR PRIMARY KEY,
            eval_prompt_id BIGINT NOT NULL,
            prompt JSON NOT NULL,            -- snapshot of the eval prompt's messages
            policy_a VARCHAR NOT NULL,       -- 'base' or 'round-N': the policy shown on side A
            policy_b VARCHAR NOT NULL,       -- the policy shown on side B
            response_a VARCHAR NOT NULL,
            response_b VARCHAR NOT NULL,
            swapped BOOLEAN NOT NULL,        -- true when the comparison's first policy is shown on side B
            model_id VARCHAR NOT NULL,       -- the base model both policies share
            sampling JSON NOT NULL,
            served_to VARCHAR,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE SEQUENCE eval_votes_id_seq START 1;
        CREATE TABLE eval_votes (
            id BIGINT PRIMARY KEY DEFAULT nextval('eval_votes_id_seq'),
            pair_id VARCHAR NOT NULL,
            annotator VARCHAR NOT NULL,
            judge VARCHAR NOT NULL CHECK (judge IN ('human', 'simulated')),
            choice VARCHAR NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'both_bad')),
            eval_prompt_id BIGINT NOT NULL,
            prompt JSON NOT NULL,            -- from here to shown_at: what the judge saw
            policy_a VARCHAR NOT NULL,
            policy_b VARCHAR NOT NULL,
            response_a VARCHAR NOT NULL,
            response_b VARCHAR NOT NULL,
            swapped BOOLEAN NOT NULL,
            model_id VARCHAR NOT NULL,
            sampling JSON NOT NULL,
            shown_at TIMESTAMPTZ NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            UNIQUE (pair_id, annotator)
        );
        """,
    ),
    (
        "022_round_checks_and_promotions",
        """
        CREATE TABLE round_checks (
            round_id INTEGER PRIMARY KEY,    -- rounds.id
            checks JSON NOT NULL,            -- prefapp.evaluation.checks.RoundChecks as a dict
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE SEQUENCE promotions_id_seq START 1;
        CREATE TABLE promotions (
            id BIGINT PRIMARY KEY DEFAULT nextval('promotions_id_seq'),
            round_id INTEGER NOT NULL,       -- the round made the generator
            admin VARCHAR,                   -- who did it, when known
            verdict VARCHAR NOT NULL,        -- the gate's verdict at that moment
            flags JSON NOT NULL,             -- the checks' flags at that moment
            confirmed BOOLEAN NOT NULL,      -- true: the gate refused and the admin confirmed explicitly
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "010_vote_tallies",  # figures kept up to date by each vote, so a click never counts a million votes
        """
        ALTER TABLE pairs ADD COLUMN n_votes INTEGER DEFAULT 0;    -- votes on this pair
        ALTER TABLE prompts ADD COLUMN n_votes INTEGER DEFAULT 0;  -- votes on this prompt's pairs (probes included)
        CREATE TABLE vote_tallies (          -- votes per annotator and choice: the Label tab's counters
            annotator VARCHAR NOT NULL,
            choice VARCHAR NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (annotator, choice)
        );
        UPDATE pairs SET n_votes = c.n FROM (SELECT pair_id, count(*) AS n FROM votes GROUP BY pair_id) c
            WHERE pairs.id = c.pair_id;
        UPDATE prompts SET n_votes = c.n FROM (SELECT prompt_id, count(*) AS n FROM votes GROUP BY prompt_id) c
            WHERE prompts.id = c.prompt_id;
        INSERT INTO vote_tallies SELECT annotator, choice, count(*) FROM votes GROUP BY annotator, choice;
        """,
    ),
    (
        "051_pair_origin",  # why each served pair was chosen, and identical pairs that were never served
        """
        CREATE TABLE pair_origin (
            pair_id VARCHAR PRIMARY KEY,     -- pairs.id; probes and overlap repeats have none
            selection VARCHAR NOT NULL,      -- 'coverage' (least-labelled prompt) or 'active' (small margin)
            margin DOUBLE,                   -- implicit reward margin of the two responses under margin_round
            margin_round INTEGER,            -- the round whose adapter scored the pair; NULL: not scored
            identical_draws INTEGER NOT NULL,  -- same-response pairs drawn and replaced before this one
            second_temperature DOUBLE        -- the raised temperature of the 2nd sample, when resampling failed
        );
        CREATE TABLE identical_dropped (
            prompt_id BIGINT NOT NULL,       -- the model wrote one answer however often it was asked
            adapter_id VARCHAR,
            draws INTEGER NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        "070_click_figures",  # what a click reads, kept by each pair and vote (prefapp.store.picks)
        """
        ALTER TABLE prompts ADD COLUMN n_pairs INTEGER DEFAULT 0;  -- pairs served for this prompt (probes included)
        UPDATE prompts SET n_pairs = c.n FROM (SELECT prompt_id, count(*) AS n FROM pairs GROUP BY prompt_id) c
            WHERE prompts.id = c.prompt_id;
        CREATE TABLE vote_levels (           -- how many pairs (probes excluded) and prompts have exactly n_votes votes
            kind VARCHAR NOT NULL CHECK (kind IN ('pair', 'prompt')),
            n_votes INTEGER NOT NULL,        -- 1 and up: unvoted ones are not counted
            n BIGINT NOT NULL,
            PRIMARY KEY (kind, n_votes)
        );
        INSERT INTO vote_levels SELECT 'pair', n_votes, count(*) FROM pairs WHERE probe_of IS NULL AND n_votes > 0
            GROUP BY n_votes;
        INSERT INTO vote_levels SELECT 'prompt', n_votes, count(*) FROM prompts WHERE n_votes > 0 GROUP BY n_votes;
        CREATE TABLE overlap_floors (        -- no pair created before `since` can be an overlap pick for them
            annotator VARCHAR NOT NULL,
            overlap INTEGER NOT NULL,
            since TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (annotator, overlap)
        );
        -- One column: DuckDB looks up only single-column indexes, not UNIQUE (pair_id, annotator).
        CREATE INDEX votes_pair_id ON votes (pair_id);
        """,
    ),
]

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)
"""


def migrate(con: duckdb.DuckDBPyConnection, migrations: Sequence[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Apply the migrations not yet recorded in the file, each in its own transaction; return their names."""
    con.execute(_CREATE_MIGRATIONS_TABLE)
    done = {name for (name,) in con.execute("SELECT name FROM _migrations").fetchall()}
    unknown = done - {name for name, _ in MIGRATIONS}
    if unknown:
        log.warning("the database has migrations this prefapp does not know (%s): a newer prefapp wrote it; "
                    "upgrade prefapp before relying on it", sorted(unknown))
    applied = []
    for name, sql in migrations:
        if name in done:
            continue
        with _transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, _now()])
        log.info("applied migration %s", name)
        applied.append(name)
    return applied

