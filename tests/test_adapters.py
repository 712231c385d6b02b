"""Rounds from anywhere: an adapter directory trained elsewhere becomes a round after a base-model check, from the
service (the Train tab) and from `prefapp add-round`; a Hub base is recorded as its id; every refusal names the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefapp.config import DEMO_MODEL_DIR, ConfigError
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.training.adapters import adapter_base, check_adapter, hub_id, record_hub_base, same_model


def save_adapter(out: Path, base: Path | str = DEMO_MODEL_DIR) -> Path:
    """A real (untrained) LoRA adapter of the demo model, as PEFT saves one anywhere."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(DEMO_MODEL_DIR), dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")).save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def test_hub_ids_from_cache_paths_and_record_hub_base(tmp_path):
    snapshot = "/root/.cache/huggingface/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/abc123"
    assert hub_id(snapshot) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id(str(DEMO_MODEL_DIR)) is None  # a local directory is not a Hub model
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": snapshot, "r": 4}))
    record_hub_base(tmp_path, snapshot)
    assert json.loads((tmp_path / "adapter_config.json").read_text()) == {
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "r": 4}
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(DEMO_MODEL_DIR)}))
    record_hub_base(tmp_path, DEMO_MODEL_DIR)  # a local base stays as it is
    assert json.loads((tmp_path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(DEMO_MODEL_DIR)


def test_same_model_knows_a_copy_and_a_cache_snapshot(tmp_path):
    copy = tmp_path / "demo-copy"
    shutil.copytree(DEMO_MODEL_DIR, copy)
    assert same_model(str(copy), str(DEMO_MODEL_DIR))  # the demo model of another checkout
    other = tmp_path / "other"
    shutil.copytree(DEMO_MODEL_DIR, other)
    config = json.loads((other / "config.json").read_text())
    config["num_hidden_layers"] = config.get("num_hidden_layers", 2) + 1
    (other / "config.json").write_text(json.dumps(config))
    assert not same_model(str(other), str(DEMO_MODEL_DIR))
    snap = "/x/hub/models--org--name/snapshots/1"
    assert same_model("org/name", snap) and not same_model("org/other", snap)


def test_refusals_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory: give the folder a LoRA adapter was saved to"):
        adapter_base(tmp_path / "missing")
    with pytest.raises(ConfigError, match="holds no adapter_config.json"):
        adapter_base(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        adapter_base(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4}))
    with pytest.raises(ConfigError, match="does not name its base model .*set it to the Hub id"):
        adapter_base(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/name"}))
    with pytest.raises(ConfigError, match="has a config but no adapter weights"):
        adapter_base(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"was trained on org/name, but this app runs prefapp-demo \(.*\): start the "
                                          r"app with --model org/name, or pick an adapter trained on prefapp-demo"):
        check_adapter(tmp_path, str(DEMO_MODEL_DIR), "prefapp-demo")


def test_the_service_registers_loads_and_chats_with_an_adapter_from_elsewhere(app_config, demo_choice, tmp_path):
    elsewhere = tmp_path / "data" / "from-elsewhere"  # inside the data dir: typed paths are confined there
    copy = tmp_path / "other-checkout-demo-model"
    shutil.copytree(DEMO_MODEL_DIR, copy)
    save_adapter(elsewhere, base=copy)  # trained against a copy of the model: the same base
    service = PrefService.open(app_config, choice=demo_choice, seed=0)
    try:
        rnd = service.add_round(str(elsewhere))
        assert (rnd.id, rnd.status, rnd.base_model) == (1, "finished", demo_choice.source)
        assert rnd.provenance == {"registered_from": str(elsewhere.resolve()), "adapter_base": str(copy),
                                  "trained_by": "elsewhere"}
        assert service.aligned == "round-1" and service.chat([], [], "What is 2 + 2?")[1] is not None
        with pytest.raises(ValueError, match="is already round 1: nothing was added"):
            service.add_round(str(elsewhere))
        wrong = save_adapter(tmp_path / "data" / "wrong", base="someone/another-model")
        with pytest.raises(ConfigError, match="was trained on someone/another-model, but this app runs"):
            service.add_round(str(wrong))
        assert [r.id for r in service.rounds()] == [1]
    finally:
        service.close()
    reopened = PrefService.open(app_config, choice=demo_choice, seed=0)  # the app shows it after a restart
    try:
        assert reopened.aligned == "round-1"
    finally:
        reopened.close()


def test_cli_add_round(tmp_path):
    adapter = save_adapter(tmp_path / "adapter")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFAPP_MODEL": "demo"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "prefapp.cli", "add-round", *a, "--data-dir",  # noqa
                                     str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    done = run(str(adapter))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("round 1: ")
    again = run(str(adapter))
    assert again.returncode == 2 and "is already round 1" in again.stderr
    missing = run(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    with Store(tmp_path / "prefapp.duckdb") as store:
        assert [r.adapter_path for r in store.rounds()] == [str(adapter.resolve())]
