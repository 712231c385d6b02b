"""Measuring the loop on the demo task: a simulated annotator labels pairs, then judges the round blind.

The simulated annotator (prefapp.demo.task) judges like a careful human would, so the whole loop can run with
no person: label N pairs -> export -> DPO -> automatic checks -> blind eval votes of the round against the base on
the held-out prompts, through the same code path as the Evaluate tab and `prefapp eval` (prefapp.evaluation.judge)
-> the promotion gate decides whether the round writes the next round's pairs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from prefapp.config import LOOP_TRAIN_CONFIG, AppConfig, ConfigError, SamplingConfig, TrainConfig  # noqa: F401
from prefapp.demo.task import simulated_annotator
from prefapp.evaluation.checks import RoundChecks
from prefapp.evaluation.judge import EvalReport, simulate_judging
from prefapp.evaluation.stats import WinRate, wilson_interval  # noqa: F401 - re-exported for older callers
from prefapp.labeling import generation
from prefapp.models import Policy

log = logging.getLogger(__name__)

Judge = Callable[[str, str, str], str]  # (prompt, response_a, response_b) -> "A" | "B" | "tie" | "both_bad"


def simulate_labelling(service, n_pairs: int, annotator: str = "simulated", judge: Judge = simulated_annotator) -> dict:
    """Drive the service as an annotator would: fetch a pair, judge it, vote; returns the choice counts."""
    counts = {"A": 0, "B": 0, "tie": 0, "both_bad": 0}
    for _ in range(n_pairs):
        pair = service.next_pair(annotator)
        choice = judge(pair.prompt, pair.response_a, pair.response_b)
        service.vote(pair.pair_id, choice, annotator)
        counts[choice] += 1
    return counts


@dataclass(frozen=True)
class RoundReport:
    round_id: int
    labels: dict  # simulated annotator's choices while labelling this round
    train_seconds: float
    report: EvalReport  # the round against the base, judged blind by the simulated annotator
    checks: RoundChecks | None  # the automatic post-round checks
    gate: str  # what the promotion gate said (and whether the round became the generator)
    base: Profile
    aligned: Profile

    @property
    def win_rate(self) -> WinRate:
        return self.report.win


@dataclass(frozen=True)
class LoopReport:
    rounds: list[RoundReport]
    seconds: float

    def summary(self) -> str:
        lines = []
        for r in self.rounds:
            lines.append(f"round {r.round_id}: labels {r.labels}, trained in {r.train_seconds:.1f}s; {r.report.summary()}")
            lines.append(f"  checks: {r.checks.summary() if r.checks else 'not run'}")
            lines.append(f"  gate: {r.gate}")
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
    from prefapp.models import resolve_model
    from prefapp.service import PrefService

    started = time.perf_counter()
    config = AppConfig(model="demo", data_dir=Path(workdir))
    if sampling is not None:
        config.sampling = sampling
    service = PrefService.open(config, choice=resolve_model("demo"), seed=seed)  # seeds the demo's eval set
    heldout = [p.text for p in service.store.eval_prompts(limit=n_eval)]
    reports = []
    try:
        for _ in range(rounds):
            labels = simulate_labelling(service, n_pairs)
            round_id = service.start_training(train_config or LOOP_TRAIN_CONFIG)
            result = service.wait_training()
            if result is None or result.cancelled:
                raise RuntimeError(f"round {round_id} did not finish: {service.training_status()}")
            adapter = service.aligned
            report = simulate_judging(service.evaluation, "base", adapter, n_eval, service.sampling,
                                      simulated_annotator)
            log.info("round %d: %s", round_id, report.summary())
            base = profile(service.policy, heldout, service.sampling, None, seed=seed + 7)
            aligned = profile(service.policy, heldout, service.sampling, adapter, seed=seed + 7)
            try:  # the next round labels pairs from the aligned policy, if the gate lets it through
                gate = service.make_generator(round_id, admin="simulated")
            except ConfigError as refused:
                gate = f"kept {service.generator or 'base'} as the generator. {refused}"
            reports.append(RoundReport(round_id, labels, result.seconds, report, service.round_checks(round_id),
                                       gate, base, aligned))
    finally:
        service.close()
    return LoopReport(reports, time.perf_counter() - started)
