"""Every figure that reads all the votes, computed by DuckDB: the resolution of votes into preference rows, the
quality figures and the labelling counters. Nothing here turns a vote into a Python object, so the cost of a
page or an export grows with DuckDB's columnar scan (milliseconds per million votes), not with Python's.

Votes are compared in the *sample* frame (`_FRAME`): a vote for side A of a swapped pair is a vote for the
generate call's 2nd sample, so side swaps never count as disagreement (prefapp.labeling.quality explains why).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from prefapp.config import CHOICES
from prefapp.store.picks import bump, recount_levels, tally_levels
from prefapp.store.records import VoteCounts

_FRAME = ("CASE v.choice WHEN 'A' THEN CASE WHEN v.swapped THEN 'second' ELSE 'first' END "
          "WHEN 'B' THEN CASE WHEN v.swapped THEN 'first' ELSE 'second' END ELSE v.choice END")

# The votes with their frame, order (`seq`: oldest first, as votes were cast) and whether they answer a probe;
# narrow on purpose: the wide columns (prompt, responses) are joined only to the rows that survive.
_FRAMED = f"""
framed AS MATERIALIZED (
    SELECT v.id, v.pair_id, v.annotator, v.choice, {_FRAME} AS frame,
           row_number() OVER (ORDER BY v.created_at, v.id) AS seq,
           v.pair_id IN (SELECT id FROM pairs WHERE probe_of IS NOT NULL) AS probe
    FROM votes v
)"""

# Resolution, parameters: written ('use' | 'ignore') and both_bad ('drop' | 'written'); the disagreement rule picks
# the SQL (`_chosen`). A pair's decision: `all` keeps every vote; otherwise the first vote of the pair's top answer
# when that answer is unique (`majority`) or the only one (`drop`). One grouping of the votes by pair, pivoted over
# the four answers, decides every pair without joining the votes back.
_DECIDING = """
answers AS (  -- per pair and answer: how many votes gave it (n_*), the first such vote (seq_*) and its id (id_*)
    SELECT pair_id, min(seq) AS pair_seq,
           count(*) FILTER (WHERE frame = 'first') AS n_first, min(seq) FILTER (WHERE frame = 'first') AS seq_first, arg_min(id, seq) FILTER (WHERE frame = 'first') AS id_first,
           count(*) FILTER (WHERE frame = 'second') AS n_second, min(seq) FILTER (WHERE frame = 'second') AS seq_second, arg_min(id, seq) FILTER (WHERE frame = 'second') AS id_second,
           count(*) FILTER (WHERE frame = 'tie') AS n_tie, min(seq) FILTER (WHERE frame = 'tie') AS seq_tie, arg_min(id, seq) FILTER (WHERE frame = 'tie') AS id_tie,
           count(*) FILTER (WHERE frame = 'both_bad') AS n_both_bad, min(seq) FILTER (WHERE frame = 'both_bad') AS seq_both_bad, arg_min(id, seq) FILTER (WHERE frame = 'both_bad') AS id_both_bad
    FROM kept GROUP BY pair_id
),
topped AS (
    SELECT *, CASE greatest(n_first, n_second, n_tie, n_both_bad) WHEN n_first THEN 'first' WHEN n_second THEN 'second' WHEN n_tie THEN 'tie' WHEN n_both_bad THEN 'both_bad' END AS top_frame,
           (n_first > 0)::INT + (n_second > 0)::INT + (n_tie > 0)::INT + (n_both_bad > 0)::INT AS n_answers,
           (n_first = greatest(n_first, n_second, n_tie, n_both_bad))::INT + (n_second = greatest(n_first, n_second, n_tie, n_both_bad))::INT + (n_tie = greatest(n_first, n_second, n_tie, n_both_bad))::INT + (n_both_bad = greatest(n_first, n_second, n_tie, n_both_bad))::INT AS n_top
    FROM answers
),
decided AS (
    SELECT pair_id, pair_seq, n_answers, n_top, top_frame AS frame,
           CASE top_frame WHEN 'first' THEN id_first WHEN 'second' THEN id_second WHEN 'tie' THEN id_tie WHEN 'both_bad' THEN id_both_bad END AS id,
           CASE top_frame WHEN 'first' THEN seq_first WHEN 'second' THEN seq_second WHEN 'tie' THEN seq_tie WHEN 'both_bad' THEN seq_both_bad END AS seq
    FROM topped
)"""
_KEPT = _FRAMED + """,
kept AS (SELECT * FROM framed WHERE NOT probe)"""
# The pairs decided once per resolution, in a TEMP table of the resolving cursor (`preference_resolution`): the rows and
# the counts both read it, so the votes are grouped once, not once for each.
_STAGE = f"CREATE TEMP TABLE decided AS WITH {_KEPT},{_DECIDING} SELECT * FROM decided"

_KEEP = {"majority": "n_top = 1", "drop": "n_answers = 1", "all": "true"}  # which pairs give rows


def _chosen(disagreement: str) -> str:
    """The resolution CTEs up to `resolved`, for one disagreement rule (a key of _KEEP, never user text)."""
    if disagreement == "all":  # every vote of every pair: the one place the votes are joined back
        chosen = "SELECT k.pair_id, k.id, k.seq, d.pair_seq, k.frame FROM kept k JOIN decided d USING (pair_id)"
        head = _KEPT + ","  # the staged `decided` plus the votes framed again (a narrow scan), in the same snapshot
    else:
        chosen = f"SELECT pair_id, id, seq, pair_seq, frame FROM decided WHERE {_KEEP[disagreement]}"
        head = ""
    return head + f"""
chosen AS ({chosen}),
noted AS (
    SELECT c.*, CASE WHEN $written = 'use' THEN n.written_chosen END AS written
    FROM chosen c LEFT JOIN vote_notes n ON n.vote_id = c.id
),
resolved AS (  -- one row per preference row: an A/B vote, or a both-bad vote's written response against each side
    SELECT noted.*, 0 AS part FROM noted WHERE frame IN ('first', 'second')
    UNION ALL
    SELECT noted.*, part FROM noted, (VALUES (0), (1)) AS parts(part)
    WHERE frame = 'both_bad' AND $both_bad = 'written' AND written IS NOT NULL
)"""


_ISO = ("replace(strftime(timezone('UTC', v.created_at), '%Y-%m-%dT%H:%M:%S.%f+00:00'), '.000000+', '+')"
        )  # what datetime.isoformat() writes for a UTC time (no fraction when it is zero)
_WINNER = "CASE v.choice WHEN 'A' THEN v.response_a ELSE v.response_b END"
_LOSER = "CASE v.choice WHEN 'A' THEN v.response_b ELSE v.response_a END"

def _rows_sql(disagreement: str, limited: bool = False) -> str:
    # A preview sorts and cuts the narrow rows first: only those few are joined to their wide columns.
    source = "(SELECT * FROM resolved ORDER BY pair_seq, seq, part LIMIT $limit)" if limited else "resolved"
    return f"""WITH {_chosen(disagreement)}
SELECT from_json(v.prompt, '[{{"role": "VARCHAR", "content": "VARCHAR"}}]') AS prompt,
       [{{'role': 'assistant', 'content': CASE WHEN v.choice = 'both_bad' THEN r.written
                                              ELSE coalesce(r.written, {_WINNER}) END}}] AS chosen,
       [{{'role': 'assistant', 'content': CASE WHEN v.choice <> 'both_bad' THEN {_LOSER}
                                              WHEN r.part = 0 THEN v.response_a ELSE v.response_b END}}] AS rejected,
       r.pair_id, v.annotator, v.model_id, coalesce(v.adapter_id, '') AS adapter_id,
       r.written IS NOT NULL AS human_written, {_ISO} AS voted_at
FROM {source} r JOIN votes v ON v.id = r.id ORDER BY r.pair_seq, r.seq, r.part"""


def _counts_sql(disagreement: str) -> str:
    return f"""WITH {_chosen(disagreement)},
row_counts AS (SELECT count(*) AS rows, count(*) FILTER (WHERE written IS NOT NULL) AS human_written FROM resolved),
vote_counts AS (
    SELECT count(*) AS votes, count(*) FILTER (WHERE pair_id IN (SELECT id FROM pairs WHERE probe_of IS NOT NULL))
           AS probe_votes FROM votes
),
pair_counts AS (
    SELECT count(*) AS pairs, count(*) FILTER (WHERE n_answers > 1) AS disagreeing,
           count(*) FILTER (WHERE NOT ({_KEEP[disagreement]})) AS dropped
    FROM decided
),
chosen_counts AS (
    SELECT count(*) FILTER (WHERE frame = 'tie') AS ties,
           count(*) FILTER (WHERE frame = 'both_bad' AND NOT ($both_bad = 'written' AND written IS NOT NULL)) AS both_bad
    FROM noted
)
SELECT votes, probe_votes, pairs, disagreeing, dropped, ties, both_bad, human_written, rows
FROM vote_counts, pair_counts, chosen_counts, row_counts"""


# Quality figures (prefapp.labeling.quality turns these few aggregate rows into the report).
_ANNOTATORS = """
SELECT annotator, count(*) AS votes, count(*) FILTER (WHERE choice = 'A') AS a,
       count(*) FILTER (WHERE choice IN ('A', 'B')) AS ab, median(epoch(created_at - shown_at)) AS median_s,
       count(*) FILTER (WHERE choice = 'tie') AS ties, count(*) FILTER (WHERE choice = 'both_bad') AS both_bad
FROM votes GROUP BY annotator ORDER BY annotator"""

_PROBE_CHECKS = f"""WITH {_FRAMED}
SELECT v.annotator, count(*) AS probes, count(*) FILTER (WHERE v.frame = o.frame) AS same
FROM framed v JOIN pairs p ON p.id = v.pair_id AND p.probe_of IS NOT NULL
JOIN framed o ON o.pair_id = p.probe_of AND o.annotator = v.annotator
GROUP BY v.annotator"""

_CATEGORIES = ("first", "second", "tie", "both_bad")
_ITEMS = f"""WITH {_FRAMED},
items AS (
    SELECT pair_id, count(*) AS n, {", ".join(f"count(*) FILTER (WHERE frame = '{c}') AS {c}" for c in _CATEGORIES)}
    FROM framed WHERE NOT probe GROUP BY pair_id HAVING count(*) >= 2
)
SELECT count(*) AS items, sum(({" + ".join(f"{c} * ({c} - 1)" for c in _CATEGORIES)}) // 2) AS agreeing,
       sum(n * (n - 1) // 2) AS rater_pairs,
       sum(({" + ".join(f"{c} * ({c} - 1)" for c in _CATEGORIES)}) / (n * (n - 1))) AS p_sum,
       {", ".join(f"sum({c}) AS {c}" for c in _CATEGORIES)}
FROM items"""

_PAIRWISE = f"""WITH {_FRAMED},
regular AS (SELECT pair_id, annotator, frame FROM framed WHERE NOT probe)
SELECT x.annotator, y.annotator, x.frame, y.frame, count(*)
FROM regular x JOIN regular y ON x.pair_id = y.pair_id AND x.annotator < y.annotator
GROUP BY ALL ORDER BY ALL"""

RESOLVE_COUNT_FIELDS = ("votes", "probe_votes", "pairs", "disagreeing_pairs", "dropped_disagreements", "ties",
                        "both_bad", "human_written", "rows")


def table_fingerprint(table: pa.Table) -> str:
    """A content hash of an Arrow table (every column, every row), for `datasets` and the preflight cache: DuckDB
    hashes a million rows in a fraction of a second, where `datasets` would pickle the table."""
    import duckdb

    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in table.column_names)
    with duckdb.connect() as con:
        con.register("t", table)
        n, digest = con.execute(f"SELECT count(*), coalesce(sum(hash({columns})), 0) FROM t").fetchall()[0]
    return f"prefapp-{n}-{digest:x}"


TALLIES = "SELECT annotator, choice, n FROM vote_tallies WHERE n > 0"  # rows for vote_counts_of


def tally_votes(cur, votes: Sequence[tuple[str, int, str, str]], delta: int) -> None:
    """Keep the per-vote figures (migrations 010_vote_tallies, 070_click_figures) in step with `votes` (pair id,
    prompt id, annotator, choice) cast (`delta` +1) or taken back (-1), inside the caller's transaction: a few
    indexed updates, whatever the number of votes in the table or in `votes`."""
    if not votes:
        return
    tally_levels(cur, {pair: delta * n for pair, n in Counter(v[0] for v in votes).items()},
                 {prompt: delta * n for prompt, n in Counter(v[1] for v in votes).items()})
    bump(cur, "vote_tallies", ("annotator", "choice"),
         [(annotator, choice, delta * n) for (annotator, choice), n in Counter(v[2:] for v in votes).items()])


def vote_counts_of(tallies: Iterable[tuple[str, str, int]], annotator: str | None = None) -> VoteCounts:
    """Vote totals by choice and by annotator, plus `annotator`'s own count, from the rows of `TALLIES`."""
    by_choice, by_annotator = dict.fromkeys(CHOICES, 0), {}
    for name, choice, n in tallies:
        by_choice[choice] += n
        by_annotator[name] = by_annotator.get(name, 0) + n
    by_annotator = dict(sorted(by_annotator.items(), key=lambda item: (-item[1], item[0])))
    mine = by_annotator.get(annotator.strip(), 0) if isinstance(annotator, str) else 0
    return VoteCounts(sum(by_choice.values()), by_choice, by_annotator, mine)


class CountingStore:
    """Mixin of `Store`: whole-table figures in SQL (uses `self._cur()` and `self._write()`)."""

    def recount(self) -> None:
        """Recompute the figures each vote keeps up to date (after votes were written by bulk SQL, e.g. a bench)."""
        with self._write() as cur:
            cur.execute("UPDATE pairs SET n_votes = coalesce((SELECT count(*) FROM votes v WHERE v.pair_id = pairs.id), 0)")
            cur.execute("UPDATE prompts SET n_votes = coalesce("
                        "(SELECT count(*) FROM votes v WHERE v.prompt_id = prompts.id), 0)")
            cur.execute("DELETE FROM vote_tallies")
            cur.execute("INSERT INTO vote_tallies SELECT annotator, choice, count(*) FROM votes GROUP BY ALL")
            recount_levels(cur)

    def preference_resolution(self, disagreement: str, both_bad: str, written: str, limit: int | None = None
                              ) -> tuple[pa.Table, dict[str, int]]:
        """The resolved preference rows (prompt/chosen/rejected + provenance) as Arrow, oldest pair first (only the
        first `limit` when given), and what resolution kept and left out (the fields of RESOLVE_COUNT_FIELDS, always
        of everything): both from one resolution of the votes, in one snapshot."""
        params = {"both_bad": both_bad, "written": written}
        with self._cur().cursor() as cur:  # a fresh cursor: its TEMP table is its own; Arrow output skips a copy
            cur.execute("BEGIN TRANSACTION")  # rows and counts see the same votes; the TEMP table ends with it
            try:
                cur.execute(_STAGE)
                counts = cur.execute(_counts_sql(disagreement), params).fetchall()[0]
                sql = _rows_sql(disagreement, limited=limit is not None)
                rows = cur.sql(sql, params=params if limit is None else {**params, "limit": int(limit)})
                table = rows.to_arrow_table()
            finally:
                cur.execute("ROLLBACK")  # nothing was written but the TEMP table
        return table, dict(zip(RESOLVE_COUNT_FIELDS, counts))

    def quality_figures(self) -> dict[str, Any]:
        """The aggregates behind the Quality view: per annotator, per probe check, over overlapped pairs, per two
        annotators (counts of each pair of answers on shared pairs)."""
        cur = self._cur()
        items = cur.execute(_ITEMS).fetchall()[0]
        return {
            "annotators": cur.execute(_ANNOTATORS).fetchall(),
            "probe_checks": {name: (n, same) for name, n, same in cur.execute(_PROBE_CHECKS).fetchall()},
            "items": dict(zip(("items", "agreeing", "rater_pairs", "p_sum", *_CATEGORIES), items)),
            "pairwise": cur.execute(_PAIRWISE).fetchall(),
        }
