"""Hosting rules: no open app on a public interface by accident, /data on a Space, the storage warning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefapp.config import AppConfig, ConfigError
from prefapp.hosting.environment import access_text, check_bind, is_loopback, persistent_data_dir, storage_warning


def test_public_bind_without_accounts_needs_the_explicit_flag() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", auth_enabled=False, allow_public=False)
    check_bind("0.0.0.0", auth_enabled=True, allow_public=False)
    check_bind("0.0.0.0", auth_enabled=False, allow_public=True)
    with pytest.raises(ConfigError, match="PREFAPP_HF_ADMINS=<your Hub name>.*--allow-public"):
        check_bind("0.0.0.0", auth_enabled=False, allow_public=False)
    assert "Open access on 127.0.0.1 (this machine only)" in access_text("127.0.0.1", None)
    assert "anyone who can reach it" in access_text("0.0.0.0", None)


def test_serve_refuses_a_public_host_before_loading_anything(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFAPP_")}
    run = subprocess.run([sys.executable, "-m", "prefapp.cli", "serve", "--model", "demo", "--data-dir",
                          str(tmp_path), "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "refusing to serve on 0.0.0.0 without accounts" in run.stderr
    assert not (tmp_path / "prefapp.duckdb").exists()


def test_space_storage_default_and_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert persistent_data_dir(tmp_path) is None and storage_warning(tmp_path / "x", tmp_path) is None
    monkeypatch.setenv("SPACE_ID", "someone/prefapp")
    assert persistent_data_dir(tmp_path) == tmp_path / "prefapp"
    assert persistent_data_dir(tmp_path / "absent") is None
    assert storage_warning(tmp_path / "prefapp", root=tmp_path) is None
    warning = storage_warning(tmp_path.parent / "elsewhere", root=tmp_path)
    assert "lost when it restarts" in warning and "Export" in warning
    monkeypatch.delenv("PREFAPP_DATA_DIR", raising=False)
    assert AppConfig.from_env().data_dir != tmp_path / "prefapp"  # the real /data is absent here: the repo's data/ stays


def test_backup_while_votes_are_written_is_a_consistent_database(service) -> None:
    import threading

    from prefapp.store import Store

    pairs = [service.next_pair("ann").pair_id for _ in range(30)]
    done = threading.Event()

    def vote_all() -> None:
        for pair_id in pairs:
            service.vote(pair_id, "A", "ann")
        done.set()

    voter = threading.Thread(target=vote_all)
    voter.start()
    backups = []
    while not done.is_set() or not backups:
        backups.append(service.backup())
    voter.join()
    live_migrations = service.store.applied_migrations()
    for path in backups:
        with Store(path) as copy:
            votes = copy.votes()
            assert copy.applied_migrations() == live_migrations
            assert all(copy.get_pair(v.pair_id) is not None for v in votes)  # no vote without its pair
            assert 0 <= len(votes) <= 30
    assert len(backups) >= 1 and len({p.name for p in backups}) == len(backups)


def test_space_without_storage_warns_and_exports_in_one_click(service, monkeypatch) -> None:
    from prefapp.ui.app import PrefUI

    monkeypatch.setenv("SPACE_ID", "someone/prefapp")
    pair = service.next_pair("ann")
    service.vote(pair.pair_id, "A", "ann")
    ui = PrefUI(service)
    assert ui.header.access.value.startswith("Open access on 127.0.0.1 (this machine only): no accounts")
    assert "lost when it restarts" in storage_warning(service.config.data_dir)
    rescue = next(f.fn for f in ui.blocks.fns.values() if (ui.header.rescue_button._id, "click") in f.targets)
    assert rescue("").startswith("Exported 1 pairs")
    assert len(list(service.config.exports_dir.glob("*.parquet"))) == 1
