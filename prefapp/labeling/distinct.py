"""Pairs worth a label: two responses that are the same carry no preference, so they are never served.

Two responses count as the same when they are equal after whitespace normalization, or, with `near` > 0, when
their similarity (difflib's ratio on the normalized text) is at least `near`. A pair that comes out the same is
drawn again for that prompt (`resamples` times, all such prompts in one batch); if the model still writes one
answer, the second sample is drawn at a higher temperature (`TEMPERATURE_STEPS`); if even that fails, the prompt
is given up for this batch (and the store records it). What it took is returned with each pair, so the store can
record how often it happened.

Measured on the demo model at default sampling (bench/identical_pairs.py): see the README.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, replace
from typing import Sequence

from prefapp.config import SamplingConfig
from prefapp.labeling.backends import Generator

log = logging.getLogger(__name__)

# The second sample's temperature, as multiples of the configured one, tried in order once resampling failed:
# enough to break a near-deterministic answer, not so much that the second response turns to noise.
TEMPERATURE_STEPS = (1.5, 2.0)
MAX_TEMPERATURE = 5.0  # SamplingConfig's own limit


def normalize(text: str) -> str:
    """Whitespace-insensitive form: runs of whitespace become one space, ends stripped."""
    return re.sub(r"\s+", " ", text).strip()


def same(a: str, b: str, near: float = 0.0) -> bool:
    """Equal after whitespace normalization, or (near > 0) at least `near` similar."""
    a, b = normalize(a), normalize(b)
    if a == b:
        return True
    return near > 0 and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= near


@dataclass(frozen=True)
class Drawn:
    first: str
    second: str
    identical_draws: int  # pairs drawn for this prompt that were the same and were replaced
    second_temperature: float | None  # set when the second sample needed a higher temperature


def sample_pairs(generator: Generator, prompts: Sequence[list[dict]], sampling: SamplingConfig, adapter: str | None,
                 resamples: int = 2, near: float = 0.0) -> list[Drawn | None]:
    """Two different responses per prompt (None where the model would not write two); see the module doc."""
    samples = generator.sample(prompts, sampling, num_samples=2, adapter=adapter)
    pairs = [list(s) for s in samples]
    draws = [0] * len(prompts)
    temps: list[float | None] = [None] * len(prompts)

    def stuck() -> list[int]:
        return [i for i, (a, b) in enumerate(pairs) if same(a, b, near)]

    for _ in range(resamples):
        todo = stuck()
        if not todo:
            break
        for i in todo:
            draws[i] += 1
        fresh = generator.sample([prompts[i] for i in todo], sampling, num_samples=2, adapter=adapter)
        for i, pair in zip(todo, fresh):
            pairs[i] = list(pair)
    for step in TEMPERATURE_STEPS:
        todo = stuck()
        if not todo:
            break
        hotter = replace(sampling, temperature=min(MAX_TEMPERATURE, sampling.temperature * step))
        for i in todo:
            draws[i] += 1
        seconds = generator.sample([prompts[i] for i in todo], hotter, num_samples=1, adapter=adapter)
        for i, (second,) in zip(todo, seconds):
            pairs[i][1], temps[i] = second, hotter.temperature
    given_up = set(stuck())
    if given_up:
        log.info("identical pairs: %d of %d prompt(s) given up after %d draws", len(given_up), len(prompts),
                 1 + resamples + len(TEMPERATURE_STEPS))
    return [None if i in given_up else Drawn(a, b, draws[i], temps[i]) for i, (a, b) in enumerate(pairs)]
