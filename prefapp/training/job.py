"""`TrainingJob`: one DPO run (`prefapp.training.dpo.train_dpo`) in a background thread, so the UI stays responsive
and a crash in training never takes the app down; the app polls `status()` and may `cancel()`."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from datasets import Dataset

from prefapp.config import TrainConfig
from prefapp.training.dpo import CHECKPOINTS, check_inputs, last_checkpoint, train_dpo
from prefapp.training.kto import check_kto_inputs, train_kto
from prefapp.training.progress import TrainProgress, TrainResult

log = logging.getLogger(__name__)


class TrainingJob:
    """Runs train_dpo in a daemon thread; the app polls status() and may cancel(). Errors end up in .error.

    status() reaches "finished", "cancelled" or "failed" only after .result/.error are set and on_finish has run.
    """

    def __init__(
        self,
        base_model: str | Path,
        dataset: Dataset,
        config: TrainConfig,
        output_dir: Path,
        on_finish: Callable[[TrainResult | None, BaseException | None], None] | None = None,
        resume: bool = False,
    ):
        (check_kto_inputs if config.method == "kto" else check_inputs)(dataset, config)  # once, where the UI sees it
        if resume and last_checkpoint(Path(output_dir)) is None:
            raise ValueError(f"no checkpoint under {Path(output_dir) / CHECKPOINTS} to resume from: start a new round")
        self.base_model, self.dataset, self.config, self.output_dir = base_model, dataset, config, Path(output_dir)
        self.resume = resume
        self.on_finish = on_finish
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._progress = TrainProgress(0, 0, 0.0, 0.0, None, {}, (), "starting", "not started")
        self._final: TrainProgress | None = None  # "finished"/"cancelled", held back until on_finish has run
        self._result: TrainResult | None = None
        self._error: BaseException | None = None

    def start(self) -> TrainingJob:
        """Start training in the background; a job runs once."""
        if self._thread is not None:
            raise RuntimeError("this TrainingJob was already started: create a new one for another run")
        self._thread = threading.Thread(target=self._run, name="prefapp-dpo", daemon=True)
        self._thread.start()
        return self

    def status(self) -> TrainProgress:
        """The latest progress snapshot (immutable, safe to hand to any thread)."""
        with self._lock:
            return self._progress

    def cancel(self) -> None:
        """Ask training to stop after the current step; what was trained is still saved."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> TrainResult | None:
        """Block until the job ends or `timeout` passes; the result, or None if failed/still running."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self) -> TrainResult | None:
        with self._lock:
            return self._result

    @property
    def error(self) -> BaseException | None:
        with self._lock:
            return self._error

    def _set_progress(self, progress: TrainProgress) -> None:
        with self._lock:
            if progress.state in ("finished", "cancelled"):
                self._final = progress
            else:
                self._progress = progress

    def _run(self) -> None:
        result, error = None, None
        try:
            train = train_kto if self.config.method == "kto" else train_dpo
            result = train(self.base_model, self.dataset, self.config, self.output_dir, on_progress=self._set_progress,
                           stop_event=self._stop, resume=self.resume, inputs_checked=True)  # checked in __init__
        except BaseException as exc:  # noqa: BLE001 - a background failure must reach the UI, not kill the app
            log.exception("training failed")
            traceback.clear_frames(exc.__traceback__)  # keep the story, free the model the frames still hold
            error = exc
        with self._lock:
            self._result, self._error = result, error
        if self.on_finish is not None:
            try:
                self.on_finish(result, error)
            except Exception:
                log.exception("on_finish raised")
        with self._lock:  # the end state is published last: whoever sees it also sees on_finish's effects
            if error is not None:
                self._progress = replace(self._progress, state="failed", message=f"{type(error).__name__}: {error}")
            elif self._final is not None:
                self._progress = self._final
