"""Keeping a served store safe over time: periodic checkpoints, rotating backups, clean stops, restore.

`Keeper` is one background thread per served store: every second it records the store's marks when something was
written (the lost-data check of `prefapp.store.durability` compares against them on the next start), every
`checkpoint_every_s` it checkpoints the write-ahead log into the `.duckdb` file, and it writes an automatic backup
after `backup_every_votes` new votes or `backup_every_s` seconds with new votes, whichever comes first, keeping the
newest `backup_keep` (`data/backups/auto-*.duckdb`; backups taken by hand are never deleted).

`stop_on_signals()` turns SIGTERM (Docker, systemd, a Space restart) into the same clean stop as Ctrl-C, so the
store is closed and checkpointed. `restore()` brings a backup back, keeping the replaced file beside it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from prefapp.errors import ConfigError

log = logging.getLogger(__name__)

AUTO_PREFIX = "auto-"


def _env_number(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name}={text!r} is not a number >= {minimum:g}: e.g. {name}={default:g}")
    return value


@dataclass(frozen=True)
class KeeperConfig:
    checkpoint_every_s: float = 60.0  # the most the .duckdb file lags behind the log; a checkpoint takes ms
    backup_every_s: float = 3600.0  # an hour of labelling is the most a disk failure may cost
    backup_every_votes: int = 500  # ...or this many votes, on a busy day
    backup_keep: int = 10  # automatic backups kept; each is a full copy of the file
    marks_every_s: float = 1.0  # how often written marks catch up with the store

    @classmethod
    def from_env(cls) -> "KeeperConfig":
        """PREFAPP_CHECKPOINT_EVERY_S, PREFAPP_BACKUP_EVERY_S, PREFAPP_BACKUP_EVERY_VOTES, PREFAPP_BACKUP_KEEP
        (0 turns automatic backups off)."""
        d = cls()
        return cls(checkpoint_every_s=_env_number("PREFAPP_CHECKPOINT_EVERY_S", d.checkpoint_every_s, 1),
                   backup_every_s=_env_number("PREFAPP_BACKUP_EVERY_S", d.backup_every_s, 1),
                   backup_every_votes=int(_env_number("PREFAPP_BACKUP_EVERY_VOTES", d.backup_every_votes, 1)),
                   backup_keep=int(_env_number("PREFAPP_BACKUP_KEEP", d.backup_keep, 0)))


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")


class Keeper:
    """The background thread that checkpoints, records marks and rotates automatic backups of one store."""

    def __init__(self, store, backups: Path, config: KeeperConfig | None = None) -> None:
        self.store, self.backups, self.config = store, Path(backups), config or KeeperConfig.from_env()
        self._stop = threading.Event()
        now = time.monotonic()
        self._last_checkpoint, self._last_backup = now, now
        self._votes_at_backup = store.marks()["votes_seq"]
        self._writes_at_checkpoint = store._writes
        self._thread = threading.Thread(target=self._run, name="prefapp-keeper", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.config.marks_every_s):
            try:
                self.tick(time.monotonic())
            except Exception:  # never let the keeper die: the next tick tries again
                log.exception("keeping %s safe failed this time", self.store.path)

    def tick(self, now: float) -> None:
        """One round of upkeep (the thread calls it every `marks_every_s`)."""
        if self.store._closed:
            return
        self.store.flush_marks()
        writes = self.store._writes
        if writes != self._writes_at_checkpoint and now - self._last_checkpoint >= self.config.checkpoint_every_s:
            if self.store.checkpoint():
                self._writes_at_checkpoint, self._last_checkpoint = writes, now
        if self.config.backup_keep > 0:
            votes = self.store.marks()["votes_seq"]
            new = votes - self._votes_at_backup
            if new >= self.config.backup_every_votes or (new > 0 and now - self._last_backup
                                                         >= self.config.backup_every_s):
                self.backup()
                self._votes_at_backup, self._last_backup = votes, now

    def backup(self) -> Path:
        """An automatic backup now, then the oldest automatic ones beyond `backup_keep` deleted."""
        path = self.store.snapshot(self.backups / f"{AUTO_PREFIX}{stamp()}.duckdb")
        autos = sorted(self.backups.glob(f"{AUTO_PREFIX}*.duckdb"))
        for old in autos[:max(0, len(autos) - self.config.backup_keep)]:
            old.unlink(missing_ok=True)
        log.info("automatic backup %s (%d kept)", path, min(len(autos), self.config.backup_keep))
        return path


def stop_on_signals() -> None:
    """SIGTERM stops the app as Ctrl-C does (KeyboardInterrupt in the main thread), so `finally` blocks close the
    store; a second signal while stopping is ignored rather than cutting the clean stop short."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        log.warning("%s received: closing the store and stopping", signal.Signals(signum).name)
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def check_backup(path: Path) -> dict[str, int]:
    """Open a backup read-only and count what it holds; ConfigError when it is not a prefapp database."""
    if not path.is_file():
        raise ConfigError(f"{path} is not a file: give a backup such as data/backups/auto-....duckdb")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(f"{path} cannot be opened as a DuckDB database ({str(exc).splitlines()[0]}): "
                          "pick another backup") from exc
    try:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"votes", "rounds", "prompts", "pairs"} <= tables:
            raise ConfigError(f"{path} is a DuckDB file but not a prefapp store (no votes table): pick a backup "
                              "written by prefapp")
        (votes,) = con.execute("SELECT count(*) FROM votes").fetchone()
        (rounds,) = con.execute("SELECT count(*) FROM rounds").fetchone()
    finally:
        con.close()
    return {"votes": int(votes), "rounds": int(rounds)}


def restore(backup: Path, db: Path) -> tuple[dict[str, int], Path | None]:
    """Put a copy of `backup` in place of `db`; the replaced file (and its log and marks) is renamed to
    `<db>.replaced-<time>`. Returns the restored figures and where the old file went (None: there was none).
    Refused while another process has `db` open."""
    from prefapp.store import Store
    from prefapp.store.durability import marks_path

    backup, db = Path(backup).resolve(), Path(db)
    if db.exists() and backup == db.resolve():
        raise ConfigError(f"{backup} is the database itself: give a backup file")
    figures = check_backup(backup)
    if db.exists():
        try:  # refused while the app holds the file; a damaged file cannot be opened, which is fine here
            duckdb.connect(str(db), read_only=True).close()
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise ConfigError(f"{db} is in use by a running prefapp: stop it, then restore") from exc
        except duckdb.Error:
            pass
    kept = None
    suffix = f".replaced-{stamp()}"
    for path in (db, db.with_name(db.name + ".wal"), marks_path(db)):
        if path.exists():
            target = path.with_name(path.name + suffix)
            path.rename(target)
            kept = kept or target
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(db.name + ".restoring")
    shutil.copyfile(backup, tmp)
    tmp.replace(db)
    with Store(db):  # applies newer migrations, records fresh marks and a clean shutdown
        pass
    log.info("restored %s from %s (%s)", db, backup, figures)
    return figures, kept
