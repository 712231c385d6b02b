"""Measuring the loop on the demo task: a simulated annotator labels pairs, then aligned meets base head to head.

The simulated annotator (prefapp.demo.task) judges like a careful human would, so the whole loop can run with
no person: label N pairs -> export -> DPO -> win rate of the aligned model against the base on held-out prompts.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from prefapp.labeling import generation
from prefapp.config import LOOP_TRAIN_CONFIG, AppConfig, SamplingConfig, TrainConfig
from prefapp.demo.task import simulated_annotator
from prefapp.models import Policy

log = logging.getLogger(__name__)

Judge = Callable[[str, str, str], str]  # (prompt, response_a, response_b) -> "A" | "B" | "tie" | "both_bad"


@dataclass(frozen=True)
class WinRate:
    wins: int  # aligned judged better
    losses: int  # base judged better
    ties: int  # tie or both bad: no preference either way

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float:
        """Wins among decided comparisons (ties carry no preference)."""
        decided = self.wins + self.losses
        return self.wins / decided if decided else 0.5

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson score interval of `rate`."""
        return wilson_interval(self.wins, self.wins + self.losses)

    def summary(self) -> str:
        low, high = self.interval
        return (
            f"aligned vs base: {self.wins} wins, {self.losses} losses, {self.ties} ties of {self.n}; "
            f"win rate {self.rate:.1%} (95% CI {low:.1%}-{high:.1%})"
        )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def simulate_labelling(service, n_pairs: int, annotator: str = "simulated", judge: Judge = simulated_annotator) -> dict:
    """Drive the service as an annotator would: fetch a pair, judge it, vote; returns the choice counts."""
    counts = {"A": 0, "B": 0, "tie": 0, "both_bad": 0}
    for _ in range(n_pairs):
        pair = service.next_pair(annotator)
        choice = judge(pair.prompt, pair.response_a, pair.response_b)
        service.vote(pair.pair_id, choice, annotator)
        counts[choice] += 1
    return counts


def head_to_head(
    policy: Policy,
    prompts: Sequence[str],
    sampling: SamplingConfig,
    adapter: str,
    judge: Judge = simulated_annotator,
    batch_size: int = 32,
    seed: int = 0,
) -> WinRate:
    """One sample from base+adapter and one from the base per prompt; the judge picks."""
    wins = losses = ties = 0
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        aligned = generation.sample(policy, chunk, sampling, adapter=adapter, seed=seed + start)
        base = generation.sample(policy, chunk, sampling, adapter=None, seed=seed + start + 1)
        for prompt, (a,), (b,) in zip(chunk, aligned, base):
            verdict = judge(prompt, a, b)
            wins += verdict == "A"
            losses += verdict == "B"
            ties += verdict in ("tie", "both_bad")
    return WinRate(wins, losses, ties)


@dataclass(frozen=True)
class RoundReport:
    round_id: int
    labels: dict  # simulated annotator's choices while labelling this round
    train_seconds: float
    win_rate: WinRate
    base: Profile
    aligned: Profile


@dataclass(frozen=True)
class LoopReport:
    rounds: list[RoundReport]
    seconds: float

    def summary(self) -> str:
        lines = []
        for r in self.rounds:
            lines.append(f"round {r.round_id}: labels {r.labels}, trained in {r.train_seconds:.1f}s; {r.win_rate.summary()}")
            lines.append(f"  base:    {r.base.summary()}")
            lines.append(f"  aligned: {r.aligned.summary()}")
        lines.append(f"total wall time {self.seconds:.1f}s")
        return "\n".join(lines)


@dataclass(frozen=True)
class Profile:
    """Shares of sampled answers that are well formed, correct, rude and rambling (demo task judge)."""

    well_formed: float
    correct: float
    rude: float
    rambling: float

    def summary(self) -> str:
        return (f"well-formed {self.well_formed:.0%}, correct {self.correct:.0%}, "
                f"rude {self.rude:.0%}, rambling {self.rambling:.0%}")


def profile(policy: Policy, prompts: Sequence[str], sampling: SamplingConfig, adapter: str | None,
            seed: int = 0, batch_size: int = 32) -> Profile:
    """Sample one answer per prompt and measure what the simulated annotator cares about."""
    from prefapp.demo.task import judge

    judgements = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        replies = generation.sample(policy, chunk, sampling, adapter=adapter, seed=seed + start)
        judgements += [judge(p, r) for p, (r,) in zip(chunk, replies)]
    n = max(1, len(judgements))
    return Profile(
        sum(j.well_formed for j in judgements) / n,
        sum(bool(j.correct) for j in judgements) / n,
        sum(j.rude for j in judgements) / n,
        sum(j.rambling for j in judgements) / n,
    )


def run_demo_loop(
    workdir: Path,
    n_pairs: int = 200,
    n_eval: int = 300,
    rounds: int = 1,
    train_config: TrainConfig | None = None,
    seed: int = 0,
    sampling: SamplingConfig | None = None,
) -> LoopReport:
    """Label -> export -> DPO -> head-to-head on held-out prompts, `rounds` times, all on the demo task."""
    from prefapp.demo.task import sample_tasks
    from prefapp.models import resolve_model
    from prefapp.service import PrefService

    started = time.perf_counter()
    config = AppConfig(model="demo", data_dir=Path(workdir))
    if sampling is not None:
        config.sampling = sampling
    heldout = [t.question for t in sample_tasks(n_eval, seed=seed, split="heldout")]
    service = PrefService.open(config, choice=resolve_model("demo"), seed=seed)
    reports = []
    try:
        for _ in range(rounds):
            labels = simulate_labelling(service, n_pairs)
            round_id = service.start_training(train_config or LOOP_TRAIN_CONFIG)
            result = service.wait_training()
            if result is None or result.cancelled:
                raise RuntimeError(f"round {round_id} did not finish: {service.training_status()}")
            adapter = service.aligned
            win = head_to_head(service.policy, heldout, service.sampling, adapter, seed=seed)
            log.info("round %d: %s", round_id, win.summary())
            base = profile(service.policy, heldout, service.sampling, None, seed=seed + 7)
            aligned = profile(service.policy, heldout, service.sampling, adapter, seed=seed + 7)
            reports.append(RoundReport(round_id, labels, result.seconds, win, base, aligned))
            service.set_generator(adapter)  # the next round labels pairs from the aligned policy
    finally:
        service.close()
    return LoopReport(reports, time.perf_counter() - started)
