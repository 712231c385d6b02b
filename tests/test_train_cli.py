"""`prefapp train` headless: on the DuckDB store, with preflight, as 2 CPU processes (gloo) under torchrun and
`accelerate launch`, and KTO rounds (`--method kto`) on the store's labelled completions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from prefapp.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from test_rounds import seed_votes  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")
ACCELERATE = Path(sys.executable).with_name("accelerate")
KNOBS = ["--batch-size", "4", "--epochs", "2", "--max-length", "128", "--lora-r", "4"]


def env() -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFAPP_")}
    return {**base, "HF_HUB_OFFLINE": "1", "PREFAPP_MODEL": "demo", "OMP_NUM_THREADS": "1"}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=600)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A store with 16 A/B votes and 2 ties (which training must leave out and preflight must count)."""
    with Store(tmp_path / "prefapp.duckdb") as store:
        seed_votes(store, 16)
        prompt = store.get_prompt(1)
        for i in range(2):
            pair = store.add_pair(prompt, "Paris.", "Paris!", False, "prefapp-demo", None, {}, "ann")
            store.record_vote(pair.id, "tie", "ann")
    return tmp_path


def test_train_on_the_store_after_a_preflight(data_dir: Path):
    cli = [sys.executable, "-m", "prefapp.cli", "train", "--data-dir", str(data_dir)]
    checked = run(cli + KNOBS + ["--preflight"])
    assert checked.returncode == 0, checked.stderr
    assert "ready to train" in checked.stdout and "16 pairs" in checked.stdout and "2 ties" in checked.stdout
    assert "<|assistant|>" in checked.stdout  # the tokenized preview
    bad = run(cli + ["--batch-size", "4", "--max-length", "16"])
    assert bad.returncode == 2 and "max_length" in bad.stderr and "at least" in bad.stderr
    trained = run(cli + KNOBS + ["--output", str(data_dir / "adapter")])
    assert trained.returncode == 0, trained.stderr
    assert "16 pairs from the store" in trained.stdout and "step 8/8" in trained.stdout
    assert (data_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert "recorded as round 1" in trained.stdout  # a run on the store is that store's round: the app lists it
    with Store(data_dir / "prefapp.duckdb") as store:
        (rnd,) = store.rounds()
    assert (rnd.status, rnd.adapter_path, rnd.n_pairs) == ("finished", str((data_dir / "adapter").resolve()), 16)
    assert rnd.provenance["trained_by"] == "prefapp train" and len(rnd.provenance["dataset_sha256"]) == 64


LAUNCHERS = {  # the two ways multi-process training is started; accelerate's --multi_gpu runs torchrun underneath
    "torchrun": [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", "29517"],
    "accelerate": [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--main_process_port", "29518"],
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_cpu_processes_train_one_model(data_dir: Path, launcher: str):
    cmd = [*LAUNCHERS[launcher], "-m", "prefapp.cli", "train", "--data-dir", str(data_dir), *KNOBS,
           "--output", str(data_dir / "ddp")]
    done = run(cmd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = dict(re.findall(r"rank (\d)/2: 4 steps, weights sha256 ([0-9a-f]{64})", done.stdout))
    # 16 pairs, 4 per process per step, 2 processes: 2 steps per epoch, 4 in all (one process alone would take 8);
    # gradients are all-reduced, so both ranks end with bit-identical weights although each saw different pairs.
    assert set(ranks) == {"0", "1"} and ranks["0"] == ranks["1"], done.stdout
    assert "step 4/4" in done.stdout and "on 2 processes" in done.stdout
    assert (data_dir / "ddp" / "adapter_model.safetensors").is_file()


def weights_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_kto_round_on_the_store_as_the_app_trains_it(data_dir: Path):
    """`prefapp train --method kto`: every labelled completion (16 pairs unpaired, 2 chat thumbs, a both-bad vote's
    two responses; the 2 ties left out), the KTO preflight, the adapter moved and the base untouched, and the run
    recorded as the store's next round."""
    from prefapp.config import DEMO_MODEL_DIR

    with Store(data_dir / "prefapp.duckdb") as store:
        store.rate_completion("What is 2 + 2?", "4.", True, "ann")
        store.rate_completion("What is 3 + 3?", "Figure it out yourself.", False, "ann")
        bad = store.add_pair(store.get_prompt(2), "no idea", "whatever", False, "prefapp-demo", None, {}, "ann")
        store.record_vote(bad.id, "both_bad", "ann")
    cli = [sys.executable, "-m", "prefapp.cli", "train", "--method", "kto", "--data-dir", str(data_dir)]
    knobs = ["--batch-size", "4", "--epochs", "1", "--max-length", "128", "--lora-r", "4"]
    checked = run(cli + knobs + ["--preflight"])
    assert checked.returncode == 0, checked.stderr
    assert "36 labelled completions, 17 desirable / 19 undesirable" in checked.stdout
    assert "both_bad 0+/2-" in checked.stdout and "chat 1+/1-" in checked.stdout and "pairs 16+/16-" in checked.stdout
    base = weights_sha256(DEMO_MODEL_DIR / "model.safetensors")
    trained = run(cli + knobs + ["--output", str(data_dir / "kto")])
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-4000:]
    assert "36 labelled completions (KTO) from the store" in trained.stdout and "step 9/9" in trained.stdout
    weights = load_file(data_dir / "kto" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: KTO moved every one
    assert weights_sha256(DEMO_MODEL_DIR / "model.safetensors") == base
    assert "recorded as round 1" in trained.stdout
    with Store(data_dir / "prefapp.duckdb") as store:
        (rnd,) = store.rounds()
    assert (rnd.status, rnd.adapter_path, rnd.n_pairs) == ("finished", str((data_dir / "kto").resolve()), 36)
    assert rnd.config["method"] == "kto" and rnd.provenance["trained_by"] == "prefapp train"


@pytest.mark.parametrize("flags, fix", [
    (["--dataset", "some_export"], "prefapp import some_export"),  # KTO reads the store: import the export first
    (["--loss-type", "ipo"], "drop --loss-type"),  # a DPO loss has no meaning for KTO
    (["--batch-size", "1"], "batch_size 2 or more"),  # the KTO preflight's own error, as in the app
])
def test_kto_refuses_what_it_cannot_do_and_names_the_fix(data_dir: Path, flags: list[str], fix: str):
    done = run([sys.executable, "-m", "prefapp.cli", "train", "--method", "kto", "--data-dir", str(data_dir), *flags])
    assert done.returncode == 2 and fix in done.stderr, done.stderr[-2000:]
    with Store(data_dir / "prefapp.duckdb") as store:
        assert store.rounds() == []
