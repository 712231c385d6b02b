"""Pairs generated ahead of the annotators, so a vote never waits on the model.

One background thread keeps `target` pairs ready for the current generator (base model or a round's adapter)
and sampling settings. How it refills depends on where the model runs:
- in this process (`LocalGenerator`), in batches: `batch_size` prompts x 2 samples are ONE `generate` call, which
  on a CPU gives several times the tokens per second of one prompt at a time (bench/generation_throughput.py);
- on a serving engine (`OpenAIGenerator`), continuously: each prompt is its own job, up to the generator's
  `in_flight` requests (2 per pair) stay at the engine, and a finished pair is ready at once while the next prompt
  takes its place. Waiting for a whole batch would leave the engine's continuous batching idle at every batch
  boundary and let one slow request hold up the refill (bench/serving_throughput.py measures both).
When the generator or the sampling changes, the ready pairs were written by the old policy: they are
discarded and the queue refills from the new one. A batch or job that was being generated while the change happened
is discarded too, so a served pair always comes from the generator that was current when it was asked for.

Pairs are only recorded in the store when served (`Store.add_pair` at that moment), so a queued pair that is
discarded leaves no trace, and `shown_at` is the moment the annotator saw it.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prefapp.labeling import generation
from prefapp.labeling.backends import Generator, LocalGenerator
from prefapp.labeling.active import Mix, Selection, draw_batch
from prefapp.config import ConfigError, SamplingConfig
from prefapp.models import Policy
from prefapp.store import Prompt, Store

log = logging.getLogger(__name__)

ERROR_BACKOFF_S = 5.0  # after a failed batch: long enough not to spin, short enough to recover by itself
GENERATOR_NICE = 10  # the generator thread yields the CPU to request handlers (Linux nice is per thread)
SWITCH_INTERVAL_S = 0.0005  # GIL hand-over: a handler waits <= 0.5 ms for generate's Python, not 5 ms each time


@dataclass(frozen=True)
class ReadyPair:
    prompt: Prompt
    first: str  # 1st sample of the generate call (not yet assigned to a side)
    second: str
    adapter: str | None  # None: the base model
    sampling: SamplingConfig
    origin: dict = field(default_factory=dict)  # why it was chosen, its margin, identical draws (Store.add_pair)


@dataclass(frozen=True)
class QueueStatus:
    ready: int  # pairs waiting for an annotator
    target: int
    generating: bool  # a batch (or, from an engine, a prompt's pair) is being generated right now
    generator: str  # "base" or the adapter the ready pairs come from
    generated: int  # pairs generated since start (all generators)
    discarded: int  # pairs thrown away because the generator or sampling changed
    last_batch_s: float | None  # seconds the last batch (engine: the last prompt's job) took
    last_batch_pairs: int
    error: str | None  # the last batch's failure, None once a batch succeeds


class PairQueue:
    """A background generator of ready pairs for one policy; `take()` never touches the model."""

    def __init__(self, policy: Policy, store: Store, sampling: SamplingConfig, adapter: str | None = None,
                 target: int = 16, batch_size: int = 8, seed: int | None = None,
                 generator: Generator | None = None, resamples: int = 2, near: float = 0.0,
                 overlap: bool | None = None) -> None:
        if target != 0 and not 1 <= batch_size <= target:  # target 0: a queue that never generates
            raise ConfigError(f"queue batch_size={batch_size} must be in 1..target ({target}), e.g. 8 of 16")
        self.policy, self.store = policy, store
        # Where samples come from: the policy in this process, or an engine with requests kept in flight.
        self.generator: Generator = generator or LocalGenerator(policy)
        self.target, self.batch_size = target, batch_size
        # Jobs per prompt kept in flight instead of whole batches: by default where the generator serves requests
        # concurrently (an engine); False keeps batches (the in-process model; the bench's "before").
        in_flight = getattr(self.generator, "in_flight", 1)
        self.overlap = in_flight > 1 if overlap is None else overlap
        self.slots = max(1, in_flight // 2)  # prompts in flight: 2 samples each
        self._jobs: ThreadPoolExecutor | None = None
        self._adapter, self._sampling = adapter, sampling
        self.resamples, self.near = resamples, near  # the identical-pair rule (prefapp.labeling.distinct)
        self._selection, self._mix = Selection(), Mix(0.0)  # coverage until set_selection (prefapp.labeling.active)
        self._version = 0  # bumped on every generator/sampling change: batches of an older version are dropped
        self._ready: deque[ReadyPair] = deque()
        self._cond = threading.Condition()
        self._rng = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._in_flight = 0  # prompts being generated now (a batch's, or the engine jobs')
        self._retry_at = 0.0  # after a failed engine job: no new job before this (time.monotonic)
        self._no_prompts = False  # the last look found no prompt to generate for
        self._pending: Counter[int] = Counter()  # prompt id -> pairs queued or being generated, not yet served
        self._unusable: set[int] = set()  # prompts too long for the context at the current max_new_tokens
        self._generated = self._discarded = self._last_pairs = 0
        self._last_s: float | None = None
        self._error: str | None = None

    # --- control -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            # Votes must not queue behind generation for the GIL: measured at the 135M shape on a busy 2-core
            # machine, p50 of vote + next pair went from 50 to 24 ms with this and the lower thread priority.
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
            if self.overlap and self._jobs is None:
                self._jobs = ThreadPoolExecutor(self.slots, thread_name_prefix="pair-job", initializer=_lower_priority)
            self._thread = threading.Thread(target=self._run, name="pair-queue", daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the batch in progress (if any); engine jobs in flight end on their own."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._jobs is not None:
            self._jobs.shutdown(wait=False, cancel_futures=True)
            self._jobs = None

    def configure(self, adapter: str | None, sampling: SamplingConfig) -> int:
        """Switch generator/sampling; drop the pairs the old one wrote and return how many were dropped."""
        with self._cond:
            if (adapter, sampling) == (self._adapter, self._sampling):
                return 0
            self._adapter, self._sampling = adapter, sampling
            self._version += 1
            dropped = self._drop_ready()
            self._unusable.clear()
            self._cond.notify_all()
        log.info("pair queue: generator %s, %s; %d queued pair(s) discarded", adapter or "base", sampling, dropped)
        return dropped

    @property
    def selection(self) -> Selection:
        return self._selection

    def set_selection(self, selection: Selection) -> int:
        """Coverage or active selection (and the round that scores pairs); queued pairs chosen otherwise are
        dropped (a chat sent to labelling was chosen by its annotator: it stays). Returns how many."""
        with self._cond:
            if selection == self._selection:
                return 0
            self._selection, self._mix = selection, Mix(selection.coverage_share)
            self._version += 1
            dropped = self._drop_ready(sent_too=False)
            self._cond.notify_all()
        log.info("pair queue: selection %s; %d queued pair(s) discarded", selection, dropped)
        return dropped

    # --- consuming ---------------------------------------------------------------------------------------

    def take(self, wait_s: float = 0.0) -> ReadyPair | None:
        """The oldest ready pair of the current generator, or None when the queue is empty. With `wait_s`, an
        empty queue whose batch is being generated is waited for (up to `wait_s`): that batch finishes sooner
        than a separate generate call queued behind it on the model."""
        with self._cond:
            deadline = time.monotonic() + wait_s
            while not self._ready and self._busy() and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if not self._ready:
                self._cond.notify_all()
                return None
            pair = self._ready.popleft()
            self._release(pair.prompt.id)
            self._cond.notify_all()  # may have crossed the refill mark
            return pair

    def put_first(self, pair: ReadyPair) -> None:
        """Serve this pair next (a chat sent to labelling), ahead of the batch-generated ones."""
        with self._cond:
            if (pair.adapter, pair.sampling) != (self._adapter, self._sampling):
                return  # written by a generator that is no longer current: the prompt waits its turn instead
            self._ready.appendleft(pair)
            self._pending[pair.prompt.id] += 1
            self._cond.notify_all()

    def wait_ready(self, n: int, timeout: float) -> bool:
        """Block until at least `n` pairs are ready (or the timeout passes); for benchmarks and warm-up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._ready) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop:
                    return False
                self._cond.wait(left)
            return True

    def status(self) -> QueueStatus:
        with self._cond:
            return QueueStatus(len(self._ready), self.target, self._in_flight > 0, self._adapter or "base",
                               self._generated, self._discarded, self._last_s, self._last_pairs, self._error)

    # --- the worker --------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Generating, or about to: a pair will come without anyone else calling the model."""
        about_to = self.started and not self._stop and not self._no_prompts and self._needs_refill()
        # After a failed batch (a server down) nothing is coming soon: take() must not wait out the backoff.
        return self._in_flight > 0 or (about_to and self._error is None)

    def _streams(self) -> bool:
        """Refill prompt by prompt (an engine), unless candidates must be ranked together (active selection)."""
        return self.overlap and self._jobs is not None and not self._selection.ranks

    def _needs_refill(self) -> bool:
        if self.target <= 0:
            return False
        if self._streams():  # one more prompt whenever a pair is missing and the engine has room
            return (len(self._ready) + self._in_flight < self.target and self._in_flight < self.slots
                    and time.monotonic() >= self._retry_at)
        # Refill a whole batch at a time: batches of one would lose what batching buys.
        return len(self._ready) + self.batch_size <= self.target

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._stop and not self._needs_refill():
                    backoff = self._retry_at - time.monotonic() if self._streams() else 0.0
                    self._cond.wait(backoff if backoff > 0 else None)  # woken by take(), a change, a finished job
                if self._stop:
                    return
                version, adapter, sampling = self._version, self._adapter, self._sampling
                selection, mix = self._selection, self._mix
                streams = self._streams()
                if streams:
                    n = min(self.slots - self._in_flight, self.target - len(self._ready) - self._in_flight)
                else:
                    n = self.batch_size * (selection.pool if selection.ranks else 1)
                prompts = self._pick_prompts(sampling, n)
                self._no_prompts = not prompts
                if not prompts:
                    self._cond.notify_all()  # a waiting take() must not wait for pairs that cannot come
                    self._cond.wait(ERROR_BACKOFF_S)  # no prompts yet: look again later or when notified
                    continue
                self._pending.update(p.id for p in prompts)
                self._in_flight += len(prompts)
                jobs = self._jobs
            if streams:
                for prompt in prompts:  # each pair is ready as soon as its own samples are
                    jobs.submit(self._generate, [prompt], version, adapter, sampling, selection, mix, False)
            else:
                self._generate(prompts, version, adapter, sampling, selection, mix)

    def _generate(self, prompts: list[Prompt], version: int, adapter: str | None, sampling: SamplingConfig,
                  selection: Selection, mix: Mix, batch: bool = True) -> None:
        """Draw pairs for `prompts` and queue them if the generator is still current; `batch`: this is the queue's
        own thread (a failure pauses it), not an engine job."""
        started = time.perf_counter()
        error = None
        try:
            samples, dropped, draws = draw_batch(self.generator, self.policy, prompts, sampling, adapter, selection,
                                                 mix, len(prompts) if not batch else self.batch_size, self.resamples,
                                                 self.near)
            if not self._stop:  # an engine job can outlive stop(), and the store with it
                self.store.record_identical_dropped(dropped, adapter, draws)
        except Exception as exc:  # a removed adapter, out of memory, a dead engine: report it, retry after a pause
            if batch:
                log.exception("pair queue: generating %d pairs failed", len(prompts))
            else:  # the engine's message says it all; one line per job, not a traceback each
                log.warning("pair queue: a pair from %s failed: %s", self.generator.backend, exc)
            samples, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        with self._cond:
            self._in_flight -= len(prompts)
            for p in prompts:
                self._release(p.id)
            if samples is not None and version == self._version:
                for prompt, first, second, origin in samples:
                    self._ready.append(ReadyPair(prompt, first, second, adapter, sampling, origin))
                    self._pending[prompt.id] += 1
                self._generated += len(samples)
                self._last_s, self._last_pairs, self._error = seconds, len(samples), None
            elif samples is not None:
                self._discarded += len(prompts)  # the generator changed while this batch ran
            else:
                self._error = error
                self._retry_at = time.monotonic() + ERROR_BACKOFF_S
            self._cond.notify_all()
            if error is not None and batch and not self._stop:
                self._cond.wait(ERROR_BACKOFF_S)
        if samples is not None:
            log.debug("pair queue: %d pairs in %.2f s", len(prompts), seconds)

    def _pick_prompts(self, sampling: SamplingConfig, n: int) -> list[Prompt]:
        """The `n` least-served prompts (queued pairs count as served), skipping those too long for the context."""
        picked: list[Prompt] = []
        candidates = self.store.least_served_prompts(n * 2, dict(self._pending), self._rng,
                                                     exclude=self._unusable)
        for prompt in candidates:
            try:
                generation.render_prompts(self.policy, [prompt.messages], sampling)
            except ConfigError as exc:
                log.warning("pair queue: prompt %d skipped: %s", prompt.id, exc)
                self._unusable.add(prompt.id)
                continue
            picked.append(prompt)
            if len(picked) == n:
                break
        return picked

    def _drop_ready(self, sent_too: bool = True) -> int:
        """Discard the ready pairs (`sent_too=False`: but those sent from a chat, which have no origin); how many."""
        gone = [pair for pair in self._ready if sent_too or pair.origin]
        self._ready = deque(pair for pair in self._ready if not (sent_too or pair.origin))
        self._discarded += len(gone)
        for pair in gone:
            self._release(pair.prompt.id)
        return len(gone)

    def _release(self, prompt_id: int) -> None:
        self._pending[prompt_id] -= 1
        if self._pending[prompt_id] <= 0:
            del self._pending[prompt_id]


def _lower_priority() -> None:
    """Run this thread (and the torch threads it starts) below the request handlers; best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), GENERATOR_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: generation still works
        log.info("pair queue: could not lower the generator's priority (%s)", exc)
