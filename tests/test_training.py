"""DPO training on the bundled demo model, for real: a few LoRA steps on CPU, then check what DPO promises.

One training run (module fixture) is shared by the checks on progress, adapter, base weights and preference;
the background-job tests run their own short jobs.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from prefapp.config import DEMO_MODEL_DIR, ConfigError, TrainConfig
from prefapp.training.dpo import ROUND_FILE, check_inputs, last_checkpoint, train_dpo
from prefapp.training.job import TrainingJob
from prefapp.training.progress import TrainProgress, TrainResult

BASE = DEMO_MODEL_DIR
CONFIG = TrainConfig(batch_size=4, num_epochs=2, max_length=256)  # 16 pairs -> 4 steps/epoch -> 8 steps
PLANNED_STEPS = 8

QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is 2 + 3?", "5"),
    ("What is 7 + 8?", "15"),
    ("What is 4 times 6?", "24"),
    ("What is 9 minus 4?", "5"),
]
RUDE = ["Figure it out yourself.", "What a stupid question.", "Go away, I am busy.", "Nobody cares, look it up."]


def preference_rows(n: int = 16) -> list[dict]:
    """chosen: the right answer, politely; rejected: a rude non-answer. Unambiguous, so DPO has a clear target."""
    rows = []
    for i in range(n):
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        rows.append({
            "prompt": [{"role": "user", "content": question}],
            "chosen": [{"role": "assistant", "content": f"The answer is {answer}."}],
            "rejected": [{"role": "assistant", "content": RUDE[i % len(RUDE)]}],
        })
    return rows


def require_demo_model() -> Path:
    if not (BASE / "config.json").is_file():
        pytest.fail(f"the bundled demo model is missing at {BASE}: run `prefapp build-demo-model` (it ships in git)")
    return BASE


def dir_digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Train once: the result, every progress report, the wall time, and the base dir's digest before/after."""
    base = require_demo_model()
    before = dir_digest(base)
    reports: list[TrainProgress] = []
    out = tmp_path_factory.mktemp("adapter") / "round-1"
    t0 = time.perf_counter()
    result = train_dpo(base, Dataset.from_list(preference_rows()), CONFIG, out, on_progress=reports.append)
    return {"result": result, "reports": reports, "seconds": time.perf_counter() - t0,
            "base_before": before, "base_after": dir_digest(base)}


def load_models(adapter_dir: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE)
    base = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).eval()
    fresh = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    aligned = PeftModel.from_pretrained(fresh, str(adapter_dir)).eval()
    return tokenizer, base, aligned


@torch.no_grad()
def completion_logprob(model, tokenizer, prompt: list[dict], answer: list[dict]) -> float:
    """Sum of log p(answer tokens | prompt), tokenized the way TRL does (chat template, generation prompt)."""
    def ids(messages: list[dict], **kwargs) -> list[int]:
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"]

    prompt_ids, full_ids = ids(prompt, add_generation_prompt=True), ids(prompt + answer)
    assert full_ids[: len(prompt_ids)] == prompt_ids, "the chat template must render the prompt as a prefix"
    ids = torch.tensor([full_ids])
    logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    token_logps = logps.gather(-1, ids[0, 1:, None]).squeeze(-1)
    return token_logps[len(prompt_ids) - 1 :].sum().item()


# --- checks before anything heavy ----------------------------------------------------------------------------------

NO_MODEL = Path("/nonexistent/model")  # loading this would raise FileNotFoundError, so a ValueError proves order


@pytest.mark.parametrize(
    "rows, config, expected",
    [
        (preference_rows(), {"beta": 0.0, "batch_size": 4}, "beta"),
        (preference_rows(), {"loss_type": "sigmod", "batch_size": 4}, "loss_type"),
        (preference_rows(4), {"batch_size": 8}, "at most 4"),
        ([{"prompt": r["prompt"], "chosen": r["chosen"]} for r in preference_rows(4)], {"batch_size": 2},
         "rejected"),
        ([{"prompt": "hi", "chosen": "a", "rejected": "b"}] * 4, {"batch_size": 2}, "conversational"),
        ([{**r, "chosen": r["chosen"] * 2} for r in preference_rows(4)], {"batch_size": 2},
         "one assistant message"),
    ],
    ids=["beta", "loss_type", "batch>pairs", "missing-column", "plain-strings", "two-answers"],
)
def test_bad_inputs_raise_before_loading(tmp_path, rows, config, expected):
    with pytest.raises(ValueError, match=expected):  # bad settings already when the config is built
        train_dpo(NO_MODEL, Dataset.from_list(rows), TrainConfig(**config), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_dataset_names_the_fix(tmp_path):
    empty = Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})
    with pytest.raises(ValueError, match="label some pairs"):
        train_dpo(NO_MODEL, empty, TrainConfig(batch_size=1), tmp_path / "out")
    with pytest.raises(ConfigError, match="at most 16"):  # TrainingJob refuses in the caller's thread, not later
        TrainingJob(NO_MODEL, Dataset.from_list(preference_rows()), TrainConfig(batch_size=32), tmp_path)
    check_inputs(Dataset.from_list(preference_rows()), CONFIG)  # and good inputs pass


# --- one real run --------------------------------------------------------------------------------------------------


def test_progress_reports_every_step_with_dpo_metrics(run):
    result: TrainResult = run["result"]
    reports: list[TrainProgress] = run["reports"]
    steps = [p.step for p in reports if p.state == "running" and p.metrics]
    assert steps == list(range(1, PLANNED_STEPS + 1))
    assert [p.state for p in reports][0] == "starting" and [p.state for p in reports][-2:] == ["saving", "finished"]
    assert all(p.total_steps == PLANNED_STEPS for p in reports if p.state != "starting")
    assert reports[-1].eta_s == 0.0 and reports[-1].epoch == pytest.approx(2.0)
    assert result.steps == PLANNED_STEPS and not result.cancelled
    assert result.device == "cpu" and result.precision.startswith("fp32")
    assert [row["step"] for row in result.history] == steps
    for row in result.history:
        assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= row.keys()
    first, last = result.history[0], result.history[-1]
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    assert last["loss"] < first["loss"] - 0.02 and last["rewards/margins"] > 0.1
    assert result.metrics["train_loss"] > 0 and result.metrics["loss"] == last["loss"]


def test_adapter_moved_and_base_untouched(run):
    result: TrainResult = run["result"]
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", ROUND_FILE} <= files
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert weights and all("lora_A" in k or "lora_B" in k for k in weights)  # nothing of the base was trained
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # B starts at zero: all of them moved
    targeted = {k.split(".lora_B")[0].rsplit(".", 1)[-1] for k in lora_b}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= targeted  # all linear
    assert run["base_after"] == run["base_before"]  # the shipped base model is never written to
    record = json.loads((result.adapter_dir / ROUND_FILE).read_text())
    assert record["steps"] == PLANNED_STEPS and record["config"]["beta"] == CONFIG.beta
    assert record["truncated_pairs"] == 0 and record["history"][-1]["loss"] == result.history[-1]["loss"]


def test_reloaded_adapter_prefers_chosen_over_rejected(run):
    result: TrainResult = run["result"]
    tokenizer, base, aligned = load_models(result.adapter_dir)
    # The base weights inside the reloaded model are the shipped ones, and the adapter changes the output.
    wrapped = aligned.get_base_model().state_dict()["model.layers.0.self_attn.q_proj.base_layer.weight"]
    assert torch.equal(wrapped, base.state_dict()["model.layers.0.self_attn.q_proj.weight"])
    ids = tokenizer.apply_chat_template(preference_rows(1)[0]["prompt"], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        gap = (aligned(input_ids=ids).logits - base(input_ids=ids).logits).abs().max().item()
    assert gap > 1e-2
    # DPO's objective: log p(chosen) - log p(rejected) grows relative to the reference (the base).
    gains = []
    for row in preference_rows(len(QUESTIONS)):
        margin = {m: completion_logprob(m, tokenizer, row["prompt"], row["chosen"])
                  - completion_logprob(m, tokenizer, row["prompt"], row["rejected"]) for m in (base, aligned)}
        gains.append(margin[aligned] - margin[base])
    assert min(gains) > 0, gains


def test_truncation_is_counted_and_warned(tmp_path, caplog):
    require_demo_model()
    long_answer = " ".join(["The answer is Paris, the capital of France."] * 6)  # well over 24 tokens
    rows = [
        {"prompt": [{"role": "user", "content": "What is the capital of France?"}],
         "chosen": [{"role": "assistant", "content": long_answer}],
         "rejected": [{"role": "assistant", "content": long_answer + " Go away."}]},
    ] * 2 + [
        {"prompt": [{"role": "user", "content": " ".join(["What is the capital of France?"] * 8)}],  # prompt > 24
         "chosen": [{"role": "assistant", "content": "Paris."}],
         "rejected": [{"role": "assistant", "content": "Go away."}]},
    ]
    with caplog.at_level("WARNING", logger="prefapp.training"):
        result = train_dpo(BASE, Dataset.from_list(rows), TrainConfig(batch_size=2, max_length=24), tmp_path / "a")
    assert "2 of 3 pairs will be cut" in caplog.text and "1 were dropped" in caplog.text
    record = json.loads((result.adapter_dir / ROUND_FILE).read_text())
    assert (record["truncated_pairs"], record["dropped_pairs"]) == (2, 1) and record["longest_tokens"] > 24
    assert result.steps == 1  # the two kept pairs make one batch


# --- the background job --------------------------------------------------------------------------------------------


def test_job_cancel_stops_early_and_still_saves(tmp_path):
    require_demo_model()
    finished = threading.Event()
    seen: dict = {}

    def on_finish(result, error):
        seen.update(result=result, error=error)
        finished.set()

    config = TrainConfig(batch_size=4, num_epochs=25, max_length=256)  # 100 steps planned: far more than we let run
    job = TrainingJob(BASE, Dataset.from_list(preference_rows()), config, tmp_path / "adapter", on_finish=on_finish)
    assert job.status().state == "starting" and not job.running
    job.start()
    deadline = time.monotonic() + 60
    while job.status().step < 2 and job.running and time.monotonic() < deadline:
        time.sleep(0.01)
    asked_at = job.status().step
    job.cancel()
    result = job.wait(timeout=60)
    assert not job.running and job.error is None, job.error
    assert result is not None and result.cancelled and seen["result"] is result and finished.is_set()
    assert 2 <= asked_at <= result.steps <= asked_at + 2 < 100  # stopped within a step or so of the request
    status = job.status()
    assert status.state == "cancelled" and status.step == result.steps and status.total_steps == 100
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()  # what was trained is kept
    assert json.loads((result.adapter_dir / ROUND_FILE).read_text())["cancelled"] is True


def test_job_failure_is_captured_not_raised(tmp_path):
    errors = []
    job = TrainingJob(tmp_path / "no-such-model", Dataset.from_list(preference_rows()), CONFIG, tmp_path / "out",
                      on_finish=lambda result, error: errors.append((result, error)))
    assert job.start().wait(timeout=30) is None
    assert isinstance(job.error, FileNotFoundError) and "build-demo-model" in str(job.error)
    assert job.status().state == "failed" and "FileNotFoundError" in job.status().message
    assert errors == [(None, job.error)] and not job.running
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


# --- checkpoints, resume and the precomputed reference ------------------------------------------------------------


def test_cancel_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    require_demo_model()
    config = TrainConfig(batch_size=4, num_epochs=3, max_length=256, save_steps=0)  # 12 steps; checkpoint on cancel
    data = Dataset.from_list(preference_rows())
    straight = train_dpo(BASE, data, config, tmp_path / "straight")
    job = TrainingJob(BASE, data, config, tmp_path / "cut").start()
    deadline = time.monotonic() + 60
    while job.status().step < 4 and job.running and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    cut = job.wait(60)
    assert cut is not None and cut.cancelled and 4 <= cut.steps < 12
    checkpoint = last_checkpoint(tmp_path / "cut")
    assert checkpoint is not None and checkpoint.name == f"checkpoint-{cut.steps}"
    reports: list[TrainProgress] = []
    resumed = train_dpo(BASE, data, config, tmp_path / "cut", on_progress=reports.append, resume=True)
    assert resumed.steps == 12 and not resumed.cancelled and resumed.resumed_from == str(checkpoint)
    assert [row["step"] for row in resumed.history] == list(range(1, 13))
    assert [p.step for p in reports if p.state == "running" and p.metrics][0] == cut.steps + 1
    a = load_file(straight.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same data order, RNGs, optimizer
    assert resumed.weights_sha256 == straight.weights_sha256
    assert last_checkpoint(tmp_path / "cut") is None  # finished: the checkpoints are gone
    with pytest.raises(ValueError, match="no checkpoint"):
        train_dpo(BASE, data, config, tmp_path / "cut", resume=True)


def test_precomputed_reference_log_probs_train_like_the_live_reference(tmp_path):
    require_demo_model()
    config = TrainConfig(batch_size=4, num_epochs=1, max_length=256, precompute_ref_log_probs=True)
    result = train_dpo(BASE, Dataset.from_list(preference_rows()), config, tmp_path / "pre")
    live = train_dpo(BASE, Dataset.from_list(preference_rows()), replace(config, precompute_ref_log_probs=False),
                     tmp_path / "live")
    assert result.steps == live.steps == 4
    assert result.history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # the reference is the base: log 2 at start
    for got, want in zip(result.history, live.history):  # the same reference, computed once instead of per step
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-4)
    record = json.loads((result.adapter_dir / ROUND_FILE).read_text())
    assert record["config"]["precompute_ref_log_probs"] is True


def test_a_checkpoint_cut_by_a_crash_is_skipped_for_the_one_before(tmp_path):
    folder = tmp_path / "adapter" / "checkpoints"
    for step, state in ((5, '{"global_step": 5}'), (10, '{"global_st'), (15, None)):  # 10: half-written, 15: none
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if state is not None:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path / "adapter") == folder / "checkpoint-5"
    assert last_checkpoint(tmp_path / "nothing") is None
