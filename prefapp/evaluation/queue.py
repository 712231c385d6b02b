"""Eval pairs generated ahead of the judges, so an eval vote never waits on the model when the queue is warm.

Like the labelling queue (prefapp.labeling.pair_queue), one background thread keeps `target` pairs ready, in
batches: `batch_size` eval prompts answered by each of the two compared policies, one `generate` call per policy.
Changing the compared policies or the sampling discards the ready pairs (and a batch in flight). Pairs are
recorded in the store only when served, so a discarded pair leaves no trace.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from prefapp.config import SamplingConfig
from prefapp.labeling.backends import Generator, LocalGenerator
from prefapp.labeling.pair_queue import ERROR_BACKOFF_S, _lower_priority
from prefapp.models import Policy
from prefapp.store import Prompt, Store

log = logging.getLogger(__name__)

BASE = "base"  # the policy name of the base model (no adapter)


def adapter_of(policy: str) -> str | None:
    """The adapter name a policy samples with: None for the base model."""
    return None if policy == BASE else policy


@dataclass(frozen=True)
class ReadyEval:
    prompt: Prompt
    first: str  # the answer of policies[0]
    second: str  # the answer of policies[1]
    policies: tuple[str, str]
    sampling: SamplingConfig


class EvalQueue:
    """A background generator of ready eval pairs for one comparison; `take()` never touches the model."""

    def __init__(self, policy: Policy, store: Store, target: int = 16, batch_size: int = 8,
                 seed: int | None = None, generator: Generator | None = None) -> None:
        self.policy, self.store = policy, store
        self.generator: Generator = generator or LocalGenerator(policy)  # in-process, or an engine over HTTP
        self.target, self.batch_size = target, batch_size
        self._policies: tuple[str, str] | None = None
        self._sampling: SamplingConfig | None = None
        self._version = 0
        self._ready: deque[ReadyEval] = deque()
        self._pending: Counter[int] = Counter()
        self._cond = threading.Condition()
        self._rng = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._generating = False
        self._empty = False  # the last look found no eval prompt
        self.error: str | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="eval-queue", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def configure(self, policies: tuple[str, str], sampling: SamplingConfig) -> None:
        """Compare these two policies with this sampling from now on; pairs of another comparison are dropped."""
        with self._cond:
            if (policies, sampling) == (self._policies, self._sampling):
                return
            self._policies, self._sampling = policies, sampling
            self._version += 1
            self._ready.clear()
            self._pending.clear()
            self._empty = False
            self._cond.notify_all()

    def resize(self, target: int, batch_size: int) -> None:
        """Bigger batches for a bulk run (the simulated judge), smaller for people."""
        with self._cond:
            self.target, self.batch_size = target, batch_size
            self._cond.notify_all()

    def take(self, wait_s: float = 0.0) -> ReadyEval | None:
        """The oldest ready pair, waiting up to `wait_s` for the batch being generated; None when none came."""
        with self._cond:
            deadline = time.monotonic() + wait_s
            while not self._ready and not self._empty and not self._stop and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if not self._ready:
                return None
            ready = self._ready.popleft()
            self._release(ready.prompt.id)
            self._cond.notify_all()
            return ready

    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def pending(self) -> dict[int, int]:
        """Eval prompt id -> pairs being generated or ready for it now: a pair made for a caller skips these."""
        with self._cond:
            return dict(self._pending)

    def _needs_refill(self) -> bool:
        return (self._policies is not None and self.target > 0
                and len(self._ready) + self.batch_size <= max(self.target, self.batch_size))

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._stop and not self._needs_refill():
                    self._cond.wait()
                if self._stop:
                    return
                version, policies, sampling = self._version, self._policies, self._sampling
                prompts = self.store.least_compared_eval_prompts(policies, self.batch_size, dict(self._pending),
                                                                 self._rng)
                self._empty = not prompts
                if not prompts:
                    self._cond.notify_all()
                    self._cond.wait(ERROR_BACKOFF_S)
                    continue
                self._pending.update(p.id for p in prompts)
                self._generating = True
            self._generate(prompts, version, policies, sampling)

    def _generate(self, prompts: list[Prompt], version: int, policies: tuple[str, str],
                  sampling: SamplingConfig) -> None:
        messages = [p.messages for p in prompts]
        try:
            first = self.generator.sample(messages, sampling, adapter=adapter_of(policies[0]))
            second = self.generator.sample(messages, sampling, adapter=adapter_of(policies[1]))
            error = None
        except Exception as exc:  # a removed adapter, out of memory: report it, retry after a pause
            log.exception("eval queue: generating %d pairs failed", len(prompts))
            first = second = None
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self._generating = False
            if version != self._version:
                return  # the comparison changed while this batch ran: its pending counts were cleared with it
            for p in prompts:
                self._release(p.id)
            if first is not None:
                for prompt, (x,), (y,) in zip(prompts, first, second):
                    self._ready.append(ReadyEval(prompt, x, y, policies, sampling))
                    self._pending[prompt.id] += 1
            self.error = error
            self._cond.notify_all()
            if error is not None and not self._stop:
                self._cond.wait(ERROR_BACKOFF_S)

    def _release(self, prompt_id: int) -> None:
        self._pending[prompt_id] -= 1
        if self._pending[prompt_id] <= 0:
            del self._pending[prompt_id]
