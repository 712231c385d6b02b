"""Every figure that reads all the votes, computed by DuckDB: the resolution of votes into preference rows, the
quality figures and the labelling counters. Nothing here turns a vote into a Python object, so the cost of a
page or an export grows with DuckDB's columnar scan (milliseconds per million votes), not with Python's.

Votes are compared in the *sample* frame (`_FRAME`): a vote for side A of a swapped pair is a vote for the
generate call's 2nd sample, so side swaps never count as disagreement (prefapp.labeling.quality explains why).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_FRAME = ("CASE v.choice WHEN 'A' THEN CASE WHEN v.swapped THEN 'second' ELSE 'first' END "
          "WHEN 'B' THEN CASE WHEN v.swapped THEN 'first' ELSE 'second' END ELSE v.choice END")

# The votes with their frame, order (`seq`: oldest first, as votes were cast) and whether they answer a probe.
_FRAMED = f"""
framed AS (
    SELECT v.id, v.pair_id, v.annotator, v.choice, v.prompt, v.response_a, v.response_b, v.model_id, v.adapter_id,
           v.created_at, {_FRAME} AS frame, row_number() OVER (ORDER BY v.created_at, v.id) AS seq,
           coalesce(p.probe_of IS NOT NULL, false) AS probe
    FROM votes v LEFT JOIN pairs p ON p.id = v.pair_id
)"""

# Resolution, parameters: disagreement ('majority' | 'drop' | 'all'), then for the rows: written ('use' | 'ignore')
# and both_bad ('drop' | 'written'). A pair's decision: `all` keeps every vote; otherwise the first vote of the
# pair's top answer when that answer is unique (`majority`) or the only one (`drop`).
_CHOSEN = _FRAMED + """,
kept AS (SELECT * FROM framed WHERE NOT probe),
answers AS (SELECT pair_id, frame, count(*) AS n, min(seq) AS first_seq FROM kept GROUP BY pair_id, frame),
ranked AS (SELECT *, max(n) OVER (PARTITION BY pair_id) AS top_n, count(*) OVER (PARTITION BY pair_id) AS n_answers
           FROM answers),
decided AS (
    SELECT pair_id, any_value(n_answers) AS n_answers, count(*) FILTER (WHERE n = top_n) AS n_top,
           min(first_seq) FILTER (WHERE n = top_n) AS top_seq, min(first_seq) AS pair_seq
    FROM ranked GROUP BY pair_id
),
chosen AS (
    SELECT k.*, d.pair_seq FROM kept k JOIN decided d USING (pair_id)
    WHERE CASE $disagreement WHEN 'all' THEN true
               WHEN 'drop' THEN d.n_answers = 1 AND k.seq = d.top_seq
               ELSE d.n_top = 1 AND k.seq = d.top_seq END
),
noted AS (
    SELECT c.*, CASE WHEN $written = 'use' THEN n.written_chosen END AS written
    FROM chosen c LEFT JOIN vote_notes n ON n.vote_id = c.id
),
resolved AS (
    SELECT *, 0 AS part, coalesce(written, CASE choice WHEN 'A' THEN response_a ELSE response_b END) AS chosen_text,
           CASE choice WHEN 'A' THEN response_b ELSE response_a END AS rejected_text
    FROM noted WHERE choice IN ('A', 'B')
    UNION ALL
    SELECT noted.*, part, written AS chosen_text, CASE part WHEN 0 THEN response_a ELSE response_b END AS rejected_text
    FROM noted, (VALUES (0), (1)) AS parts(part)
    WHERE choice = 'both_bad' AND $both_bad = 'written' AND written IS NOT NULL
)"""

_UTC = "timezone('UTC', created_at)"
_ISO = (f"strftime({_UTC}, '%Y-%m-%dT%H:%M:%S') || CASE WHEN strftime({_UTC}, '%f') = '000000' THEN '' "
        f"ELSE '.' || strftime({_UTC}, '%f') END || '+00:00'")  # what datetime.isoformat() writes

_ROWS = f"""WITH {_CHOSEN}
SELECT from_json(prompt, '[{{"role": "VARCHAR", "content": "VARCHAR"}}]') AS prompt,
       [{{'role': 'assistant', 'content': chosen_text}}] AS chosen,
       [{{'role': 'assistant', 'content': rejected_text}}] AS rejected,
       pair_id, annotator, model_id, coalesce(adapter_id, '') AS adapter_id, written IS NOT NULL AS human_written,
       {_ISO} AS voted_at
FROM resolved ORDER BY pair_seq, seq, part"""

_COUNTS = f"""WITH {_CHOSEN},
row_counts AS (SELECT count(*) AS rows, count(*) FILTER (WHERE written IS NOT NULL) AS human_written FROM resolved),
vote_counts AS (SELECT count(*) AS votes, count(*) FILTER (WHERE probe) AS probe_votes FROM framed),
pair_counts AS (
    SELECT count(*) AS pairs, count(*) FILTER (WHERE n_answers > 1) AS disagreeing,
           count(*) FILTER (WHERE NOT CASE $disagreement WHEN 'all' THEN true WHEN 'drop' THEN n_answers = 1
                                     ELSE n_top = 1 END) AS dropped
    FROM decided
),
chosen_counts AS (
    SELECT count(*) FILTER (WHERE choice = 'tie') AS ties,
           count(*) FILTER (WHERE choice = 'both_bad'
                            AND NOT ($both_bad = 'written' AND written IS NOT NULL)) AS both_bad
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


class CountingStore:
    """Mixin of `Store`: whole-table figures in SQL (uses `self._cur()`)."""

    def preference_rows(self, disagreement: str, both_bad: str, written: str, limit: int | None = None) -> pa.Table:
        """The resolved preference rows (prompt/chosen/rejected + provenance) as Arrow, oldest pair first."""
        params = {"disagreement": disagreement, "both_bad": both_bad, "written": written}
        sql = _ROWS + (" LIMIT $limit" if limit is not None else "")
        if limit is not None:
            params["limit"] = int(limit)
        with self._cur().cursor() as cur:  # a fresh cursor: a relation's Arrow output skips the DB-API result's copy
            return cur.sql(sql, params=params).to_arrow_table()

    def preference_counts(self, disagreement: str, both_bad: str, written: str) -> dict[str, int]:
        """What resolution keeps and leaves out: the fields of RESOLVE_COUNT_FIELDS."""
        row = self._cur().execute(_COUNTS, {"disagreement": disagreement, "both_bad": both_bad,
                                            "written": written}).fetchall()[0]
        return dict(zip(RESOLVE_COUNT_FIELDS, row))

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
