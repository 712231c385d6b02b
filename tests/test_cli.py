"""The console command, run as a user would: a real subprocess on a real DuckDB file."""

import os
import subprocess
import sys

import pytest
from datasets import load_from_disk

from prefapp.store import Store


def prefapp(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFAPP_MODEL": "demo"}
    return subprocess.run([sys.executable, "-m", "prefapp.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture
def data_dir(tmp_path):
    """A data dir whose store holds 12 A/B votes on rude-vs-polite demo answers."""
    with Store(tmp_path / "prefapp.duckdb") as store:
        store.add_prompts([f"What is {i} + 1?" for i in range(12)], source="test")
        for i in range(12):
            prompt = store.next_prompt()
            good, rude = f"{i} + 1 = {i + 1}.", f"{i} + 1 = {i + 1}. Obviously. Try to keep up."
            pair = store.add_pair(prompt, good, rude, swapped=False, model_id="prefapp-demo", adapter_id=None,
                                  sampling={}, served_to="ann")
            store.record_vote(pair.id, "A", "ann")
    return tmp_path


def test_help_lists_the_subcommands():
    out = prefapp("--help").stdout
    for command in ("serve", "export", "train", "loop", "build-demo-model"):
        assert command in out


def test_export_then_train_from_the_terminal(data_dir):
    done = prefapp("export", "--data-dir", str(data_dir), "--name", "cli")
    assert done.returncode == 0, done.stderr
    assert "exported 12 pairs" in done.stdout
    assert len(load_from_disk(str(data_dir / "exports" / "cli"))) == 12

    again = prefapp("export", "--data-dir", str(data_dir), "--name", "cli")
    assert again.returncode == 2 and "choose another name" in again.stderr

    trained = prefapp("train", "--data-dir", str(data_dir), "--dataset", str(data_dir / "exports" / "cli.parquet"),
                      "--batch-size", "4", "--epochs", "1", "--output", str(data_dir / "adapter"))
    assert trained.returncode == 0, trained.stderr
    assert "step 3/3" in trained.stdout
    assert (data_dir / "adapter" / "adapter_config.json").exists()


def test_bad_hyperparameters_are_refused_before_loading_anything(data_dir):
    done = prefapp("train", "--data-dir", str(data_dir), "--dataset", str(data_dir / "missing"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = prefapp("train", "--data-dir", str(data_dir), "--dataset", str(data_dir / "missing"), "--beta", "0")
    assert done.returncode == 2 and "start with 0.1" in done.stderr  # the settings are checked first, once
    prefapp("export", "--data-dir", str(data_dir), "--name", "x")
    done = prefapp("train", "--data-dir", str(data_dir), "--dataset", str(data_dir / "exports" / "x"), "--beta", "0")
    assert done.returncode == 2 and "start with 0.1" in done.stderr
