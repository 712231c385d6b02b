"""Which pair an annotator sees next: a repeat probe, an overlap pair, a queued pair, or (queue empty) a fresh one.

Order of precedence for each request:
1. a repeat probe (at `probe_rate`): a pair this annotator already voted on, shown again with sides swapped, to
   measure their consistency (prefapp.labeling.quality);
2. an overlap pair (when `overlap` > 1): a pair someone else voted on that still needs more annotators, so
   agreement can be measured;
3. the next ready pair of the background queue (prefapp.labeling.pair_queue): no model call, so no wait;
4. only when the queue is empty: generate the pair now (the annotator waits; the UI shows progress).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, replace

from prefapp.labeling.backends import Generator, LocalGenerator
from prefapp.labeling.active import Scorer, Selection
from prefapp.labeling.distinct import TEMPERATURE_STEPS, sample_pairs
from prefapp.config import ConfigError, LabelingConfig, SamplingConfig
from prefapp.models import Policy
from prefapp.labeling.pair_queue import PairQueue, QueueStatus, ReadyPair
from prefapp.store import Pair, Prompt, Store

log = logging.getLogger(__name__)

GENERATE_TRIES = 3  # prompts tried when the queue is empty and the model keeps writing one answer
EMPTY_QUEUE_WAIT_S = 60.0  # an empty queue mid-batch: wait for that batch rather than queue a 2nd generate


@dataclass(frozen=True)
class Served:
    pair: Pair
    source: str  # "queue", "generated" (queue was empty), "overlap" or "probe"


@dataclass(frozen=True)
class Progress:
    prompts: int
    labelled: int  # prompts with at least one vote
    unlabelled: int  # prompts still needing a first label
    overlap_short: int  # voted pairs still short of `overlap` annotators
    queue: QueueStatus


class Labeling:
    """Serving pairs to annotators for one policy and store; thread-safe (Gradio calls it from workers)."""

    def __init__(self, policy: Policy, store: Store, config: LabelingConfig, sampling: SamplingConfig,
                 seed: int | None = None, generator: Generator | None = None) -> None:
        config.validate()
        self.policy, self.store, self.config = policy, store, config
        self.generator: Generator = generator or LocalGenerator(policy)  # in-process, or an engine over HTTP
        self.queue = PairQueue(policy, store, sampling, target=config.queue_target, batch_size=config.queue_batch,
                               seed=seed, generator=self.generator, resamples=config.identical_resamples,
                               near=config.near_identical)
        self.queue.set_selection(Selection(config.selection, config.coverage_share, config.active_pool))
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.served: Counter[str] = Counter()  # pairs served by source since start: how often the queue kept up

    def close(self) -> None:
        self.queue.stop()

    def configure(self, adapter: str | None, sampling: SamplingConfig) -> int:
        """New generator or sampling: the queued pairs of the old one are discarded; returns how many."""
        return self.queue.configure(adapter, sampling)

    def set_selection(self, mode: str | None = None, coverage_share: float | None = None,
                      scorer: Scorer | None | str = "keep") -> Selection:
        """Change coverage/active selection, its coverage share, or the round that scores pairs ("keep": as is)."""
        old = self.queue.selection
        config = replace(self.config, selection=mode or old.mode,
                         coverage_share=old.coverage_share if coverage_share is None else coverage_share)
        config.validate()
        self.config = config
        selection = Selection(config.selection, config.coverage_share, config.active_pool,
                              old.scorer if scorer == "keep" else scorer)
        self.queue.set_selection(selection)
        return selection

    @property
    def selection(self) -> Selection:
        return self.queue.selection

    def serve(self, annotator: str, adapter: str | None, sampling: SamplingConfig) -> Served:
        """The next pair for `annotator`, recorded in the store as shown to them now."""
        served = self._serve(annotator, adapter, sampling)
        with self._rng_lock:
            self.served[served.source] += 1
        return served

    def _serve(self, annotator: str, adapter: str | None, sampling: SamplingConfig) -> Served:
        if self.config.queue_target > 0:
            self.queue.start()  # lazily: a service that never labels never spends CPU on generation
        self.queue.configure(adapter, sampling)
        if self._chance(self.config.probe_rate):
            original = self.store.probe_candidate(annotator, self._fork())
            if original is not None:
                return Served(self.store.add_probe(original, annotator), "probe")
        if self.config.overlap > 1:
            shared = self.store.pair_for_overlap(annotator, self.config.overlap)
            if shared is not None:
                return Served(shared, "overlap")
        ready = self.queue.take(wait_s=EMPTY_QUEUE_WAIT_S)
        if ready is not None:
            return Served(self._record(ready.prompt, ready.first, ready.second, ready.adapter, ready.sampling,
                                       annotator, ready.origin), "queue")
        for _ in range(GENERATE_TRIES):  # a prompt the model answers one way only is given up: try another
            prompt = self.store.next_prompt(self._fork())
            if prompt is None:
                raise ConfigError("there are no prompts yet: add some in the Data tab (or import a file)")
            (drawn,) = sample_pairs(self.generator, [prompt.messages], sampling, adapter,
                                    self.config.identical_resamples, self.config.near_identical)
            if drawn is not None:
                origin = {"selection": "coverage", "identical_draws": drawn.identical_draws,
                          "second_temperature": drawn.second_temperature}
                return Served(self._record(prompt, drawn.first, drawn.second, adapter, sampling, annotator, origin),
                              "generated")
            draws = 1 + self.config.identical_resamples + len(TEMPERATURE_STEPS)
            self.store.record_identical_dropped([prompt.id], adapter, draws)
        raise ConfigError("the model wrote the same answer twice for every prompt tried: raise the temperature "
                          "(Sampling settings) or add more varied prompts")

    def put_first(self, prompt: Prompt, adapter: str | None, sampling: SamplingConfig) -> None:
        """Generate a pair for `prompt` now and make it the next one served (a chat sent to labelling)."""
        first, second = self.generator.sample([prompt.messages], sampling, num_samples=2, adapter=adapter)[0]
        self.queue.configure(adapter, sampling)
        self.queue.put_first(ReadyPair(prompt, first, second, adapter, sampling))

    def undo(self, annotator: str) -> Pair | None:
        """Take back `annotator`'s last vote; the pair it was on, to show again (None: nothing to undo)."""
        vote = self.store.undo_last_vote(annotator)
        return None if vote is None else self.store.get_pair(vote.pair_id)

    def progress(self) -> Progress:
        prompts, labelled, short = self.store.labelling_progress(self.config.overlap)
        return Progress(prompts, labelled, prompts - labelled, short, self.queue.status())

    def _record(self, prompt, first: str, second: str, adapter: str | None, sampling: SamplingConfig,
                annotator: str, origin: dict | None = None) -> Pair:
        swapped = self._chance(0.5)  # sides are random, and the shown order is recorded
        a, b = (second, first) if swapped else (first, second)
        return self.store.add_pair(prompt, a, b, swapped, model_id=self.policy.choice.label, adapter_id=adapter,
                                   sampling=sampling.to_dict(), served_to=annotator,
                                   backend=(self.generator.backend, self.generator.model), origin=origin)

    def _chance(self, p: float) -> bool:
        with self._rng_lock:
            return p > 0 and self._rng.random() < p

    def _fork(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())
