"""Store tests on real DuckDB files: schema, migrations, the label flow, threads, crashes and locks."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from prefapp.config import CHOICES, REPO_ROOT
from prefapp.store.store import (
    INTERRUPTED_ERROR,
    MAX_REPORTED_ERRORS,
    MIGRATIONS,
    Pair,
    Prompt,
    Store,
    StoreLockedError,
    migrate,
)

os.environ["HF_HUB_OFFLINE"] = "1"

EXPECTED_MIGRATIONS = ["001_create_prompts", "002_create_pairs", "003_create_votes", "004_create_rounds",
                       "005_rounds_provenance", "006_probes_and_vote_notes", "050_create_feedback",
                       "030_store_sessions", "040_create_imported_pairs", "060_pair_backends", "020_eval_prompts",
                       "021_eval_pairs_and_votes", "022_round_checks_and_promotions", "010_vote_tallies",
                       "051_pair_origin", "070_click_figures"]
TSTZ = "TIMESTAMP WITH TIME ZONE"
EXPECTED_COLUMNS = {
    "_migrations": [("name", "VARCHAR"), ("applied_at", TSTZ)],
    "prompts": [("id", "BIGINT"), ("messages", "JSON"), ("hash", "VARCHAR"), ("source", "VARCHAR"),
                ("created_at", TSTZ), ("n_votes", "INTEGER"), ("n_pairs", "INTEGER")],
    "pairs": [("id", "VARCHAR"), ("prompt_id", "BIGINT"), ("prompt", "JSON"), ("response_a", "VARCHAR"),
              ("response_b", "VARCHAR"), ("swapped", "BOOLEAN"), ("model_id", "VARCHAR"), ("adapter_id", "VARCHAR"),
              ("sampling", "JSON"), ("served_to", "VARCHAR"), ("created_at", TSTZ), ("probe_of", "VARCHAR"),
              ("n_votes", "INTEGER")],
    "votes": [("id", "BIGINT"), ("pair_id", "VARCHAR"), ("annotator", "VARCHAR"), ("choice", "VARCHAR"),
              ("prompt_id", "BIGINT"), ("prompt", "JSON"), ("response_a", "VARCHAR"), ("response_b", "VARCHAR"),
              ("swapped", "BOOLEAN"), ("model_id", "VARCHAR"), ("adapter_id", "VARCHAR"), ("sampling", "JSON"),
              ("shown_at", TSTZ), ("created_at", TSTZ)],
    "rounds": [("id", "INTEGER"), ("status", "VARCHAR"), ("base_model", "VARCHAR"), ("adapter_path", "VARCHAR"),
               ("export_path", "VARCHAR"), ("n_pairs", "INTEGER"), ("config", "JSON"), ("metrics", "JSON"),
               ("error", "VARCHAR"), ("started_at", TSTZ), ("finished_at", TSTZ), ("provenance", "JSON")],
    "vote_notes": [("vote_id", "BIGINT"), ("reason", "VARCHAR"), ("written_chosen", "VARCHAR")],
    "vote_tallies": [("annotator", "VARCHAR"), ("choice", "VARCHAR"), ("n", "BIGINT")],
    "feedback": [("id", "BIGINT"), ("key", "VARCHAR"), ("prompt", "JSON"), ("completion", "VARCHAR"),
                 ("label", "BOOLEAN"), ("source", "VARCHAR"), ("annotator", "VARCHAR"), ("provenance", "JSON"),
                 ("created_at", TSTZ)],
    "store_sessions": [("id", "BIGINT"), ("opened_at", TSTZ), ("pid", "INTEGER"), ("closed_at", TSTZ),
                       ("votes", "BIGINT"), ("rounds", "INTEGER"), ("pairs", "BIGINT"), ("prompts", "BIGINT")],
    "imported_pairs": [("id", "BIGINT"), ("hash", "VARCHAR"), ("prompt", "JSON"), ("chosen", "VARCHAR"),
                       ("rejected", "VARCHAR"), ("source", "VARCHAR"), ("format", "VARCHAR"), ("source_row", "BIGINT"),
                       ("file_sha256", "VARCHAR"), ("created_at", TSTZ)],
    "pair_backends": [("pair_id", "VARCHAR"), ("backend", "VARCHAR"), ("model", "VARCHAR")],
    "eval_prompts": [("id", "BIGINT"), ("messages", "JSON"), ("hash", "VARCHAR"), ("source", "VARCHAR"),
                     ("created_at", TSTZ)],
    "eval_pairs": [("id", "VARCHAR"), ("eval_prompt_id", "BIGINT"), ("prompt", "JSON"), ("policy_a", "VARCHAR"),
                   ("policy_b", "VARCHAR"), ("response_a", "VARCHAR"), ("response_b", "VARCHAR"),
                   ("swapped", "BOOLEAN"), ("model_id", "VARCHAR"), ("sampling", "JSON"), ("served_to", "VARCHAR"),
                   ("created_at", TSTZ)],
    "eval_votes": [("id", "BIGINT"), ("pair_id", "VARCHAR"), ("annotator", "VARCHAR"), ("judge", "VARCHAR"),
                   ("choice", "VARCHAR"), ("eval_prompt_id", "BIGINT"), ("prompt", "JSON"), ("policy_a", "VARCHAR"),
                   ("policy_b", "VARCHAR"), ("response_a", "VARCHAR"), ("response_b", "VARCHAR"),
                   ("swapped", "BOOLEAN"), ("model_id", "VARCHAR"), ("sampling", "JSON"), ("shown_at", TSTZ),
                   ("created_at", TSTZ)],
    "round_checks": [("round_id", "INTEGER"), ("checks", "JSON"), ("created_at", TSTZ)],
    "promotions": [("id", "BIGINT"), ("round_id", "INTEGER"), ("admin", "VARCHAR"), ("verdict", "VARCHAR"),
                   ("flags", "JSON"), ("confirmed", "BOOLEAN"), ("created_at", TSTZ)],
    "pair_origin": [("pair_id", "VARCHAR"), ("selection", "VARCHAR"), ("margin", "DOUBLE"), ("margin_round", "INTEGER"),
                    ("identical_draws", "INTEGER"), ("second_temperature", "DOUBLE")],
    "identical_dropped": [("prompt_id", "BIGINT"), ("adapter_id", "VARCHAR"), ("draws", "INTEGER"),
                          ("created_at", TSTZ)],
    "vote_levels": [("kind", "VARCHAR"), ("n_votes", "INTEGER"), ("n", "BIGINT")],
    "overlap_floors": [("annotator", "VARCHAR"), ("overlap", "INTEGER"), ("since", TSTZ)],
}
SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 64}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "prefapp.duckdb"  # a missing parent dir: Store must create it


@pytest.fixture
def store(db_path: Path):
    with Store(db_path) as s:
        yield s


@pytest.fixture
def prompt(store: Store) -> Prompt:
    store.add_prompts(["Name a colour."], source="test")
    return store.next_prompt()


def add_pair(store: Store, prompt: Prompt, served_to: str | None = None, adapter_id: str | None = None) -> Pair:
    return store.add_pair(prompt, "Red.", "Blue.", swapped=True, model_id="demo-model", adapter_id=adapter_id,
                          sampling=SAMPLING, served_to=served_to)


def schema(path: Path) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(path)) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        tables.setdefault(table, []).append((column, type_))
    return tables


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}


# -- schema and migrations ------------------------------------------------------------------------


def test_fresh_file_has_exact_schema_and_migrations(db_path):
    with Store(db_path) as store:
        assert store.applied_migrations() == EXPECTED_MIGRATIONS
    assert [name for name, _ in MIGRATIONS] == EXPECTED_MIGRATIONS
    assert schema(db_path) == EXPECTED_COLUMNS
    with duckdb.connect(str(db_path)) as con:
        uniques = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'UNIQUE' ORDER BY table_name").fetchall()
        foreign = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY'")
        assert foreign.fetchone()[0] == 0
        indexes = con.execute("SELECT index_name, table_name, expressions FROM duckdb_indexes()").fetchall()
    assert indexes == [("votes_pair_id", "votes", "[pair_id]")]  # DuckDB's lookups use one-column indexes only
    assert uniques == [("eval_prompts", ["hash"]),
                       ("eval_votes", ["pair_id", "annotator"]),
                       ("feedback", ["key"]),
                       ("imported_pairs", ["hash"]),
                       ("prompts", ["hash"]),
                       ("votes", ["pair_id", "annotator"])]


def test_reopen_applies_nothing_twice_and_keeps_data(db_path):
    with Store(db_path) as store:
        store.add_prompts(["a", "b"], source="test")
        pair = add_pair(store, store.get_prompt(1))
        store.record_vote(pair.id, "A", "ann")
    with duckdb.connect(str(db_path)) as con:
        applied_at = con.execute("SELECT * FROM _migrations ORDER BY name").fetchall()
    with Store(db_path) as store:
        assert store.applied_migrations() == EXPECTED_MIGRATIONS
        assert store.prompt_count() == 2
        assert store.get_pair(pair.id) == pair
        assert [v.pair_id for v in store.votes()] == [pair.id]
    with duckdb.connect(str(db_path)) as con:
        assert con.execute("SELECT * FROM _migrations ORDER BY name").fetchall() == applied_at


def test_store_draws_no_progress_bar(store):
    """A long statement (a migration on a big file, an export) must not draw DuckDB's progress bar on stdout."""
    assert store._cur().execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)


@pytest.mark.parametrize("n_old", range(1, len(MIGRATIONS)))
def test_old_file_is_upgraded_to_the_fresh_schema(tmp_path, n_old):
    old, fresh = tmp_path / "old.duckdb", tmp_path / "fresh.duckdb"
    with duckdb.connect(str(old)) as con:
        assert migrate(con, MIGRATIONS[:n_old]) == EXPECTED_MIGRATIONS[:n_old]
        con.execute("INSERT INTO prompts (messages, hash, source, created_at) VALUES (?, 'h', 'old', now())",
                    ['[{"role": "user", "content": "kept"}]'])
    with Store(old) as store:
        assert store.applied_migrations() == EXPECTED_MIGRATIONS
        assert store.get_prompt(1).text == "kept"
    Store(fresh).close()
    assert schema(old) == schema(fresh) == EXPECTED_COLUMNS


def test_file_from_a_newer_prefapp_is_flagged(db_path, caplog):
    Store(db_path).close()
    with duckdb.connect(str(db_path)) as con:
        con.execute("INSERT INTO _migrations VALUES ('999_from_the_future', now())")
    with Store(db_path) as store:
        assert store.applied_migrations()[-1] == "999_from_the_future"
    assert "a newer prefapp wrote it; upgrade prefapp" in caplog.text


# -- prompts --------------------------------------------------------------------------------------


def test_add_prompts_counts_added_duplicates_and_invalid(store):
    result = store.add_prompts(
        ["Hi", " Hi ", "   ", "Bye", [{"role": "user", "content": "Hi"}], [],
         [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         [{"role": "bot", "content": "x"}], 42,
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]],
        source="file:x.jsonl",
    )
    assert (result.added, result.duplicates, result.invalid) == (3, 2, 5)
    assert result.errors[0] == "prompt 3: empty prompt: write some text, or drop the line"
    assert [e.split(":")[0] for e in result.errors] == ["prompt 3", "prompt 6", "prompt 7", "prompt 8", "prompt 9"]
    assert "drop the trailing assistant message" in result.errors[2]
    assert "use one of system, user, assistant" in result.errors[3]

    again = store.add_prompts(["Bye", "New", "New"], source="typed")
    assert (again.added, again.duplicates, again.invalid, again.errors) == (1, 2, 0, [])
    assert store.prompt_count() == 4
    system_prompt = store.get_prompt(3)
    assert system_prompt.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (system_prompt.text, system_prompt.source) == ("Hi", "file:x.jsonl")
    assert store.get_prompt(4).source == "typed"
    assert store.get_prompt(99) is None


def test_add_prompts_caps_the_error_list(store):
    result = store.add_prompts([""] * (MAX_REPORTED_ERRORS + 5), source="test")
    assert result.invalid == MAX_REPORTED_ERRORS + 5
    assert len(result.errors) == MAX_REPORTED_ERRORS + 1
    assert result.errors[-1] == "... and 5 more invalid prompts"
    with pytest.raises(ValueError, match="say where the prompts came from"):
        store.add_prompts(["x"], source=" ")


def test_next_prompt_serves_least_labelled_first(store):
    assert store.next_prompt() is None
    store.add_prompts(["a", "b", "c"], source="test")
    a, b, c = (store.get_prompt(i) for i in (1, 2, 3))
    rng = random.Random(0)
    assert {store.next_prompt(rng).id for _ in range(60)} == {1, 2, 3}  # ties are broken at random
    add_pair(store, a)
    add_pair(store, b)
    assert {store.next_prompt(rng).id for _ in range(20)} == {3}
    add_pair(store, c)
    add_pair(store, c)
    assert {store.next_prompt(rng).id for _ in range(40)} == {1, 2}


# -- pairs and votes ------------------------------------------------------------------------------


def test_pair_round_trips_and_needs_a_stored_prompt(store, prompt):
    pair = add_pair(store, prompt, served_to="  ann ", adapter_id="round-1")
    assert store.get_pair(pair.id) == pair
    assert (pair.prompt, pair.served_to, pair.swapped, pair.sampling) == (prompt.messages, "ann", True, SAMPLING)
    assert pair.created_at.utcoffset().total_seconds() == 0
    assert add_pair(store, prompt, served_to=" ").served_to is None
    assert store.get_pair("nope") is None
    assert store.pair_count() == 2
    stranger = Prompt(id=999, messages=prompt.messages, source="x", created_at=prompt.created_at)
    with pytest.raises(ValueError, match="unknown prompt id 999"):
        add_pair(store, stranger)


def test_votes_alone_move_the_marks_and_a_repeat_does_not(store, prompt):
    """A session that only votes still records its marks (the lost-log check compares them on the next start)."""
    from prefapp.store.durability import marks_path, read_marks

    pair = add_pair(store, prompt)
    store.flush_marks()
    assert read_marks(marks_path(store.path))["votes"] == 0
    store.record_vote(pair.id, "A", "ann")
    store.flush_marks()
    assert read_marks(marks_path(store.path))["votes"] == 1
    writes = store._writes
    assert store.record_vote(pair.id, "B", "ann").created is False  # a repeat writes nothing
    assert store._writes == writes


def test_vote_snapshots_what_the_annotator_saw(store, prompt):
    for choice in CHOICES:  # every choice the UI offers passes the table's CHECK
        pair = add_pair(store, prompt, adapter_id="round-1")
        result = store.record_vote(pair.id, choice, "  ann  ")
        vote = result.vote
        assert result.created
        assert (vote.pair_id, vote.annotator, vote.choice, vote.prompt_id) == (pair.id, "ann", choice, prompt.id)
        assert (vote.prompt, vote.response_a, vote.response_b, vote.swapped) == (
            pair.prompt, pair.response_a, pair.response_b, pair.swapped)
        assert (vote.model_id, vote.adapter_id, vote.sampling) == ("demo-model", "round-1", SAMPLING)
        assert vote.shown_at == pair.created_at <= vote.created_at
    assert [v.choice for v in store.votes()] == list(CHOICES)
    assert [v.choice for v in store.votes(choice="tie")] == ["tie"]


def test_duplicate_vote_is_idempotent(store, prompt):
    pair = add_pair(store, prompt)
    first = store.record_vote(pair.id, "A", "ann")
    again = store.record_vote(pair.id, "B", " ann ")
    assert again == type(first)(vote=first.vote, created=False, counts=first.counts)
    assert (first.counts.mine, first.counts.total) == (1, 1)  # the counts as of the vote's commit
    assert store.record_vote(pair.id, "B", "bob").created  # another annotator may vote on the same pair
    assert [(v.annotator, v.choice) for v in store.votes()] == [("ann", "A"), ("bob", "B")]


def test_bad_votes_are_refused_with_the_fix(store, prompt):
    pair = add_pair(store, prompt)
    with pytest.raises(ValueError, match="use one of A, B, tie, both_bad"):
        store.record_vote(pair.id, "C", "ann")
    with pytest.raises(ValueError, match="annotator name is empty: enter your name"):
        store.record_vote(pair.id, "A", "   ")
    with pytest.raises(ValueError, match="use at most 100"):
        store.record_vote(pair.id, "A", "x" * 101)
    with pytest.raises(ValueError, match="unknown pair 'nope'.*fetch a new pair"):
        store.record_vote("nope", "A", "ann")
    with pytest.raises(ValueError, match="use one of A, B, tie, both_bad"):
        store.votes(choice="a")
    assert store.votes() == []
    assert store.record_vote(pair.id, "A", "x" * 100).created


def test_vote_counts(store, prompt):
    assert store.vote_counts("ann") == type(store.vote_counts())(0, dict.fromkeys(CHOICES, 0), {}, 0)
    for annotator, choice in [("ann", "A"), ("ann", "B"), ("bob", "A"), ("cy", "both_bad")]:
        store.record_vote(add_pair(store, prompt).id, choice, annotator)
    counts = store.vote_counts(" ann")
    assert counts.total == 4
    assert counts.by_choice == {"A": 2, "B": 1, "tie": 0, "both_bad": 1}
    assert counts.by_annotator == {"ann": 2, "bob": 1, "cy": 1}
    assert counts.mine == 2
    assert store.vote_counts().mine == 0


def test_concurrent_votes_are_each_stored_exactly_once(store, prompt):
    pairs = [add_pair(store, prompt) for _ in range(50)]

    def annotate(k: int) -> str:
        rng, name = random.Random(k), f"annotator-{k}"
        add_pair(store, store.next_prompt(rng), served_to=name)  # pairs are written concurrently too
        for i, pair in enumerate(pairs):
            choice = rng.choice(CHOICES)
            assert store.record_vote(pair.id, choice, name).created
            if i % 10 == 0:  # a double click: the first answer comes back, nothing new is stored
                again = store.record_vote(pair.id, "tie", name)
                assert not again.created and again.vote.choice == choice
            if i % 7 == 0:
                store.vote_counts(name)
        return name

    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(annotate, range(16)))
    votes = store.votes()
    assert len(votes) == 16 * 50
    assert {(v.pair_id, v.annotator) for v in votes} == {(p.id, n) for p in pairs for n in names}
    assert store.vote_counts().by_annotator == dict.fromkeys(names, 50)
    assert store.pair_count() == 50 + 16


def test_racing_double_clicks_store_one_vote(store, prompt):
    pair = add_pair(store, prompt)
    start = threading.Barrier(8)

    def click(choice: str) -> bool:
        start.wait()
        return store.record_vote(pair.id, choice, "ann").created

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(click, ["A", "B"] * 4))
    assert sorted(created) == [False] * 7 + [True]
    assert len(store.votes()) == 1


def test_racing_round_starts_open_one_round(store):
    start = threading.Barrier(4)

    def start_round(_: int) -> int | None:
        start.wait()
        try:
            return store.start_round("demo-model", {}, None, n_pairs=1)
        except ValueError:
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        started = [r for r in pool.map(start_round, range(4)) if r is not None]
    assert started == [1]
    assert [r.status for r in store.rounds()] == ["running"]


# -- processes: crash durability and the file lock -------------------------------------------------

VOTER = """
import sys
from prefapp.store import Store
store = Store(sys.argv[1])
store.add_prompts(["Will this survive?"], source="test")
prompt = store.next_prompt()
while True:
    pair = store.add_pair(prompt, "a", "b", False, "demo-model", None, {}, None)
    store.record_vote(pair.id, "A", "ann")
    print(pair.id, flush=True)  # the acknowledgement: record_vote has returned
"""

HOLDER = """
import sys
from prefapp.store import Store
with Store(sys.argv[1]):
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_acknowledged_votes_survive_kill_9(db_path):
    db_path.parent.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", VOTER, str(db_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        acked = [proc.stdout.readline().strip() for _ in range(40)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert all(acked), f"the voter process died early: {proc.stderr.read()}"
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{db_path}.wal").exists()  # the votes lived only in the WAL: its replay is what we test
    with Store(db_path) as store:
        voted = {v.pair_id for v in store.votes()}
    assert set(acked) <= voted


def test_second_process_gets_a_clear_lock_error(db_path):
    db_path.parent.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        with pytest.raises(StoreLockedError) as err:
            Store(db_path)
        message = str(err.value)
        assert f"{db_path} is in use by another prefapp process (PID {proc.pid})" in message
        assert "Stop that process first" in message and "Data tab" in message and "--db" in message
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    with Store(db_path) as store:  # the lock goes with the process
        assert store.applied_migrations() == EXPECTED_MIGRATIONS


def test_second_store_in_one_process_shares_the_file(db_path):
    with Store(db_path) as first:
        round_id = first.start_round("demo-model", {}, None, n_pairs=0)
        with Store(db_path) as second:
            assert second.get_round(round_id).status == "running"  # not mistaken for a crashed round
            second.add_prompts(["from second"], source="test")
        assert first.prompt_count() == 1
        assert first.finish_round(round_id, "adapters/round-1", {}).status == "finished"
    with pytest.raises(RuntimeError, match="is closed: open a new Store"):
        first.prompt_count()


# -- rounds ---------------------------------------------------------------------------------------


def test_round_lifecycle(store):
    assert store.rounds() == [] and store.last_finished_round() is None
    config = {"beta": 0.1, "lora_r": 16}
    first = store.start_round("demo-model", config, "exports/round-1", n_pairs=12)
    assert first == 1
    with pytest.raises(ValueError, match="round 1 is still running: wait for it"):
        store.start_round("demo-model", config, None, n_pairs=12)
    done = store.finish_round(first, "adapters/round-1", {"train_loss": 0.61, "reward_accuracy": 0.75})
    assert (done.status, done.adapter_path, done.metrics, done.config) == (
        "finished", "adapters/round-1", {"train_loss": 0.61, "reward_accuracy": 0.75}, config)
    assert done.export_path == "exports/round-1" and done.n_pairs == 12
    assert done.started_at <= done.finished_at
    with pytest.raises(ValueError, match="round 1 is already finished: start a new round"):
        store.fail_round(first, "late")

    second = store.start_round("demo-model", config, None, n_pairs=12)
    failed = store.fail_round(second, "CUDA out of memory")
    assert (failed.status, failed.error, failed.adapter_path) == ("failed", "CUDA out of memory", None)
    third = store.start_round("demo-model", config, None, n_pairs=12)
    with pytest.raises(ValueError, match="use 'failed' or 'cancelled'"):
        store.fail_round(third, "x", status="finished")
    assert store.fail_round(third, "stopped by user", status="cancelled").status == "cancelled"
    with pytest.raises(ValueError, match="unknown round 9"):
        store.finish_round(9, "a", {})

    assert [r.id for r in store.rounds()] == [3, 2, 1]
    assert store.get_round(2) == failed and store.get_round(4) is None
    assert store.last_finished_round() == done


def test_round_left_running_by_a_dead_process_is_marked_failed(db_path):
    with Store(db_path) as store:
        round_id = store.start_round("demo-model", {}, None, n_pairs=3)
    with Store(db_path) as store:  # a new process would see exactly this file
        interrupted = store.get_round(round_id)
        assert (interrupted.status, interrupted.error) == ("failed", INTERRUPTED_ERROR)
        assert interrupted.finished_at is not None
        assert store.start_round("demo-model", {}, None, n_pairs=3) == round_id + 1


# -- snapshot -------------------------------------------------------------------------------------


def test_snapshot_has_the_same_data_and_stays_usable(store, prompt, tmp_path):
    store.record_vote(add_pair(store, prompt).id, "A", "ann")
    store.finish_round(store.start_round("demo-model", {}, None, 1), "adapters/round-1", {"loss": 0.5})
    dest = store.snapshot(tmp_path / "backups" / "snap.duckdb")
    with pytest.raises(FileExistsError, match="choose a new file name"):
        store.snapshot(dest)
    with Store(dest) as snap:
        assert snap.applied_migrations() == EXPECTED_MIGRATIONS
        assert (snap.prompt_count(), snap.pair_count(), snap.votes()) == (1, 1, store.votes())
        assert snap.rounds() == store.rounds()
        assert snap.add_prompts(["another"], source="test").added == 1
        assert snap.get_prompt(2).text == "another"  # sequences were copied too: no id clash
    assert store.prompt_count() == 1


def test_snapshot_is_consistent_while_votes_arrive(db_path, tmp_path):
    old_pairs = 50_000  # enough that copying takes long enough for votes to land mid-copy
    db_path.parent.mkdir(parents=True)
    with duckdb.connect(str(db_path)) as con:
        migrate(con)
        con.execute("INSERT INTO pairs SELECT uuid()::VARCHAR, 1, '[]', repeat('x', 200), 'b', false, 'old', NULL, "
                    "'{}', NULL, now(), NULL, 0 FROM range(?)", [old_pairs])
    stop = threading.Event()
    with Store(db_path) as store:
        store.add_prompts(["q"], source="test")
        prompt = store.next_prompt()

        def vote_until_stopped() -> None:
            while not stop.is_set():
                store.record_vote(add_pair(store, prompt).id, "A", "ann")

        writer = threading.Thread(target=vote_until_stopped)
        writer.start()
        try:
            while store.vote_counts().total < 3:
                time.sleep(0.01)
            snaps = [store.snapshot(tmp_path / f"snap{i}.duckdb") for i in range(3)]
        finally:
            stop.set()
            writer.join()
    for path in snaps:
        with Store(path) as snap:
            votes = snap.votes()
            assert votes and all(snap.get_pair(v.pair_id) is not None for v in votes)
            new_pairs = snap.pair_count() - old_pairs
            assert new_pairs - len(votes) in (0, 1)  # at most one pair was still waiting for its vote
