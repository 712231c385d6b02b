"""Durability of the DuckDB file: checkpoints, clean-shutdown records, and refusing a store that lost data.

DuckDB commits to a write-ahead log (`<db>.wal`) and moves it into the `.duckdb` file only at a checkpoint. A
store that is never closed keeps its data in the `.wal` alone; lose or cut that file and the app would start on
what is left as if nothing happened. So:

- `checkpoint()` runs on close, after each training round and periodically (`prefapp.hosting.durability`);
  closing the last Store on a file records a clean shutdown with its figures (votes, rounds) in `store_sessions`
  and checkpoints, so the `.duckdb` file alone then holds everything.
- High-water marks (the vote and prompt sequences, pairs, rounds: none of them ever goes down, undo included)
  are kept beside the file in `<db>.marks.json`, refreshed by `flush_marks()` after writes. On open, a store
  whose marks are lower than those recorded (a lost or cut `.wal`, an older file copied over) is refused with
  `StoreDamagedError`, whose message names the newest backup and `prefapp restore`; so is a file DuckDB cannot
  read. Delete the marks file to go on with what is left on purpose.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import duckdb

from prefapp.store.records import _now

log = logging.getLogger(__name__)

MARKS_SUFFIX = ".marks.json"
MARK_NAMES = ("votes_seq", "prompts_seq", "pairs", "rounds")  # what never decreases in a healthy store
MARK_WORDS = {"votes_seq": "votes ever recorded", "prompts_seq": "prompts ever added", "pairs": "pairs served",
              "rounds": "training rounds"}


class StoreDamagedError(RuntimeError):
    """The database file is unreadable or holds less than it did; the message says how to restore a backup."""


def marks_path(db: Path) -> Path:
    return db.with_name(db.name + MARKS_SUFFIX)


def backups_dir(db: Path) -> Path:
    """Where backups of `db` go (`data/backups/` next to the default `data/prefapp.duckdb`)."""
    return db.parent / "backups"


def newest_backup(db: Path) -> Path | None:
    found = [p for p in backups_dir(db).glob("*.duckdb") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def restore_hint(db: Path) -> str:
    """What to do about a damaged `db`: the newest backup and the command that brings it back."""
    backup = newest_backup(db)
    if backup is None:
        return (f"There is no backup in {backups_dir(db)}. If you have a copy elsewhere, run `prefapp restore COPY` "
                f"(the damaged file is kept beside it).")
    return (f"The newest backup is {backup}: stop the app and run `prefapp restore {backup}` "
            f"(the damaged file is kept beside it).")


def damaged(db: Path, what: str) -> StoreDamagedError:
    return StoreDamagedError(f"the database {db} {what}. {restore_hint(db)}")


def connect_error(db: Path, exc: duckdb.Error) -> StoreDamagedError | None:
    """A StoreDamagedError for a file DuckDB cannot read (corrupt file or log), else None."""
    text = str(exc)
    signs = ("not a valid DuckDB database file", "Corrupt", "corrupt", "replaying WAL", "checksum",
             "Serialization Error", "INTERNAL Error", "Failed to read")
    if not any(s in text for s in signs):
        return None
    first_line = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return damaged(db, f"cannot be read (DuckDB: {first_line})")


def read_marks(path: Path) -> dict | None:
    """The recorded marks, or None when there are none (or the file is unreadable: then nothing is checked)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("%s is unreadable: the store is opened without checking it for lost data", path)
        return None
    return data if isinstance(data, dict) else None


def write_marks(path: Path, marks: dict) -> None:
    """Replace the marks file atomically (a crash leaves the old or the new one, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(marks, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


class DurableStore:
    """Mixin for `Store`: checkpoints, the clean-shutdown record and the lost-data check. Uses `self._con`,
    `self._cur()`, `self._write_lock` and `self.path` of the Store."""

    _session_id: int | None = None
    _durable_open = False  # set once the open-time check passed: only then may close record figures
    _marks_lock = threading.Lock()
    _writes: int = 0  # bumped by every committed write; the keeper flushes marks when it moved
    _flushed_writes: int = -1

    # -- figures ----------------------------------------------------------------------------------

    def marks(self) -> dict[str, int]:
        """The store's high-water marks (see MARK_NAMES) and its current vote count."""
        cur = self._cur()
        seqs = dict(cur.execute("SELECT sequence_name, coalesce(last_value, 0) FROM duckdb_sequences() "
                                "WHERE sequence_name IN ('votes_id_seq', 'prompts_id_seq')").fetchall())
        (pairs,) = cur.execute("SELECT count(*) FROM pairs").fetchone()
        (rounds,) = cur.execute("SELECT coalesce(max(id), 0) FROM rounds").fetchone()
        (votes,) = cur.execute("SELECT count(*) FROM votes").fetchone()
        return {"votes_seq": int(seqs.get("votes_id_seq", 0)), "prompts_seq": int(seqs.get("prompts_id_seq", 0)),
                "pairs": int(pairs), "rounds": int(rounds), "votes": int(votes)}

    def last_clean_shutdown(self) -> dict | None:
        """The figures recorded at the newest clean shutdown ({closed_at, votes, rounds, pairs, prompts}), or None."""
        row = self._cur().execute(
            "SELECT closed_at, votes, rounds, pairs, prompts FROM store_sessions WHERE closed_at IS NOT NULL "
            "ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else dict(zip(("closed_at", "votes", "rounds", "pairs", "prompts"), row))

    def previous_stop_was_clean(self) -> bool | None:
        """Whether the run before this one closed the store (None: no run before this one was recorded)."""
        rows = self._cur().execute("SELECT closed_at FROM store_sessions WHERE id < ? ORDER BY id DESC LIMIT 1",
                                   [self._session_id or 0]).fetchall()
        return None if not rows else rows[0][0] is not None

    # -- open / close -----------------------------------------------------------------------------

    def _open_durable(self, first: bool) -> None:
        """Check the file against its recorded marks, then record this run (checkpointed, so it outlives the log)."""
        recorded = read_marks(marks_path(self.path))
        current = self.marks()
        if recorded is not None:
            lost = [f"{MARK_WORDS[k]} {current[k]} < {recorded[k]}" for k in MARK_NAMES
                    if isinstance(recorded.get(k), int) and current[k] < recorded[k]]
            if lost:
                how = "the write-ahead log" if recorded.get("state") == "open" else "data"
                raise damaged(self.path, f"holds less than it did ({', '.join(lost)}): {how} "
                              f"({self.path.name}.wal) was lost or cut, or an older file was copied over it. "
                              f"To go on with what is left instead, delete {marks_path(self.path)}")
        self._durable_open = True
        if not first:
            return
        with self._write_lock:
            cur = self._cur()
            (self._session_id,) = cur.execute(
                "INSERT INTO store_sessions (id, opened_at, pid) SELECT coalesce(max(id), 0) + 1, ?, ? "
                "FROM store_sessions RETURNING id", [_now(), os.getpid()]).fetchone()
        if self.previous_stop_was_clean() is False:
            log.warning("%s: the previous run did not shut down cleanly (no clean shutdown recorded); its "
                        "acknowledged votes were checked against %s", self.path, marks_path(self.path).name)
        self.checkpoint()
        self.flush_marks(state="open", force=True)

    def _close_durable(self, last: bool) -> None:
        """Record a clean shutdown with its figures and checkpoint, so the `.duckdb` file alone holds everything."""
        if not self._durable_open:  # refused on open: leave the file and its marks exactly as they were
            return
        if not last:
            self.flush_marks(state="open")
            return
        figures = self.marks()
        if self._session_id is not None:
            with self._write_lock:
                self._cur().execute(
                    "UPDATE store_sessions SET closed_at = ?, votes = ?, rounds = ?, pairs = ?, prompts = ? "
                    "WHERE id = ?", [_now(), figures["votes"], figures["rounds"], figures["pairs"],
                                     figures["prompts_seq"], self._session_id])
        self.checkpoint()
        self.flush_marks(state="closed", force=True)
        log.info("%s closed cleanly: %d votes, %d rounds", self.path, figures["votes"], figures["rounds"])

    # -- checkpoints and marks --------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Move the write-ahead log into the database file; False when DuckDB could not now (it retries later)."""
        with self._write_lock:
            try:
                self._cur().execute("CHECKPOINT")
            except duckdb.Error as exc:  # e.g. a transaction of another cursor still open: next time
                log.info("checkpoint of %s postponed: %s", self.path, exc)
                return False
        return True

    def flush_marks(self, state: str = "open", force: bool = False) -> None:
        """Record the current marks beside the file when something was written since the last time."""
        with self._marks_lock:
            writes = self._writes
            if not force and writes == self._flushed_writes:
                return
            marks = {**self.marks(), "state": state, "pid": os.getpid(), "at": _now().isoformat()}
            write_marks(marks_path(self.path), marks)
            self._flushed_writes = writes
