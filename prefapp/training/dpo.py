"""DPO training: preference pairs in, a LoRA adapter out.

One linear story (as in TRL's own scripts): check the data -> load the model -> build DPOConfig + LoraConfig ->
DPOTrainer(...) -> train() -> save the adapter. TRL does the work; this module only composes it, reports progress
through a callback, and lets the app cancel. `TrainingJob` (`job.py`) runs the same story in a background thread so the UI
stays responsive and a crash in training never takes the app down.

What TRL 1.16 does with our data (read from trl/trainer/dpo_trainer.py, so nobody has to again):
- Conversational rows are tokenized with the chat template: the prompt with `add_generation_prompt=True`, and
  prompt+chosen / prompt+rejected in full; the completion is whatever follows the common prefix. No BOS token is
  needed (nothing adds one; the template decides), and the end-of-turn token written by the template after the
  answer is trained as part of the completion.
- `max_length` cuts prompt+completion from the end (`keep_start`) in the collator, silently; pairs whose prompt
  alone reaches `max_length` are dropped. We count both and warn, because a cut answer loses the very tokens
  that distinguish chosen from rejected.
- The pad token is `tokenizer.pad_token` if set (it must be in the vocabulary), else EOS; TRL copies its id to the
  model config. Padding is added by the collator on the right and masked out by length, so a pad token that
  differs from EOS (as in the demo model) needs nothing special.
- With `peft_config` and `ref_model=None` the reference is the same weights with the adapter disabled: no second
  copy in memory. `precompute_ref_log_probs=True` runs that reference once over the data before training (TRL adds
  ref_chosen_logps / ref_rejected_logps columns) instead of one extra forward per step.
- Checkpoints (adapter, optimizer, scheduler, RNG states, trainer state) go to `<adapter dir>/checkpoints` every
  `save_steps` and when a cancel is asked for; `resume=True` continues from the newest with the data order and RNGs
  restored, so a resumed run ends with the same weights as an uninterrupted one (tested bit for bit on CPU).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from datasets import Dataset

from prefapp.config import DPO_LOSS_TYPES, ConfigError, TrainConfig
from prefapp.preferences.export import PREFERENCE_COLUMNS
from prefapp.store import to_messages
from prefapp.training.adapters import ROUND_FILE, record_hub_base  # noqa: F401 - ROUND_FILE: importers use it here
from prefapp.training.progress import TrainProgress, TrainResult, _progress_callback, _Reporter

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # under the adapter dir: trainer checkpoints for resume; removed once a run finishes
LOSS_TYPES = DPO_LOSS_TYPES  # the loss types TrainConfig accepts (prefapp.config), for the Train tab's list



# --- checks that run before anything heavy is loaded -------------------------------------------------------------


def check_inputs(dataset: Dataset, config: TrainConfig) -> None:
    """Raise ValueError (ConfigError for settings) naming the fix, before any model is loaded. The settings' own
    ranges were checked when the TrainConfig was built; here: do they fit this data, and is the data DPO's shape."""
    if not isinstance(dataset, Dataset):
        raise ValueError(f"expected a datasets.Dataset, got {type(dataset).__name__}: wrap rows in Dataset.from_list")
    missing = [c for c in PREFERENCE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"the dataset lacks column(s) {missing} (it has {dataset.column_names}): DPO needs prompt, chosen and "
            "rejected; export labelled pairs with prefapp's export, which writes exactly these"
        )
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: label some pairs (A or B) and export them before training")
    for i, row in enumerate(dataset.select_columns(list(PREFERENCE_COLUMNS))):
        _check_row(i, row)
    config.check_pairs(len(dataset))
    same = sum(row["chosen"] == row["rejected"] for row in dataset.select_columns(["chosen", "rejected"]))
    if same:
        log.warning("%d of %d pairs have chosen == rejected: they carry no preference signal", same, len(dataset))


def _check_row(i: int, row: dict) -> None:
    fix = (
        "use the conversational format: prompt = [{'role': 'user', 'content': ...}] (optionally after system/"
        "assistant turns), chosen and rejected = [{'role': 'assistant', 'content': ...}]"
    )
    prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
    if not isinstance(prompt, list):
        raise ValueError(f"row {i}: prompt must be a list of messages ending with a user turn, got {prompt!r}: {fix}")
    try:
        to_messages(prompt)  # the one rule for what a prompt's messages may be
    except ValueError as exc:
        raise ValueError(f"row {i}: prompt: {exc} ({fix})") from exc
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not _one_assistant_message(answer):
            raise ValueError(f"row {i}: {name} must be one assistant message, got {answer!r}: {fix}")


def _one_assistant_message(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
            and value[0].get("role") == "assistant" and isinstance(value[0].get("content"), str))


# --- where and in what precision to train ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    device: str  # reported in TrainResult
    precision: str  # reported in TrainResult
    model_kwargs: dict  # for from_pretrained
    args_kwargs: dict  # mixed-precision flags for DPOConfig
    checkpointing: bool = True  # recompute activations: ~20% slower, far less memory on a GPU


def _plan(config: TrainConfig) -> _Plan:
    import torch

    if not torch.cuda.is_available():
        if config.use_4bit:
            log.warning("use_4bit=True but there is no CUDA device: bitsandbytes 4-bit needs CUDA, training in fp32")
        why = ": 4-bit needs CUDA" if config.use_4bit is not False else ""
        # fp32 on CPU: bf16 autocast there is slow and lossy; gradient checkpointing only saves memory we have.
        return _Plan("cpu", f"fp32 (CPU{why})", {"dtype": torch.float32},
                     {"use_cpu": True, "bf16": False, "fp16": False}, checkpointing=False)
    device = f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    if not torch.cuda.is_bf16_supported():
        # Pre-Ampere GPUs (e.g. T4): fp32 master weights with fp16 autocast; TRL's QLoRA path assumes bf16.
        return _Plan(device, "fp32 + fp16 autocast (no bf16 on this GPU)", {"dtype": torch.float32},
                     {"bf16": False, "fp16": True})
    if config.use_4bit is False or not _bitsandbytes_ok(config.use_4bit):
        return _Plan(device, "bf16", {"dtype": torch.bfloat16}, {"bf16": True, "fp16": False})
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,  # QLoRA's recipe: saves ~0.4 bit/param for free
    )
    # bitsandbytes weights cannot be moved after loading; under torchrun each rank loads onto its own GPU.
    on_this_gpu = {"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))}
    model_kwargs = {"dtype": torch.bfloat16, "quantization_config": quant, "device_map": on_this_gpu}
    return _Plan(device, "4-bit nf4 + bf16", model_kwargs, {"bf16": True, "fp16": False})


def _bitsandbytes_ok(required: bool | None) -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA setup raising at import
        if required:
            msg = f"use_4bit=True but bitsandbytes does not load ({exc}): install it or set use_4bit=False"
            raise ConfigError(msg) from exc
        log.warning("bitsandbytes does not load (%s): training in bf16 without 4-bit", exc)
        return False
    return True


# --- loading -----------------------------------------------------------------------------------------------------


def _load(base_model: str | Path, plan: _Plan) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    from prefapp.models import load_tokenizer

    path = Path(base_model).expanduser()
    if (path.is_absolute() or str(base_model).startswith(".")) and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no model at {path}: pass a Hub id or a directory saved with save_pretrained "
            "(for the demo model, run `prefapp build-demo-model`)"
        )
    source = str(path) if path.exists() else str(base_model)  # a local dir, else a Hub id
    with _quiet_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(source, **plan.model_kwargs)
    return model, load_tokenizer(source)  # the app's one loader; TRL's collators pick their own padding side


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence the tqdm bars of weight loading and dataset.map; our progress goes through on_progress."""
    import datasets.utils
    import transformers.utils.logging as hf_logging

    datasets_on, hf_on = not datasets.utils.are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()
    if datasets_on:
        datasets.utils.disable_progress_bars()
    if hf_on:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.utils.enable_progress_bars()
        if hf_on:
            hf_logging.enable_progress_bar()


# --- TRL configs -------------------------------------------------------------------------------------------------


def _dpo_args(config: TrainConfig, plan: _Plan, checkpoint_dir: Path) -> Any:
    """checkpoint_dir: the trainer's output_dir; checkpoints go there every config.save_steps and on cancel."""
    from trl import DPOConfig

    # transformers 5.x renamed gradient_checkpointing (TRL defaults it to True) and warns on the old name.
    renamed = "activation_checkpointing" in DPOConfig.__dataclass_fields__
    checkpointing = {("activation_checkpointing" if renamed else "gradient_checkpointing"): plan.checkpointing}
    return DPOConfig(
        output_dir=str(checkpoint_dir),  # checkpoints only; the adapter is saved by us
        beta=config.beta,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_length,
        loss_type=config.loss_type,
        seed=config.seed,
        logging_steps=1,  # every step feeds the progress bar and the curves
        report_to="none",
        save_strategy="steps" if config.save_steps else "no",  # the cancel callback also asks for a save
        save_steps=config.save_steps or 500,
        save_total_limit=2,  # the newest to resume from, plus one in case the newest was cut by a crash
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        disable_tqdm=True,
        dataloader_num_workers=0,  # worker processes cost more than they save for a few hundred pairs
        ddp_find_unused_parameters=False,  # every LoRA weight is used in each forward: skip DDP's extra graph walk
        **plan.args_kwargs,
        **checkpointing,
    )


def _lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",  # every linear layer but lm_head (TRL rejects an adapter there)
        task_type="CAUSAL_LM",
    )


# --- the story ---------------------------------------------------------------------------------------------------


def train_dpo(
    base_model: str | Path,
    dataset: Dataset,
    config: TrainConfig,
    output_dir: Path,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool = False,
    inputs_checked: bool = False,
) -> TrainResult:
    """Train a LoRA adapter on `base_model` with DPO on `dataset`; save it to `output_dir` and say how it went.

    Checkpoints go to `output_dir/checkpoints` (every config.save_steps and on cancel); `resume=True` continues from
    the newest one there, given the same dataset and config. They are removed once a run finishes.
    `inputs_checked`: the caller ran check_inputs already (TrainingJob does, in the caller's thread).
    """
    if not inputs_checked:
        check_inputs(dataset, config)

    def build(model: Any, tokenizer: Any, plan: _Plan, checkpoints: Path, callbacks: list) -> tuple[Any, dict]:
        from trl import DPOTrainer

        trainer = DPOTrainer(
            model=model,
            ref_model=None,  # with peft_config: the reference is the base with the adapter switched off
            args=_dpo_args(config, plan, checkpoints),
            train_dataset=dataset.select_columns(list(PREFERENCE_COLUMNS)),
            processing_class=tokenizer,
            peft_config=_lora_config(config),
            callbacks=callbacks,
        )
        lengths = _check_lengths(trainer.train_dataset, len(dataset), config.max_length)
        log.info("DPO on %d pairs, %s, %s", len(trainer.train_dataset), plan.device, plan.precision)
        return trainer, lengths

    return run_trainer(base_model, dataset, config, output_dir, build, on_progress, stop_event, resume)


def run_trainer(
    base_model: str | Path,
    dataset: Dataset,
    config: TrainConfig,
    output_dir: Path,
    build: Callable[[Any, Any, _Plan, Path, list], tuple[Any, dict]],
    on_progress: Callable[[TrainProgress], None] | None,
    stop_event: threading.Event | None,
    resume: bool,
    extra_metrics: dict | None = None,
) -> TrainResult:
    """The story DPO and KTO share: plan the precision, load, `build` the method's TRL trainer (it returns the
    trainer and what the round file says about the data), train (from the newest checkpoint when resuming), save
    the adapter on one rank, report."""
    started = time.monotonic()
    reporter = _Reporter(on_progress, started)
    reporter.emit("starting", f"loading {base_model}")

    from transformers.trainer_callback import PrinterCallback

    plan = _plan(config)
    model, tokenizer = _load(base_model, plan)
    output_dir = Path(output_dir)
    checkpoint = last_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ValueError(f"no checkpoint under {output_dir / CHECKPOINTS} to resume from: start a new round instead")
    with _quiet_progress_bars():
        trainer, data_info = build(model, tokenizer, plan, output_dir / CHECKPOINTS,
                                   [_progress_callback(reporter, stop_event)])
        trainer.remove_callback(PrinterCallback)  # it print()s every log row; ours reports them instead
        if checkpoint:
            log.info("resuming %s", checkpoint)
        reporter.history = _logged_rows(checkpoint)  # the curves continue where the interrupted run left them
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        steps = trainer.state.global_step
        cancelled = steps < trainer.state.max_steps  # only a stop request ends the loop early
        reporter.emit("saving", f"saving the adapter to {output_dir}")
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():  # under torchrun every rank holds the same weights; one writes
            _save(trainer, tokenizer, output_dir)
            record_hub_base(output_dir, base_model)  # a Hub base is named by its id, not this machine's cache path
            if not cancelled:
                shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)  # finished: nothing left to resume
    result = TrainResult(
        adapter_dir=output_dir, metrics={**reporter.metrics, **reporter.summary, **(extra_metrics or {})},
        history=list(reporter.history), steps=steps, seconds=time.monotonic() - started, device=plan.device,
        precision=plan.precision, cancelled=cancelled, warnings=tuple(reporter.warnings),
        resumed_from=str(checkpoint) if checkpoint else None, weights_sha256=_trainable_sha256(trainer.model),
    )
    if trainer.is_world_process_zero():
        _write_round_file(result, base_model, config, len(dataset), reporter.total_steps, data_info)
    state = "cancelled" if cancelled else "finished"
    reporter.emit(state, f"{state} after {result.steps}/{reporter.total_steps} steps in {result.seconds:.1f}s")
    return result


def _trainable_sha256(model: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete trainer checkpoint under output_dir/checkpoints, or None.

    The Trainer writes trainer_state.json last, so a checkpoint without a readable one was cut by a crash; the one
    before it (save_total_limit=2 keeps it until the new one is complete) is used instead.
    """
    folder = Path(output_dir) / CHECKPOINTS
    found = folder.glob("checkpoint-*") if folder.is_dir() else ()
    numbered = [(int(p.name.rsplit("-", 1)[1]), p) for p in found if p.name.rsplit("-", 1)[1].isdigit()]
    for _, path in sorted(numbered, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            log.warning("checkpoint %s is incomplete (cut by a crash?): skipped", path)
            continue
        return path
    return None


def _logged_rows(checkpoint: Path | None) -> list[dict]:
    if checkpoint is None or not (checkpoint / "trainer_state.json").is_file():
        return []
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [{k: v for k, v in row.items() if isinstance(v, (int, float))}
            for row in state.get("log_history", []) if "loss" in row]


def _check_lengths(tokenized: Dataset, n_pairs: int, max_length: int) -> dict[str, int]:
    """Count pairs TRL will cut or has dropped for max_length, and warn: cutting silently removes DPO signal."""
    dropped = n_pairs - len(tokenized)
    if len(tokenized) == 0:
        raise ValueError(f"every prompt fills max_length={max_length}: nothing is left to train on; raise max_length")
    full = [len(p) + max(len(c), len(r)) for p, c, r in
            zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"])]
    truncated = sum(n > max_length for n in full)
    if truncated or dropped:
        log.warning(
            "max_length=%d: %d of %d pairs will be cut (longest %d tokens) and %d were dropped (prompt alone too "
            "long); cut answers lose the tokens that tell chosen from rejected: raise max_length",
            max_length, truncated, n_pairs, max(full), dropped,
        )
    return {"truncated_pairs": truncated, "dropped_pairs": dropped, "longest_tokens": max(full)}


def _save(trainer: Any, tokenizer: Any, output_dir: Path) -> None:
    if (output_dir / "adapter_config.json").exists():
        log.warning("overwriting the adapter in %s", output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(str(output_dir))  # the adapter alone (config, weights, model card), not the base
    tokenizer.save_pretrained(str(output_dir))  # makes the dir self-contained for loading and chat


def _write_round_file(
    result: TrainResult, base_model: str | Path, config: TrainConfig,
    n_pairs: int, total_steps: int, lengths: dict[str, int],
) -> None:
    import peft
    import torch
    import transformers
    import trl

    record = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": str(base_model),
        "config": config.to_dict(),
        "n_pairs": n_pairs,
        **lengths,
        "steps": result.steps,
        "total_steps": total_steps,
        "cancelled": result.cancelled,
        "seconds": round(result.seconds, 2),
        "device": result.device,
        "precision": result.precision,
        "metrics": result.metrics,
        "history": result.history,
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "torch": torch.__version__},
    }
    (result.adapter_dir / ROUND_FILE).write_text(json.dumps(record, indent=2))
