"""What each click asks of the store, answered from figures every vote and pair keeps up to date (migrations
010_vote_tallies and 070_click_figures), so a click costs the same at a thousand votes and at a million:

- the progress line reads `vote_levels` (how many pairs and prompts have exactly n votes: a few rows);
- the overlap pick starts at a floor kept per annotator and overlap (`overlap_floors`: no pair older than it can
  be served to them) and walks forward through the pairs in time windows, which DuckDB's zone maps cut to the
  row groups they touch, checking each page of candidates in the votes' pair_id index;
- a repeat probe draws random votes by id until one is the annotator's (`probe_candidate`);
- an undo reads the annotator's votes back from now in widening windows of time (`latest_vote`);
- the queue's refill pick and `next_prompt` read `prompts.n_pairs` (pairs served per prompt), a narrow scan of the
  prompts, never a grouping of the pairs (ties broken by the same draws from the caller's rng as before, made at
  once by numpy).

The floors are lower bounds and only the vote transaction may lower them (`tally_levels`), when a pair becomes
open (its first vote, or an undo that leaves it short again); a pick raises them only under the write lock, so a
vote can never slip under a floor unseen.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import duckdb
import numpy as np

from prefapp.store.records import _PROMPT_COLS, _VOTE_COLS, Pair, Prompt, _now, _prompt, _transaction

FIRST_WINDOW = timedelta(hours=1)  # the first slice of time an overlap pick reads; each next one is 8x wider
WINDOW_GROWTH = 8
UNDO_HORIZON = timedelta(days=3650)  # an undo looks back this far in windows, then reads every vote
PROBE_TRIES = 32  # random votes read for a repeat probe before the annotator's whole list is read
PAGE = 16  # candidates read per query, then looked up at once in the votes' pair_id index

_OPEN = "probe_of IS NULL AND n_votes BETWEEN 1 AND ? - 1"  # a pair short of `overlap` votes (param: overlap)


def latest_vote(cur: duckdb.DuckDBPyConnection, annotator: str) -> tuple | None:
    """`annotator`'s most recent vote (the columns of records._VOTE_COLS), or None: read back from now in widening
    windows of time, so an undo reads the last row groups, not every vote."""
    now, width = _now(), FIRST_WINDOW
    while True:
        since = now - width if width < UNDO_HORIZON else None  # at last, every vote
        row = cur.execute(f"SELECT {_VOTE_COLS} FROM votes WHERE annotator = ? "
                          f"{'AND created_at >= ?' if since else ''} ORDER BY created_at DESC, id DESC LIMIT 1",
                          [annotator, *([since] if since else [])]).fetchone()
        if row is not None or since is None:
            return row
        width *= WINDOW_GROWTH


def bump(cur: duckdb.DuckDBPyConnection, table: str, keys: tuple[str, str], rows: list[tuple]) -> None:
    """Add each row's delta (key, key, delta; distinct keys) to its counter `n` in `table` (a constant): one UPDATE
    for the counters that exist, an INSERT only for those seen for the first time. DuckDB's upsert (INSERT ... ON
    CONFLICT) costs about twice an UPDATE, and this runs inside every vote."""
    a, b = keys
    cases = " ".join(f"WHEN {a} = ? AND {b} = ? THEN ?" for _ in rows)
    match = " OR ".join(f"({a} = ? AND {b} = ?)" for _ in rows)
    found = cur.execute(f"UPDATE {table} SET n = n + CASE {cases} END WHERE {match} RETURNING {a}, {b}",
                        [*(x for row in rows for x in row), *(x for row in rows for x in row[:2])]).fetchall()
    missing = [row for row in rows if row[:2] not in set(found)]
    if missing:
        cur.execute(f"INSERT INTO {table} ({a}, {b}, n) VALUES {', '.join(['(?, ?, ?)'] * len(missing))}",
                    [x for row in missing for x in row])


def tally_levels(cur: duckdb.DuckDBPyConnection, pairs: dict[str, int], prompts: dict[int, int]) -> None:
    """Move pairs and prompts to their new vote counts (each by its delta: votes cast, or minus those taken back),
    in the caller's transaction: the per-vote counts, the levels histogram, and the overlap floors where a pair
    became open to more votes. One statement per table, whatever the number of pairs."""
    pair_rows = _add_votes(cur, "pairs", pairs, "probe_of IS NULL, created_at")
    prompt_rows = _add_votes(cur, "prompts", prompts)
    moves: Counter[tuple[str, int]] = Counter()  # (kind, n_votes) -> change in how many are at that level
    for kind, rows, deltas in (("prompt", prompt_rows, prompts), ("pair", pair_rows, pairs)):
        for id_, n_votes, *rest in rows:
            if kind == "pair" and not rest[0]:  # probes are never shared, so they are not counted as open
                continue
            moves[(kind, n_votes - deltas[id_])] -= 1
            moves[(kind, n_votes)] += 1
    levels = [(kind, n, change) for (kind, n), change in moves.items() if n > 0 and change]  # unvoted: uncounted
    if levels:
        bump(cur, "vote_levels", ("kind", "n_votes"), levels)
    for above, since in _opened(pair_rows, pairs).items():
        cur.execute("UPDATE overlap_floors SET since = ? WHERE overlap > ? AND since > ?", [since, above, since])


def _add_votes(cur: duckdb.DuckDBPyConnection, table: str, deltas: dict, returning: str = "") -> list[tuple]:
    """Add each id's delta to its `n_votes` in `table` (a constant); (id, n_votes, *returning) per row."""
    cases = " ".join("WHEN ? THEN ?" for _ in deltas)
    return cur.execute(f"UPDATE {table} SET n_votes = n_votes + CASE id {cases} END "
                       f"WHERE id IN ({', '.join('?' * len(deltas))}) "
                       f"RETURNING id, n_votes{', ' + returning if returning else ''}",
                       [*(x for item in deltas.items() for x in item), *deltas]).fetchall()


def _opened(pair_rows: list[tuple], deltas: dict[str, int]) -> dict[int, datetime]:
    """The overlap floors to lower: for each `n`, floors of overlaps above n go down to the oldest pair now open to
    an (n+1)-th vote that may lie below them: a pair voted for the first time, or one an undo left open again."""
    lowest: dict[int, datetime] = {}
    for pair_id, n_votes, regular, created_at in pair_rows:
        delta = deltas[pair_id]
        if regular and n_votes >= 1 and (delta < 0 or n_votes == delta):
            lowest[n_votes] = min(created_at, lowest.get(n_votes, created_at))
    return lowest


def recount_levels(cur: duckdb.DuckDBPyConnection) -> None:
    """Recompute `vote_levels`, `prompts.n_pairs` and reset the overlap floors from the tables (bulk writes)."""
    cur.execute("UPDATE prompts SET n_pairs = coalesce((SELECT count(*) FROM pairs p WHERE p.prompt_id = prompts.id), 0)")
    cur.execute("DELETE FROM vote_levels")
    cur.execute("INSERT INTO vote_levels SELECT 'pair', n_votes, count(*) FROM pairs "
                "WHERE probe_of IS NULL AND n_votes > 0 GROUP BY n_votes")
    cur.execute("INSERT INTO vote_levels SELECT 'prompt', n_votes, count(*) FROM prompts WHERE n_votes > 0 "
                "GROUP BY n_votes")
    cur.execute("DELETE FROM overlap_floors")


class PickStore:
    """Mixin of `Store`: the per-click reads (uses `self._cur()`, `self._write_lock` and `self.get_pair`)."""

    def labelling_progress(self, overlap: int = 1) -> tuple[int, int, int]:
        """(prompts, prompts with at least one vote, voted pairs still short of `overlap` votes), from the levels."""
        return self._cur().execute(
            "SELECT (SELECT count(*) FROM prompts), "
            "(SELECT coalesce(sum(n), 0) FROM vote_levels WHERE kind = 'prompt'), "
            "(SELECT coalesce(sum(n), 0) FROM vote_levels WHERE kind = 'pair' AND n_votes BETWEEN 1 AND ? - 1)",
            [overlap]).fetchall()[0]

    def pair_for_overlap(self, annotator: str, overlap: int) -> Pair | None:
        """The oldest voted pair that still needs another annotator's vote (fewer than `overlap`) and is new to
        `annotator`; probes are never shared."""
        cur = self._cur()
        if overlap < 2:
            return None
        with self._write_lock:  # no vote may lower a floor between our read and our raise
            (open_pairs,) = cur.execute("SELECT coalesce(sum(n), 0) FROM vote_levels WHERE kind = 'pair' "
                                        "AND n_votes BETWEEN 1 AND ? - 1", [overlap]).fetchone()
            if not open_pairs:
                return None
            row = cur.execute("SELECT since FROM overlap_floors WHERE annotator = ? AND overlap = ?",
                              [annotator, overlap]).fetchone()
            since = row[0] if row else cur.execute(f"SELECT min(created_at) FROM pairs WHERE {_OPEN}",
                                                   [overlap]).fetchone()[0]
            if since is None:
                return None
            found, floor, reads = self._walk_open_pairs(cur, annotator, overlap, since)
            if row is None or (reads > 1 and floor != row[0]):  # a floor one read from the answer is kept as is
                with _transaction(cur):
                    cur.execute("INSERT INTO overlap_floors VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                                "SET since = excluded.since", [annotator, overlap, floor])
        return self.get_pair(found) if found else None

    def _walk_open_pairs(self, cur: duckdb.DuckDBPyConnection, annotator: str, overlap: int,
                         since: datetime) -> tuple[str | None, datetime, int]:
        """(the oldest open pair from `since` on that `annotator` may take, or None; the floor to keep; how many
        windows or pages it read)."""
        now, start, width, reads = _now(), since, FIRST_WINDOW, 0
        after: str | None = None  # keyset: the id of the last candidate read at `start`
        while True:
            end = start + width if start + width <= now else None  # the last window has no end
            # Plain conjuncts on created_at, so DuckDB's zone maps skip the row groups outside the window.
            sql = (f"SELECT id, created_at FROM pairs WHERE created_at >= ? {'AND created_at < ?' if end else ''} "
                   f"{'AND (created_at > ? OR id > ?)' if after else ''} AND {_OPEN} "
                   "AND served_to IS DISTINCT FROM ? ORDER BY created_at, id LIMIT ?")
            params = [start, *([end] if end else []), *([start, after] if after else []), overlap, annotator, PAGE]
            rows, reads = cur.execute(sql, params).fetchall(), reads + 1
            voted = {pair_id for (pair_id,) in cur.execute(
                f"WITH v AS MATERIALIZED (SELECT pair_id, annotator FROM votes WHERE pair_id IN "
                f"({', '.join('?' * len(rows))})) SELECT pair_id FROM v WHERE annotator = ?",
                [*(pair_id for pair_id, _ in rows), annotator]).fetchall()} if rows else set()
            for pair_id, created_at in rows:
                if pair_id not in voted:
                    return pair_id, created_at, reads
            if len(rows) == PAGE:  # the window goes on after the last candidate read
                (after, start) = rows[-1]
                continue
            if end is None:  # nothing open to them now: later pairs are newer, and a pair reopened lowers the floor
                return None, max(now, since), reads
            start, width, after = end, width * WINDOW_GROWTH, None

    def probe_candidate(self, annotator: str, rng: random.Random) -> str | None:
        """A pair `annotator` voted on (not a probe, not yet probed), chosen at random; None when there is none.

        Votes drawn at random by id through the primary key and kept when they qualify (rejection sampling: as
        uniform over the qualifying votes as a draw from their full list); after PROBE_TRIES misses, the full list."""
        cur = self._cur()
        (last,) = cur.execute("SELECT max(id) FROM votes").fetchone()
        for _ in range(PROBE_TRIES if last else 0):
            row = cur.execute("SELECT pair_id, annotator FROM votes WHERE id = ?", [rng.randint(1, last)]).fetchone()
            if row is not None and row[1] == annotator and self._probe_ok(cur, row[0], annotator):
                return row[0]
        rows = cur.execute(
            "SELECT v.pair_id FROM votes v JOIN pairs p ON p.id = v.pair_id WHERE v.annotator = ? "
            "AND p.probe_of IS NULL AND NOT EXISTS (SELECT 1 FROM pairs q WHERE q.probe_of = v.pair_id "
            "AND q.served_to = ?) ORDER BY v.pair_id", [annotator, annotator]).fetchall()
        return rng.choice(rows)[0] if rows else None

    @staticmethod
    def _probe_ok(cur: duckdb.DuckDBPyConnection, pair_id: str, annotator: str) -> bool:
        """`pair_id` is no probe and no probe of it was served to `annotator`."""
        (regular,) = cur.execute("SELECT probe_of IS NULL FROM pairs WHERE id = ?", [pair_id]).fetchone()
        return regular and cur.execute("SELECT 1 FROM pairs WHERE probe_of = ? AND served_to = ?",
                                       [pair_id, annotator]).fetchone() is None

    def next_prompt(self, rng: random.Random | None = None) -> Prompt | None:
        """A prompt with the fewest pairs served so far (random among ties), or None when there are none."""
        rows = self._cur().execute(
            "SELECT id FROM prompts WHERE n_pairs = (SELECT min(n_pairs) FROM prompts) ORDER BY id").fetchall()
        return self.get_prompt((rng or random.Random()).choice(rows)[0]) if rows else None

    def least_served_prompts(self, limit: int, pending: dict[int, int] | None = None,
                             rng: random.Random | None = None, exclude: set[int] | frozenset = frozenset()
                             ) -> list[Prompt]:
        """Up to `limit` prompts with the fewest pairs served, counting `pending` (id -> pairs queued) as served;
        ties at random: one rng.random() per prompt not excluded, in id order, as it always drew."""
        rng, pending = rng or random.Random(), pending or {}
        columns = self._cur().execute("SELECT id, n_pairs FROM prompts ORDER BY id").fetchnumpy()
        ids, served = columns["id"], columns["n_pairs"].astype(np.int64)
        if exclude:
            kept = ~np.isin(ids, np.fromiter(exclude, dtype=np.int64))
            ids, served = ids[kept], served[kept]
        for pid, queued in pending.items():  # a few: the pairs in the queue
            at = np.searchsorted(ids, pid)
            if at < len(ids) and ids[at] == pid:
                served[at] += queued
        picked = [int(pid) for pid in ids[_fewest(served, _draws(rng, len(ids)), limit)]]
        if not picked:
            return []
        found_rows = self._cur().execute(
            f"SELECT {_PROMPT_COLS} FROM prompts WHERE id IN ({', '.join('?' * len(picked))})", picked).fetchall()
        by_id = {row[0]: _prompt(row) for row in found_rows}
        return [by_id[pid] for pid in picked if pid in by_id]


def _fewest(served: np.ndarray, draws: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the `limit` smallest (served, draw) pairs in that order, as sorted(zip(served, draws))[:limit]
    gives them, sorting only those: every prompt under the limit-th count, and the fewest draws at that count."""
    limit = min(limit, len(served))
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    cut = int(np.searchsorted(np.cumsum(np.bincount(served)), limit))  # the count of the limit-th prompt
    under, at = np.flatnonzero(served < cut), np.flatnonzero(served == cut)
    at = at[np.argpartition(draws[at], limit - len(under) - 1)[:limit - len(under)]]
    chosen = np.concatenate([under, at])
    return chosen[np.lexsort((chosen, draws[chosen], served[chosen]))]


def _draws(rng: random.Random, n: int) -> np.ndarray:
    """`n` values of rng.random(), computed at once: numpy's legacy generator is the same Mersenne Twister with the
    same 53-bit doubles, so it continues from rng's state, and rng is moved on as `n` calls would have moved it."""
    if type(rng) is not random.Random:  # a subclass may draw differently: ask it
        return np.array([rng.random() for _ in range(n)])
    version, internal, gauss = rng.getstate()
    twister = np.random.RandomState()
    twister.set_state(("MT19937", np.array(internal[:-1], dtype=np.uint32), internal[-1]))
    draws = twister.random_sample(n)
    _, key, pos, _, _ = twister.get_state()
    rng.setstate((version, (*(int(k) for k in key), int(pos)), gauss))
    return draws
