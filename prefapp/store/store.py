"""The DuckDB store: one class owns the database file and every SQL statement of prefapp.

Prompts go in, pairs of generated answers are served, annotators vote, DPO rounds are logged.
A vote keeps a full snapshot of what the annotator saw, so later edits to prompts, pairs or
models can never change what a label meant.

Concurrency: Gradio calls us from worker threads. A DuckDB connection is not thread-safe, so
each thread gets its own cursor of the one connection; writes are tiny, so one lock serializes
them, which also rules out DuckDB's optimistic-concurrency conflicts. Votes arriving together
share one transaction (group commit, `vote_writes`), each answered only after its COMMIT.
Another *process* cannot open the file while we hold it (DuckDB takes a file lock): that is
`StoreLockedError`.

Schema: `MIGRATIONS` is an append-only list of small named steps, applied on open and recorded
in `_migrations`, so a fresh file and an upgraded old file end up identical. Never edit a step
that has shipped; add a new one.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from prefapp.store.durability import DurableStore, StoreDamagedError, connect_error
from prefapp.store.evals import EvalStore
from prefapp.store.feedback import FeedbackStore
from prefapp.store.counting import TALLIES, CountingStore, tally_votes, vote_counts_of
from prefapp.store.picks import PickStore, latest_vote
from prefapp.store.vote_writes import GroupCommit, VoteRequest, commit_votes
from prefapp.store.imports import ImportStore
from prefapp.store.selection import SelectionStore, insert_origin
from prefapp.store.migrations import MIGRATIONS, migrate  # noqa: F401 - MIGRATIONS: what a Store applies on open
from prefapp.store.records import (
    _PAIR_COLS, _PROMPT_COLS, _ROUND_COLS, _VOTE_COLS, AddPromptsResult, Pair, Prompt, Round, Vote, VoteCounts,
    VoteResult, _check_annotator, _check_choice, _json_dict, _now, _pair, _prompt, _round, _transaction,
    _vote, parse_prompts, prompt_hash, to_messages,
)
from prefapp.store.records import MAX_REPORTED_ERRORS  # noqa: F401 - tests and callers read it from here

log = logging.getLogger(__name__)

INTERRUPTED_ERROR = "interrupted (the app stopped during training)"
ROUND_STATUSES = ("running", "finished", "failed", "cancelled")


class StoreLockedError(RuntimeError):
    """Another process has the database file open for writing; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Opening the file: one DuckDB instance per file per process, shared by every Store on it.

_open_files: dict[Path, tuple[threading.Lock, int]] = {}  # resolved path -> (write lock, Stores open)
_open_files_lock = threading.Lock()


def _register(path: Path) -> tuple[threading.Lock, bool]:
    """Count one more Store on `path`; return the file's write lock and whether this Store is the first."""
    with _open_files_lock:
        lock, n = _open_files.get(path, (threading.Lock(), 0))
        _open_files[path] = (lock, n + 1)
        return lock, n == 0


def _unregister(path: Path) -> None:
    with _open_files_lock:
        lock, n = _open_files[path]
        if n == 1:
            del _open_files[path]
        else:
            _open_files[path] = (lock, n - 1)


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path))
        con.execute("SET enable_progress_bar = false")  # a long migration or export must not draw on our stdout
        return con  # (a setting of this connection; its cursors start from it)
    except duckdb.Error as e:
        if (unreadable := connect_error(path, e)) is not None:
            raise unreadable from e
        if not isinstance(e, duckdb.IOException):
            raise
        if "Could not set lock" not in str(e) and "Conflicting lock" not in str(e):
            raise
        pid = re.search(r"PID (\d+)", str(e))
        holder = f" (PID {pid.group(1)})" if pid else ""
        raise StoreLockedError(
            f"the database {path} is in use by another prefapp process{holder}, e.g. the running app. "
            "Stop that process first, or work through the running app's Data tab, "
            "or point --db at another file."
        ) from e


class Store(EvalStore, FeedbackStore, CountingStore, PickStore, DurableStore, ImportStore, SelectionStore):
    """The project's database: prompts, served pairs, votes and training rounds in one DuckDB file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = self.path.resolve()
        self._con = _connect(self.path)
        self._write_lock, first = _register(self._key)
        self._votes_queue = GroupCommit(self._write_lock)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False
        try:
            with self._write_lock:
                migrate(self._con)
            self._open_durable(first)  # refuses a file that lost data; records this run
            if first:  # a second Store in this process must not fail the first one's live round
                self._recover_interrupted_rounds()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every cursor and the connection; further calls raise."""
        if self._closed:
            return
        try:
            self._close_durable(last=_open_files[self._key][1] == 1)
        except duckdb.Error as exc:  # closing must still release the file
            log.warning("could not record the shutdown of %s: %s", self.path, exc)
        self._closed = True
        with self._cursors_lock:
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
        self._con.close()
        _unregister(self._key)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cur(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise RuntimeError(f"the store for {self.path} is closed: open a new Store")
        cur = getattr(self._local, "cur", None)
        if cur is None:
            with self._cursors_lock:
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cur = cur
        return cur

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self._cur()
        with self._write_lock, _transaction(cur):
            yield cur
        self._writes += 1  # committed: the keeper records new marks (prefapp.store.durability)

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the file, in the order they were applied."""
        rows = self._cur().execute("SELECT name FROM _migrations ORDER BY applied_at, name").fetchall()
        return [name for (name,) in rows]

    # -- prompts -------------------------------------------------------------------------------

    def add_prompts(self, prompts: Sequence[str | list[dict]], source: str) -> AddPromptsResult:
        """Store new prompts from one source, skipping invalid ones and ones already stored."""
        parsed = parse_prompts(prompts, source)
        added = self._insert_prompts(parsed.fresh, source.strip())
        return AddPromptsResult(added, parsed.batch_duplicates + len(parsed.fresh) - added, parsed.invalid,
                                parsed.errors)

    def _insert_prompts(self, fresh: dict[str, str], source: str) -> int:
        if not fresh:
            return 0
        with self._write() as cur:
            rows = cur.execute("SELECT hash FROM prompts WHERE list_contains(?::VARCHAR[], hash)", [list(fresh)])
            stored = {h for (h,) in rows.fetchall()}
            new = [(h, m) for h, m in fresh.items() if h not in stored]
            if new:
                cur.execute(
                    "INSERT INTO prompts (hash, messages, source, created_at) "
                    "SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])::JSON, ?, ?",
                    [[h for h, _ in new], [m for _, m in new], source, _now()],
                )
        return len(new)

    def prompt_count(self) -> int:
        """How many prompts are stored."""
        return self._cur().execute("SELECT count(*) FROM prompts").fetchone()[0]

    def get_prompt(self, prompt_id: int) -> Prompt | None:
        """The prompt with this id, or None."""
        row = self._cur().execute(f"SELECT {_PROMPT_COLS} FROM prompts WHERE id = ?", [prompt_id]).fetchone()
        return None if row is None else _prompt(row)

    def prompt_by_messages(self, prompt: str | list[dict]) -> Prompt | None:
        """The stored prompt with exactly these turns (as `add_prompts` normalizes them), or None."""
        digest = prompt_hash(to_messages(prompt))  # the hash add_prompts stores
        row = self._cur().execute(f"SELECT {_PROMPT_COLS} FROM prompts WHERE hash = ?", [digest]).fetchone()
        return None if row is None else _prompt(row)

    # -- pairs ---------------------------------------------------------------------------------

    def add_pair(self, prompt: Prompt, response_a: str, response_b: str, swapped: bool, model_id: str,
                 adapter_id: str | None, sampling: dict, served_to: str | None,
                 backend: tuple[str, str] | None = None, origin: dict | None = None) -> Pair:
        """Record a pair exactly as it is about to be shown (A left, B right); `backend` = (where, model name)
        of the engine that generated it ("local" or its URL); `origin`: why it was chosen (store/selection.py)."""
        if not model_id:
            raise ValueError("model_id is empty: pass the Hub id or path of the model that generated the pair")
        sampling_json = _json_dict(sampling, "sampling")
        served_to = (served_to or "").strip() or None  # '' and '  ' mean unknown, like None
        with self._write() as cur:
            row = cur.execute("SELECT messages FROM prompts WHERE id = ?", [prompt.id]).fetchone()
            if row is None:
                raise ValueError(f"unknown prompt id {prompt.id}: take prompts from this store's next_prompt()")
            pair = Pair(uuid.uuid4().hex, prompt.id, json.loads(row[0]), response_a, response_b, bool(swapped),
                        model_id, adapter_id, json.loads(sampling_json), served_to, _now())
            cur.execute(
                f"INSERT INTO pairs ({_PAIR_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [pair.id, pair.prompt_id, row[0], response_a, response_b, pair.swapped, model_id, adapter_id,
                 sampling_json, served_to, pair.created_at],
            )
            cur.execute("UPDATE prompts SET n_pairs = n_pairs + 1 WHERE id = ?", [prompt.id])
            if backend is not None:
                cur.execute("INSERT INTO pair_backends (pair_id, backend, model) VALUES (?, ?, ?)",
                            [pair.id, backend[0], backend[1]])
            if origin is not None:
                insert_origin(cur, pair.id, origin)
        return pair

    def pair_backend(self, pair_id: str) -> tuple[str, str] | None:
        """(backend, model) that generated a pair (a probe: its original's); None for pairs recorded before 060."""
        row = self._cur().execute(
            "SELECT b.backend, b.model FROM pairs p JOIN pair_backends b ON b.pair_id = coalesce(p.probe_of, p.id) "
            "WHERE p.id = ?", [pair_id]).fetchone()
        return None if row is None else (row[0], row[1])

    def get_pair(self, pair_id: str) -> Pair | None:
        """The pair with this id, or None."""
        row = self._cur().execute(f"SELECT {_PAIR_COLS} FROM pairs WHERE id = ?", [pair_id]).fetchone()
        return None if row is None else _pair(row)

    def pair_count(self) -> int:
        """How many pairs have been served."""
        return self._cur().execute("SELECT count(*) FROM pairs").fetchone()[0]

    def add_probe(self, pair_id: str, annotator: str) -> Pair:
        """A repeat of a voted pair for the same annotator, sides swapped, recorded as a new pair (probe_of)."""
        with self._write() as cur:
            new_id = uuid.uuid4().hex
            cur.execute(
                f"INSERT INTO pairs ({_PAIR_COLS}, probe_of) SELECT ?, prompt_id, prompt, response_b, response_a, "
                "NOT swapped, model_id, adapter_id, sampling, ?, ?, id FROM pairs WHERE id = ?",
                [new_id, annotator, _now(), pair_id])
            row = cur.execute(f"SELECT {_PAIR_COLS} FROM pairs WHERE id = ?", [new_id]).fetchone()
            if row is not None:
                cur.execute("UPDATE prompts SET n_pairs = n_pairs + 1 WHERE id = ?", [row[1]])
        if row is None:
            raise ValueError(f"unknown pair {pair_id!r}: a probe repeats a pair that exists")
        return _pair(row)

    def probe_links(self) -> dict[str, str]:
        """probe pair id -> the pair it repeats."""
        return dict(self._cur().execute("SELECT id, probe_of FROM pairs WHERE probe_of IS NOT NULL").fetchall())

    # -- votes ---------------------------------------------------------------------------------

    def record_vote(self, pair_id: str, choice: str, annotator: str, reason: str | None = None,
                    written: str | None = None) -> VoteResult:
        """Store an annotator's answer on a pair once, with its optional reason and human-written `chosen`; a repeat
        returns the first vote unchanged (its note too). Answered after the COMMIT that holds it, which votes
        arriving together share (prefapp.store.vote_writes)."""
        request = VoteRequest(pair_id, _check_choice(choice), _check_annotator(annotator),
                              (reason or "").strip() or None, (written or "").strip() or None)
        return self._votes_queue.submit(request, self._write_votes)

    def _write_votes(self, batch: list[VoteRequest]) -> None:
        """Write `batch` in one transaction (under the write lock); should that fail, each vote alone."""
        try:
            outcomes = commit_votes(self._cur(), batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].outcome = exc
                return
            log.warning("a batch of %d votes failed (%s): writing each alone", len(batch), exc)
            for request in batch:
                self._write_votes([request])
            return
        for request, outcome in zip(batch, outcomes):
            request.outcome = outcome
        if any(isinstance(outcome, VoteResult) and outcome.created for outcome in outcomes):
            self._writes += 1  # committed: the keeper checkpoints and records new marks (prefapp.store.durability)

    def votes(self, choice: str | None = None) -> list[Vote]:
        """All votes, oldest first; only those with `choice` when given."""
        if choice is None:
            rows = self._cur().execute(f"SELECT {_VOTE_COLS} FROM votes ORDER BY created_at, id").fetchall()
        else:
            rows = self._cur().execute(f"SELECT {_VOTE_COLS} FROM votes WHERE choice = ? ORDER BY created_at, id",
                                       [_check_choice(choice)]).fetchall()
        return [_vote(r) for r in rows]

    def undo_last_vote(self, annotator: str) -> Vote | None:
        """Delete `annotator`'s most recent vote (and its note) and return it; None when there is none."""
        annotator = _check_annotator(annotator)
        with self._write() as cur:
            row = latest_vote(cur, annotator)
            if row is None:
                return None
            cur.execute("DELETE FROM vote_notes WHERE vote_id = ?", [row[0]])
            cur.execute("DELETE FROM votes WHERE id = ?", [row[0]])
            vote = _vote(row)
            tally_votes(cur, [(vote.pair_id, vote.prompt_id, vote.annotator, vote.choice)], -1)
        return vote

    def vote_notes(self) -> dict[int, tuple[str | None, str | None]]:
        """vote id -> (reason, human-written chosen) for every vote that has a note."""
        rows = self._cur().execute("SELECT vote_id, reason, written_chosen FROM vote_notes").fetchall()
        return {vote_id: (reason, written) for vote_id, reason, written in rows}

    def vote_counts(self, annotator: str | None = None) -> VoteCounts:
        """Vote totals by choice and by annotator, plus `annotator`'s own count (from the tallies each vote keeps)."""
        return vote_counts_of(self._cur().execute(TALLIES).fetchall(), annotator)

    # -- training rounds -----------------------------------------------------------------------

    def start_round(self, base_model: str, config: dict, export_path: str | None, n_pairs: int) -> int:
        """Open the next training round as 'running' and return its number; only one may run at a time."""
        config_json = _json_dict(config, "config")
        if n_pairs < 0:
            raise ValueError(f"n_pairs={n_pairs} is negative: pass the number of pairs in the export")
        with self._write() as cur:
            running = cur.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if running is not None:
                raise ValueError(f"round {running[0]} is still running: wait for it to finish or cancel it first")
            (round_id,) = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM rounds").fetchone()
            cur.execute(
                "INSERT INTO rounds (id, status, base_model, export_path, n_pairs, config, started_at) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?)",
                [round_id, base_model, export_path, n_pairs, config_json, _now()],
            )
        log.info("round %d started on %s with %d pairs", round_id, base_model, n_pairs)
        return round_id

    def finish_round(self, round_id: int, adapter_path: str, metrics: dict) -> Round:
        """Mark a running round finished with its adapter and final metrics."""
        metrics_json = _json_dict(metrics, "metrics")
        return self._end_round(round_id, "finished", "adapter_path = ?, metrics = ?", [adapter_path, metrics_json])

    def fail_round(self, round_id: int, error: str, status: str = "failed") -> Round:
        """Mark a running round failed (or 'cancelled') with the reason."""
        if status not in ("failed", "cancelled"):
            raise ValueError(f"status {status!r} cannot end a round this way: use 'failed' or 'cancelled'")
        return self._end_round(round_id, status, "error = ?", [error])

    def _end_round(self, round_id: int, status: str, set_sql: str, params: list) -> Round:
        # set_sql is one of two literals above, never user input.
        with self._write() as cur:
            row = cur.execute("SELECT status FROM rounds WHERE id = ?", [round_id]).fetchone()
            if row is None:
                raise ValueError(f"unknown round {round_id}: start_round() returns the round number to use")
            if row[0] != "running":
                raise ValueError(f"round {round_id} is already {row[0]}: start a new round instead")
            cur.execute(f"UPDATE rounds SET status = ?, finished_at = ?, {set_sql} WHERE id = ?",
                        [status, _now(), *params, round_id])
            ended = _round(cur.execute(f"SELECT {_ROUND_COLS} FROM rounds WHERE id = ?", [round_id]).fetchone())
        log.info("round %d %s", round_id, status)
        self.checkpoint()  # a round's record goes into the .duckdb file, not only the log
        return ended

    def set_round_provenance(self, round_id: int, provenance: dict) -> None:
        """Record what a round trains on (dataset hash and counts, export, output dir); replaces the previous record."""
        provenance_json = _json_dict(provenance, "provenance")
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM rounds WHERE id = ?", [round_id]).fetchone() is None:
                raise ValueError(f"unknown round {round_id}: start_round() returns the round number to use")
            cur.execute("UPDATE rounds SET provenance = ? WHERE id = ?", [provenance_json, round_id])

    def reopen_round(self, round_id: int) -> Round:
        """Set a cancelled or failed round running again, to resume it from its checkpoint."""
        with self._write() as cur:
            row = cur.execute("SELECT status FROM rounds WHERE id = ?", [round_id]).fetchone()
            if row is None:
                raise ValueError(f"unknown round {round_id}: pick one from the rounds list")
            if row[0] not in ("cancelled", "failed"):
                raise ValueError(f"round {round_id} is {row[0]}: only a cancelled or failed round can be resumed")
            running = cur.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if running is not None:
                raise ValueError(f"round {running[0]} is still running: wait for it to finish or cancel it first")
            cur.execute("UPDATE rounds SET status = 'running', error = NULL, finished_at = NULL WHERE id = ?",
                        [round_id])
            reopened = _round(cur.execute(f"SELECT {_ROUND_COLS} FROM rounds WHERE id = ?", [round_id]).fetchone())
        log.info("round %d reopened to resume", round_id)
        return reopened

    def rounds(self) -> list[Round]:
        """Every training round, newest first."""
        return [_round(r) for r in self._cur().execute(f"SELECT {_ROUND_COLS} FROM rounds ORDER BY id DESC").fetchall()]

    def get_round(self, round_id: int) -> Round | None:
        """The round with this number, or None."""
        row = self._cur().execute(f"SELECT {_ROUND_COLS} FROM rounds WHERE id = ?", [round_id]).fetchone()
        return None if row is None else _round(row)

    def last_finished_round(self) -> Round | None:
        """The newest round that produced an adapter: the next generator, or None."""
        row = self._cur().execute(
            f"SELECT {_ROUND_COLS} FROM rounds WHERE status = 'finished' ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _round(row)

    def _recover_interrupted_rounds(self) -> None:
        with self._write() as cur:
            ids = cur.execute(
                "UPDATE rounds SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running' RETURNING id",
                [INTERRUPTED_ERROR, _now()],
            ).fetchall()
        for (round_id,) in ids:
            log.warning("round %d was still running when the app last stopped: marked failed", round_id)

    # -- backup --------------------------------------------------------------------------------

    def snapshot(self, dest: str | Path) -> Path:
        """Write a consistent copy of the database to a new file `dest` while the store stays open."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} already exists: choose a new file name or delete the old one")
        dest.parent.mkdir(parents=True, exist_ok=True)
        cur = self._cur()
        (source,) = cur.execute("SELECT current_database()").fetchone()
        alias = f"snapshot_{uuid.uuid4().hex}"
        # Identifiers cannot be parameters: `alias` is ours, the database name is quoted.
        quoted_source = '"' + source.replace('"', '""') + '"'
        cur.execute(f"ATTACH ? AS {alias}", [str(dest)])
        try:
            # COPY FROM DATABASE expands to one statement per table; one transaction makes them all read
            # the same MVCC snapshot. It writes only to the copy, so votes need not wait for it.
            with _transaction(cur):
                cur.execute(f"COPY FROM DATABASE {quoted_source} TO {alias}")
        except BaseException:
            cur.execute(f"DETACH {alias}")
            dest.unlink(missing_ok=True)
            Path(f"{dest}.wal").unlink(missing_ok=True)
            raise
        cur.execute(f"DETACH {alias}")
        log.info("snapshot of %s written to %s", self.path, dest)
        return dest
