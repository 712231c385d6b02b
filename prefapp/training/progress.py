"""Training progress: the snapshots the UI polls (`TrainProgress`), what a finished run returns (`TrainResult`),
and the trainer callback that turns TRL's events into snapshots and warnings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefapp.training.monitor import diagnose

log = logging.getLogger(__name__)

STATES = ("starting", "running", "saving", "finished", "failed", "cancelled")


@dataclass(frozen=True)
class TrainProgress:
    step: int  # optimizer steps done
    total_steps: int  # steps planned (0 until the trainer has counted them)
    epoch: float  # fractional epoch, as the trainer counts it
    elapsed_s: float  # wall time since train_dpo was called, loading included
    eta_s: float | None  # remaining training time at the rate so far; None before the first step
    metrics: dict[str, float]  # latest logged values: loss, rewards/chosen, rewards/margins, rewards/accuracies, ...
    history: tuple[dict, ...]  # every logged row, each with its "step"
    state: str  # one of STATES
    message: str  # one line for a human
    warnings: tuple[str, ...] = ()  # plain-language problems seen so far (train_monitor), with what to try


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path  # standard PEFT adapter: PeftModel.from_pretrained(base, adapter_dir)
    metrics: dict  # last logged DPO metrics plus the trainer's summary (train_loss, train_runtime, ...)
    history: list[dict]  # every logged row, with its "step"
    steps: int  # optimizer steps actually done (fewer than planned when cancelled)
    seconds: float  # wall time of the whole call, loading and saving included
    device: str  # e.g. "cpu" or "cuda:0 (NVIDIA H100)"
    precision: str  # e.g. "fp32 (CPU: 4-bit needs CUDA)", "bf16", "4-bit nf4 + bf16"
    cancelled: bool  # True when stopped early; the adapter still holds what was trained
    warnings: tuple[str, ...] = ()  # what train_monitor flagged during the run
    resumed_from: str | None = None  # the checkpoint this run continued, if any
    weights_sha256: str = ""  # of the trained LoRA weights: equal on every rank when distributed training syncs


# --- reporting ----------------------------------------------------------------------------------------------------


class _Reporter:
    """Turns trainer events into TrainProgress snapshots for `on_progress`; never lets a UI bug stop training."""

    def __init__(self, on_progress: Callable[[TrainProgress], None] | None, started: float):
        self.on_progress = on_progress
        self.started = started
        self.train_started: float | None = None
        self.first_step = 0  # where this run began: >0 when resumed, so the ETA uses only this run's pace
        self.step, self.total_steps, self.epoch = 0, 0, 0.0
        self.metrics: dict[str, float] = {}
        self.history: list[dict] = []
        self.summary: dict[str, float] = {}
        self.warnings: list[str] = []  # each kind of warning once, worded as when first seen
        self._warned: set[str] = set()

    def emit(self, state: str, message: str) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.snapshot(state, message))
        except Exception:
            log.exception("on_progress raised; training goes on")

    def snapshot(self, state: str, message: str) -> TrainProgress:
        return TrainProgress(
            step=self.step, total_steps=self.total_steps, epoch=self.epoch,
            elapsed_s=time.monotonic() - self.started, eta_s=self._eta(), metrics=dict(self.metrics),
            history=tuple(self.history), state=state, message=message, warnings=tuple(self.warnings),
        )

    def _eta(self) -> float | None:
        if self.train_started is None or self.step == 0:
            return None
        if self.step <= self.first_step:
            return None
        per_step = (time.monotonic() - self.train_started) / (self.step - self.first_step)
        return per_step * max(self.total_steps - self.step, 0)

    def record(self, step: int, logs: dict) -> None:
        numbers = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "total_flos"}
        if "loss" in numbers:  # a per-step row; the end-of-training summary has train_loss instead
            self.metrics = numbers
            self.history.append({"step": step, **numbers})
            self._diagnose()
        else:
            self.summary.update(numbers)

    def _diagnose(self) -> None:
        for warning in diagnose(self.history, self.total_steps):
            if warning.kind not in self._warned:  # its figures change every step: one line per kind, not per step
                log.warning("step %d: %s", warning.step, warning.message)
                self._warned.add(warning.kind)
                self.warnings.append(warning.message)


def _progress_callback(reporter: _Reporter, stop_event: threading.Event | None) -> Any:
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            reporter.train_started = time.monotonic()
            reporter.total_steps = state.max_steps
            reporter.step = reporter.first_step = state.global_step  # the checkpoint's step when resuming
            reporter.emit("running", f"training: {state.max_steps} steps")

        def on_step_end(self, args, state, control, **kwargs):
            reporter.step, reporter.epoch = state.global_step, float(state.epoch or 0.0)
            if stop_event is not None and stop_event.is_set():
                control.should_training_stop = True  # the loop ends after this step; the step is still logged
                control.should_save = True  # a checkpoint to resume from

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            reporter.record(state.global_step, logs)
            if "loss" in logs:  # logging_steps=1: one row, hence one report, per step
                reporter.emit("running", f"step {state.global_step}/{state.max_steps}, loss {logs['loss']:.4f}")

    return ProgressCallback()
