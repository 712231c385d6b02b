"""Rounds end to end through PrefService: preflight blocks a bad start, cancel -> resume, crash -> restart -> resume,
provenance, hot swap of the generator, rollback, merge into a full model, push with a clear error offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prefapp.config import AppConfig, ConfigError, TrainConfig
from prefapp.preferences.export import load_preferences
from prefapp.training.rounds import dataset_sha256, model_card
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.training.dpo import last_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_training import preference_rows  # noqa: E402  (the same unambiguous pairs the training tests use)

LONG = TrainConfig(batch_size=4, num_epochs=10, max_length=128, lora_r=4, lora_alpha=8, save_steps=0)  # 40 steps


def seed_votes(store: Store, n: int = 16, context: str = "") -> None:
    """n A/B votes whose chosen side is the polite right answer: what a careful annotator would produce."""
    rows = preference_rows(n)
    first = store.prompt_count() + 1  # ids are handed out in order (the service may have seeded demo prompts)
    store.add_prompts([f"{context}{r['prompt'][0]['content']} (#{i})" for i, r in enumerate(rows)], source="test")
    prompts = [store.get_prompt(i) for i in range(first, first + n)]
    for i, (prompt, row) in enumerate(zip(prompts, rows)):
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        a, b, choice = (chosen, rejected, "A") if i % 2 else (rejected, chosen, "B")
        pair = store.add_pair(prompt, a, b, False, model_id="prefapp-demo", adapter_id=None,
                              sampling={"temperature": 1.0}, served_to="ann")
        store.record_vote(pair.id, choice, "ann")


def open_service(app_config: AppConfig, demo_choice) -> PrefService:
    return PrefService.open(app_config, choice=demo_choice, seed=0)


def wait_for_step(service: PrefService, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.training_status()
        if status is not None and status.step >= step:
            return
        assert service.training_running(), status
        time.sleep(0.02)
    raise AssertionError(f"no step {step} within {timeout}s: {service.training_status()}")


def test_preflight_blocks_a_start_that_cannot_work(service):
    seed_votes(service.store, 8, context="Answer in one short sentence, politely. ")
    report = service.preflight(TrainConfig(batch_size=4, max_length=16))
    assert not report.ok and "every prompt fills max_length=16" in report.first_error()
    assert report.data.pairs == 8 and "<|assistant|>" in report.preview
    with pytest.raises(ConfigError, match="every prompt fills max_length=16: .* at least"):
        service.start_training(TrainConfig(batch_size=4, max_length=16))
    assert service.rounds() == [] and not service.training_running()  # nothing started, no round recorded


def test_cancel_then_restart_then_resume_finishes_the_same_round(app_config, demo_choice):
    service = open_service(app_config, demo_choice)
    seed_votes(service.store)
    round_id = service.start_training(LONG)
    wait_for_step(service, 3)
    assert service.cancel_training()
    service.wait_training(60)
    [rnd] = service.rounds()
    assert rnd.status == "cancelled" and rnd.id == round_id
    prov = rnd.provenance
    assert prov["counts"] == {"votes": 16, "pairs": 16, "ties": 0, "both_bad": 0}
    assert prov["dataset_sha256"] == dataset_sha256(load_preferences(prov["export_path"]))
    checkpoint = last_checkpoint(Path(prov["output_dir"]))
    cut_at = int(checkpoint.name.split("-")[-1])
    assert 3 <= cut_at < 40
    service.close()

    service = open_service(app_config, demo_choice)  # an app restart in between
    try:
        assert service.resume_training(round_id) == round_id
        with pytest.raises(ConfigError, match="still training"):
            service.resume_training(round_id)
        result = service.wait_training(180)
        assert result is not None and not result.cancelled and result.steps == 40
        assert result.resumed_from == str(checkpoint)
        assert [row["step"] for row in result.history] == list(range(1, 41))  # curves continue, not restart
        [rnd] = service.rounds()
        assert rnd.status == "finished" and rnd.provenance["resumes"] == 1 and rnd.metrics["steps"] == 40
        assert last_checkpoint(Path(prov["output_dir"])) is None  # a finished round keeps no checkpoints
        assert f"round-{round_id}" in service.policy.adapters
        with pytest.raises(ConfigError, match="no checkpoint"):
            service.resume_training(round_id)
    finally:
        service.close()


CHILD = """
import sys, time
from prefapp.config import AppConfig, TrainConfig
from prefapp.models import resolve_model
from prefapp.service import PrefService
svc = PrefService.open(AppConfig(model="demo", data_dir=sys.argv[1]), choice=resolve_model("demo"), seed=0)
svc.start_training(TrainConfig(batch_size=4, num_epochs=25, max_length=128, lora_r=4, lora_alpha=8, save_steps=5))
svc.wait_training()
"""


def test_a_killed_app_resumes_its_round_from_the_last_checkpoint(app_config, demo_choice, tmp_path):
    with Store(app_config.db_path) as store:
        seed_votes(store)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("PREFAPP_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(app_config.data_dir)], env=env,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "child.log").open("wb"),
                             start_new_session=True)
    adapters = app_config.adapters_dir
    deadline = time.monotonic() + 120
    try:
        while not list(adapters.glob("round-1-*/checkpoints/checkpoint-10/trainer_state.json")):
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no second checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # a crash: no cancel, no cleanup
        child.wait()
    service = open_service(app_config, demo_choice)
    try:
        [rnd] = service.rounds()
        assert rnd.status == "failed"  # the store marks the interrupted round on open
        service.resume_training(1)
        result = service.wait_training(300)
        assert result is not None and result.steps == 100 and not result.cancelled
        assert int(Path(result.resumed_from).name.split("-")[-1]) >= 10
        assert service.rounds()[0].status == "finished"
    finally:
        service.close()


def test_rounds_swap_roll_back_merge_and_push(app_config, demo_choice, tmp_path):
    service = open_service(app_config, demo_choice)
    try:
        seed_votes(service.store)
        short = TrainConfig(batch_size=4, num_epochs=1, max_length=128, lora_r=4, lora_alpha=8)
        first = service.start_training(short)
        service.wait_training(120)
        second = service.start_training(short)
        service.wait_training(120)
        assert [r.status for r in service.rounds()] == ["finished", "finished"]

        assert "round-2" in service.make_generator(second)
        assert service.next_pair("ann").generator == "round-2"  # hot swap: no restart, the next pair uses it
        assert "round-1" in service.rollback() and service.generator == "round-1"
        assert "base model" in service.rollback() and service.generator is None
        assert service.next_pair("ann").generator == "base"
        with pytest.raises(ConfigError, match="already the base"):
            service.rollback()

        merged_dir = service.merge_round(first, tmp_path / "merged")
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        rnd = service.store.get_round(first)
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(rnd.base_model), rnd.adapter_path).eval()
        ids = torch.tensor([[5, 6, 7, 8, 9]])
        with torch.no_grad():
            assert torch.allclose(merged(input_ids=ids).logits, peft(input_ids=ids).logits, atol=1e-4)
        assert not any("lora" in k for k in load_file(merged_dir / "model.safetensors"))

        with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
            service.push_round(first, "someone/prefapp-round-1")
        card = model_card(rnd.id, rnd.base_model, rnd.config, rnd.metrics, rnd.provenance)
        assert f"base_model: {rnd.base_model}" in card and rnd.provenance["dataset_sha256"] in card
        assert "- pairs: 16 (ties dropped: 0, both bad dropped: 0)" in card and '"lora_r": 4' in card
        with pytest.raises(ConfigError, match="not a finished round"):
            service.merge_round(99)
    finally:
        service.close()
