"""The store refuses to start on lost data and comes back from a backup: real processes, real DuckDB files.

A child process opens the store, records votes, lets its keeper record the marks, and is killed with SIGKILL
(the store never closed, so the votes sit in the write-ahead log). Then the log is deleted, cut or corrupted, or
the child closes cleanly; what the next open does is checked, through the `prefapp` command as an operator sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from prefapp.cli import main as prefapp_main
from prefapp.hosting.durability import Keeper, KeeperConfig, restore
from prefapp.store import Store, StoreDamagedError
from prefapp.store.durability import marks_path

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from prefapp.hosting.durability import Keeper, KeeperConfig
    from prefapp.store import Store
    db, n, end = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    store = Store(db)
    keeper = Keeper(store, db.parent / "backups", KeeperConfig(checkpoint_every_s=3600, backup_keep=0,
                                                             marks_every_s=0.1))
    store.add_prompts([f"What is {i} + 2?" for i in range(n)], source="test")
    for i in range(n):
        pair = store.add_pair(store.next_prompt(), "good", "bad", swapped=False, model_id="m", adapter_id=None,
                              sampling={}, served_to="ann")
        store.record_vote(pair.id, "A", "ann")
    if end == "snapshot":
        store.snapshot(db.parent / "backups" / "by-hand.duckdb")
    time.sleep(0.5)  # the keeper records the marks
    print("votes", len(store.votes()), flush=True)
    if end == "close":
        keeper.close(); store.close()
    else:
        os.kill(os.getpid(), signal.SIGKILL)
""")


def child(db: Path, n: int, end: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", CHILD, str(db), str(n), end], capture_output=True, text=True,
                         env=env, timeout=120)
    assert f"votes {n}" in run.stdout, run.stderr[-2000:]
    assert run.returncode == (0 if end == "close" else -9), run.stderr[-2000:]


def prefapp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "prefapp.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def wal(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


def test_a_clean_close_leaves_every_vote_in_the_duckdb_file_alone(tmp_path) -> None:
    db = tmp_path / "data" / "prefapp.duckdb"
    child(db, 30, "close")
    assert not wal(db).exists()
    alone = tmp_path / "alone" / "prefapp.duckdb"
    alone.parent.mkdir()
    shutil.copyfile(db, alone)  # the .duckdb file without its log or marks
    with Store(alone) as store:
        assert len(store.votes()) == 30
        assert store.last_clean_shutdown()["votes"] == 30 and store.last_clean_shutdown()["rounds"] == 0
        assert store.previous_stop_was_clean() is True


@pytest.mark.parametrize("damage", ["delete", "cut", "corrupt"])
def test_a_lost_cut_or_corrupt_log_after_a_kill_is_refused_naming_the_newest_backup(tmp_path, damage) -> None:
    db = tmp_path / "data" / "prefapp.duckdb"
    child(db, 60, "snapshot")  # killed: the votes are in the log only
    log_bytes = wal(db).read_bytes()
    assert len(log_bytes) > 10_000
    if damage == "delete":
        wal(db).unlink()
    elif damage == "cut":
        wal(db).write_bytes(log_bytes[: len(log_bytes) * 2 // 3])
    else:
        middle = len(log_bytes) // 2
        wal(db).write_bytes(log_bytes[:middle] + b"\xff" * 64 + log_bytes[middle + 64:])
    backup = db.parent / "backups" / "by-hand.duckdb"
    with pytest.raises(StoreDamagedError) as refused:
        Store(db)
    message = str(refused.value)
    assert f"prefapp restore {backup}" in message, message
    if damage != "corrupt":
        assert "holds less than it did" in message and "votes ever recorded" in message

    run = prefapp("export", "--data-dir", str(db.parent))  # what an operator sees: the message, no traceback
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"prefapp restore {backup}" in run.stderr

    assert prefapp_main(["restore", "--data-dir", str(db.parent), str(backup)]) == 0
    with Store(db) as store:
        assert len(store.votes()) == 60  # the snapshot was taken after the 60th vote
    kept = [p.name for p in db.parent.iterdir() if ".replaced-" in p.name]
    assert any(name.startswith("prefapp.duckdb.replaced-") for name in kept)  # the damaged file is kept


def test_a_corrupt_file_is_refused_with_the_restore_command_not_a_traceback(tmp_path) -> None:
    db = tmp_path / "prefapp.duckdb"
    db.write_bytes(b"not a database " * 1000)
    run = prefapp("export", "--data-dir", str(tmp_path))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "cannot be read" in run.stderr and "prefapp restore" in run.stderr


def test_restore_round_trips_and_rotating_backups_keep_n(tmp_path, capsys) -> None:
    db = tmp_path / "prefapp.duckdb"
    with Store(db) as store:
        keeper = Keeper(store, tmp_path / "backups", KeeperConfig(backup_every_votes=3, backup_keep=2,
                                                                 marks_every_s=3600))
        try:
            store.add_prompts([f"Q{i}?" for i in range(12)], source="test")
            for i in range(12):
                pair = store.add_pair(store.next_prompt(), "a", "b", swapped=False, model_id="m", adapter_id=None,
                                      sampling={}, served_to="ann")
                store.record_vote(pair.id, "B", "ann")
                keeper.tick(float(i))
        finally:
            keeper.close()
        votes = [(v.pair_id, v.choice) for v in store.votes()]
    autos = sorted((tmp_path / "backups").glob("auto-*.duckdb"))
    assert len(autos) == 2  # four were written (every 3 votes), the oldest two deleted
    with Store(db) as store:  # more votes after the newest backup, then undo one: marks never go down
        store.undo_last_vote("ann")
    assert prefapp_main(["restore", "--db", str(db), str(autos[-1])]) == 0
    assert "12 votes, 0 rounds" in capsys.readouterr().out
    with Store(db) as store:
        assert [(v.pair_id, v.choice) for v in store.votes()] == votes

    with pytest.raises(SystemExit):  # argparse: the backup argument is required
        prefapp_main(["restore", "--db", str(db)])
    bogus = tmp_path / "bogus.duckdb"
    duckdb.connect(str(bogus)).close()
    with pytest.raises(Exception, match="not a prefapp store"):
        restore(bogus, db)
    assert prefapp_main(["backup", "--db", str(db), str(autos[-1])]) == 2  # never over an existing file
    assert "already exists: give a new file name" in capsys.readouterr().err


def test_an_older_copy_over_the_file_is_refused_until_restored_or_accepted(tmp_path) -> None:
    db = tmp_path / "prefapp.duckdb"
    with Store(db) as store:
        store.add_prompts(["Q?"], source="test")
        store.snapshot(tmp_path / "backups" / "old.duckdb")
        store.add_prompts(["R?"], source="test")
    shutil.copyfile(tmp_path / "backups" / "old.duckdb", db)  # by hand, not through `prefapp restore`
    with pytest.raises(StoreDamagedError, match="prompts ever added 1 < 2.*delete .*marks.json"):
        Store(db)
    marks_path(db).unlink()  # the operator accepts what is left
    with Store(db) as store:
        assert store.prompt_count() == 1
