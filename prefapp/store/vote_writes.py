"""Writing votes with group commit: votes that arrive together are written in one transaction, and none is answered
before the COMMIT that holds it.

Why: a vote alone costs DuckDB about 7 ms of CPU, nearly all of it per statement (an INSERT, the per-vote figures
of `counting.tally_votes`, the COMMIT), not per row. Under load, votes wait on the file's write lock anyway; here
whichever waiting vote takes the lock next writes every vote queued by then, with the same few statements whatever
their number, so a busy server pays the transaction once per batch instead of once per vote. A vote that finds no
one else waiting is a batch of one, so nothing waits for company.

Each vote keeps the meaning it has alone: a repeat of a stored vote, or of one earlier in the batch (a double
click), answers with that first vote and changes nothing; a vote on an unknown pair fails alone; and if the
batch's statements fail for any other reason, it is rolled back and each vote is written alone, so no vote can fail
its neighbours. Each answer carries the vote counts as of its COMMIT.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from prefapp.store.counting import TALLIES, tally_votes, vote_counts_of
from prefapp.store.records import _VOTE_COLS, VoteResult, _now, _transaction, _vote

Key = tuple[str, str]  # (pair id, annotator): at most one vote each (votes' UNIQUE constraint)


@dataclass
class VoteRequest:
    """One annotator's answer on a pair, waiting to be written; `outcome` is set once its batch has committed."""

    pair_id: str
    choice: str
    annotator: str
    reason: str | None = None
    written: str | None = None
    at: datetime = field(default_factory=_now)  # when the vote arrived: its created_at
    outcome: VoteResult | Exception | None = None

    @property
    def key(self) -> Key:
        return self.pair_id, self.annotator


class GroupCommit:
    """The votes of one Store waiting to be written. One thread at a time writes (under the file's write lock)
    everything queued when it starts; the others wait on a condition, not on the lock, so the votes of a finished
    batch are answered at once, while the next batch is written."""

    def __init__(self, write_lock: threading.Lock) -> None:
        self._write_lock = write_lock
        self._pending: list[VoteRequest] = []
        self._writing = False  # a thread is writing a batch
        self._changed = threading.Condition()

    def submit(self, request: VoteRequest, write: Callable[[list[VoteRequest]], None]) -> VoteResult:
        """Queue `request`; when no batch is being written and it is still unwritten, write every queued vote, ours
        included. Its result, or its error raised. `write` sets each request's outcome, only after the COMMIT."""
        leader, batch = False, []
        try:
            with self._changed:
                self._pending.append(request)
                while request.outcome is None and self._writing:
                    self._changed.wait()
                if request.outcome is None:
                    leader = self._writing = True
                    batch, self._pending = self._pending, []
            if leader:
                with self._write_lock:
                    write(batch)
        finally:
            if leader:
                for waiting in batch:  # a writer that died must not leave the others unanswered
                    if waiting.outcome is None:
                        waiting.outcome = RuntimeError("the vote was not written (the write failed): vote again")
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()  # answers the batch; one waiting vote writes the next
        if isinstance(request.outcome, Exception):
            raise request.outcome
        assert request.outcome is not None
        return request.outcome


def commit_votes(cur: duckdb.DuckDBPyConnection, batch: Sequence[VoteRequest]) -> list[VoteResult | Exception]:
    """Write `batch` in one transaction; each request's outcome, in order (see `write_votes`). A batch looks its
    repeats up first; a vote alone leaves them to the votes' UNIQUE constraint (repeats are rare: a double click, a
    retry) and, when it refuses one, is written again, looking it up."""
    try:
        with _transaction(cur):
            return write_votes(cur, batch, find_repeats=len(batch) > 1)
    except duckdb.ConstraintException:
        if len(batch) > 1 or not _stored_votes(cur, [batch[0].key]):  # not a repeat: another rule refused it
            raise
        with _transaction(cur):
            return write_votes(cur, batch, find_repeats=True)


def write_votes(cur: duckdb.DuckDBPyConnection, batch: Sequence[VoteRequest], find_repeats: bool = True
                ) -> list[VoteResult | Exception]:
    """Write `batch` inside the caller's transaction and return each request's outcome, in order: its new vote, the
    vote it repeats (created=False), or the error of a vote on an unknown pair. Without `find_repeats`, a repeat of a
    stored vote raises duckdb.ConstraintException (UNIQUE (pair_id, annotator)) and nothing may be committed."""
    first: dict[Key, VoteRequest] = {}
    for request in batch:
        first.setdefault(request.key, request)
    stored = _stored_votes(cur, list(first)) if find_repeats else {}
    inserted = _insert_votes(cur, [r for k, r in first.items() if k not in stored])
    notes = [(inserted[r.key][0], r.reason, r.written) for k, r in first.items()
             if k in inserted and (r.reason is not None or r.written is not None)]
    if notes:
        cur.execute("INSERT INTO vote_notes (vote_id, reason, written_chosen) VALUES "
                    + ", ".join(["(?, ?, ?)"] * len(notes)), [x for note in notes for x in note])
    tally_votes(cur, [(row[1], row[4], row[2], row[3]) for row in inserted.values()], +1)
    counts = vote_counts_of(cur.execute(TALLIES).fetchall())  # everyone's, once per batch; each voter's below
    outcomes: list[VoteResult | Exception] = []
    for request in batch:
        row = inserted.get(request.key) or stored.get(request.key)
        if row is None:
            outcomes.append(ValueError(f"unknown pair {request.pair_id!r}: it is not in this database; fetch a new "
                                       "pair"))
            continue
        created = request.key in inserted and first[request.key] is request
        mine = counts.by_annotator.get(request.annotator, 0)  # each answer its own dicts: callers may change theirs
        outcomes.append(VoteResult(_vote(row), created, dataclasses.replace(
            counts, by_choice=dict(counts.by_choice), by_annotator=dict(counts.by_annotator), mine=mine)))
    return outcomes


def _stored_votes(cur: duckdb.DuckDBPyConnection, keys: list[Key]) -> dict[Key, tuple]:
    """The stored votes among `keys` (rows of records._VOTE_COLS), found through the votes' pair_id index."""
    pair_ids = sorted({pair_id for pair_id, _ in keys})
    rows = cur.execute(f"SELECT {_VOTE_COLS} FROM votes WHERE pair_id IN ({', '.join('?' * len(pair_ids))})",
                       pair_ids).fetchall()
    wanted = set(keys)
    return {(row[1], row[2]): row for row in rows if (row[1], row[2]) in wanted}


def _insert_votes(cur: duckdb.DuckDBPyConnection, new: list[VoteRequest]) -> dict[Key, tuple]:
    """Insert one vote per request, each with the snapshot of its pair (what the annotator saw) and its arrival time;
    the inserted rows by key (a request whose pair is unknown inserts nothing)."""
    if not new:
        return {}
    rows = cur.execute(
        "INSERT INTO votes (pair_id, annotator, choice, prompt_id, prompt, response_a, response_b, swapped, model_id, "
        "adapter_id, sampling, shown_at, created_at) "
        "SELECT p.id, v.annotator, v.choice, p.prompt_id, p.prompt, p.response_a, p.response_b, p.swapped, "
        "p.model_id, p.adapter_id, p.sampling, p.created_at, v.cast_at "
        f"FROM pairs p JOIN (VALUES {', '.join(['(?, ?, ?, ?::TIMESTAMPTZ)'] * len(new))}) "
        f"v(pair_id, annotator, choice, cast_at) ON p.id = v.pair_id RETURNING {_VOTE_COLS}",
        [x for r in new for x in (r.pair_id, r.annotator, r.choice, r.at)],
    ).fetchall()
    return {(row[1], row[2]): row for row in rows}
