"""Judging two policies blind on the eval prompts: serve an eval pair, record the vote, report the verdict.

One code path for every judge: a person in the Evaluate tab, `prefapp eval --judge simulated`, `prefapp loop` and
bench/closed_loop.py all go serve -> judge -> vote through `Evaluation`, and the verdict is computed from the
eval votes in the store. The sides are random and recorded; which policy wrote which side is revealed only in
the vote's outcome.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Callable

from prefapp.config import ConfigError, EvalConfig, SamplingConfig
from prefapp.evaluation.checks import RoundChecks, run_checks
from prefapp.evaluation.gate import GateDecision, decide
from prefapp.evaluation.queue import BASE, EvalQueue, adapter_of
from prefapp.evaluation.stats import (Strength, Verdict, WinRate, bradley_terry, length_controlled_win_rate, tally,
                                      verdict)
from prefapp.labeling.backends import Generator, LocalGenerator
from prefapp.labeling.generation import prompt_text
from prefapp.models import Policy
from prefapp.store import Store
from prefapp.store.evals import EvalPair, EvalVote
from prefapp.training.rounds import round_adapter_name

log = logging.getLogger(__name__)

Judge = Callable[[str, str, str], str]  # (prompt, response_a, response_b) -> "A" | "B" | "tie" | "both_bad"
EMPTY_QUEUE_WAIT_S = 120.0  # an empty queue mid-batch: that batch comes sooner than a second generate call
SIMULATED = "simulated"  # the annotator name and judge kind of the simulated annotator


@dataclass(frozen=True)
class EvalReport:
    a: str  # the reference (e.g. base or the current generator)
    b: str  # the candidate: wins are b's
    win: WinRate
    lc_win_rate: float  # b's win rate with the length difference regressed out
    verdict: Verdict
    leaderboard: list[Strength]

    def to_dict(self) -> dict:
        """The JSON `prefapp eval --json` prints."""
        low, high = self.win.interval
        return {"a": self.a, "b": self.b, "wins": self.win.wins, "losses": self.win.losses, "ties": self.win.ties,
                "win_rate": self.win.rate, "ci_low": low, "ci_high": high, "lc_win_rate": self.lc_win_rate,
                "verdict": self.verdict.key, "verdict_text": self.verdict.words,
                "votes_needed": self.verdict.votes_needed,
                "leaderboard": [{"policy": s.policy, "strength": s.strength, "ci_low": s.ci_low,
                                 "ci_high": s.ci_high, "comparisons": s.comparisons} for s in self.leaderboard]}

    def summary(self) -> str:
        return (f"{self.win.summary(self.a, self.b)}; length-controlled {self.lc_win_rate:.1%}; "
                f"verdict: {self.verdict.words}")


@dataclass(frozen=True)
class EvalVoteOutcome:
    recorded: bool
    message: str  # what was recorded, with the identities revealed
    policy_a: str  # who wrote side A: shown only now, after the vote
    policy_b: str
    report: EvalReport | None  # the verdict of this comparison so far (leaderboard without intervals)


def report_from_votes(votes: list[EvalVote], a: str, b: str, bootstrap: int = 200) -> EvalReport:
    """Win/loss/tie of b against a, the length-controlled win rate, the verdict, and the leaderboard of all policies."""
    mine = [v for v in votes if {v.policy_a, v.policy_b} == {a, b}]
    win = tally("b" if v.winner == b else "a" if v.winner == a else "tie" for v in mine)
    decided = [v for v in mine if v.winner in (a, b)]
    lc = length_controlled_win_rate([v.winner == b for v in decided], [_length_diff(v, a, b) for v in decided])
    return EvalReport(a, b, win, lc, verdict(win), leaderboard(votes, bootstrap))


def leaderboard(votes: list[EvalVote], bootstrap: int = 200) -> list[Strength]:
    """Bradley-Terry strengths of every judged policy (base = 0), ties as half a win each, bootstrap 95% intervals."""
    outcomes = [(v.policy_a, v.policy_b, {"A": 1.0, "B": 0.0}.get(v.choice, 0.5)) for v in votes]
    return bradley_terry(outcomes, anchor=BASE, bootstrap=bootstrap)


def _length_diff(v: EvalVote, a: str, b: str) -> float:
    words = {v.policy_a: len(v.response_a.split()), v.policy_b: len(v.response_b.split())}
    return words[b] - words[a]


class Evaluation:
    """Blind comparisons of two policies on the eval prompts for one policy and store; thread-safe."""

    def __init__(self, policy: Policy, store: Store, config: EvalConfig, seed: int | None = None,
                 generator: Generator | None = None) -> None:
        config.validate()
        self.policy, self.store, self.config = policy, store, config
        self.generator: Generator = generator or LocalGenerator(policy)  # in-process, or an engine over HTTP
        self.queue = EvalQueue(policy, store, config.queue_target, config.queue_batch, seed=seed,
                               generator=self.generator)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.comparison: tuple[str, str] | None = None  # an admin's pick (a, b) for everyone; None: the default

    def close(self) -> None:
        self.queue.stop()

    def policies(self) -> list[str]:
        """The policies that can be judged: the base and every finished round the generator knows, oldest first (on
        an engine a round is published when its first eval pair is asked for: `serve`)."""
        known = list(self.generator.adapters)  # copy: training may add one from its thread
        return [BASE, *sorted(known, key=lambda n: int(n.rsplit("-", 1)[-1]) if n[-1].isdigit() else 0)]

    def default_comparison(self, generator: str | None) -> tuple[str, str]:
        """(a, b): the newest finished round (b) against the current generator, or against the base when the
        newest round is the generator."""
        rounds = self.policies()[1:]
        if not rounds:
            raise ConfigError("no finished round to judge yet: train a round in the Train tab first")
        newest, current = rounds[-1], generator or BASE
        return (current if current != newest else BASE), newest

    def check(self, a: str, b: str) -> tuple[str, str]:
        """Validated policy names ('1' and 'round-1' both mean round 1)."""
        a, b = policy_name(a), policy_name(b)
        known = self.policies()
        for name in (a, b):
            if name not in known:
                raise ConfigError(f"{name!r} cannot be judged: pick one of {', '.join(known)}")
        if a == b:
            raise ConfigError(f"both sides are {a}: pick two different policies to compare")
        return a, b

    def serve(self, annotator: str, a: str, b: str, sampling: SamplingConfig) -> tuple[EvalPair, str]:
        """The next blind eval pair of a vs b for `annotator`, recorded as shown now; (pair, 'queue'|'generated')."""
        a, b = self.check(a, b)
        if self.store.eval_prompt_count() == 0:
            raise ConfigError("there are no eval prompts: import an eval set (Data tab, /import_eval_prompts or "
                              "`prefapp import-eval FILE`), or serve with PREFAPP_EVAL_HOLDOUT=0.1 and import prompts")
        # Both answers come from the generator's backend: an engine loads a round first (or PublishUnsupported says
        # how to merge and serve it); a round is never answered by the weights in this process instead.
        for adapter in filter(None, (adapter_of(a), adapter_of(b))):
            if not self.generator.can_use(adapter):
                self.generator.publish(adapter)
        queued = self.config.queue_target > 0
        if queued:
            self.queue.start()
        self.queue.configure((a, b), sampling)
        ready = self.queue.take(wait_s=EMPTY_QUEUE_WAIT_S if queued else 0.0)  # no queue: no batch to wait for
        if ready is not None:
            return self._record(ready.prompt, ready.first, ready.second, (a, b), sampling, annotator), "queue"
        [prompt] = self.store.least_compared_eval_prompts((a, b), 1, self.queue.pending(), self._fork()) or [None]
        if prompt is None:
            raise ConfigError("there are no eval prompts: import an eval set first")
        [[first]] = self.generator.sample([prompt.messages], sampling, adapter=adapter_of(a))
        [[second]] = self.generator.sample([prompt.messages], sampling, adapter=adapter_of(b))
        return self._record(prompt, first, second, (a, b), sampling, annotator), "generated"

    def vote(self, pair_id: str, choice: str, annotator: str, judge: str = "human",
             with_report: bool = True) -> EvalVoteOutcome:
        """Record a blind vote once, then reveal who wrote which side and (`with_report`) the comparison's verdict
        so far; a bulk judge skips the report and asks for it at the end."""
        vote, created = self.store.record_eval_vote((pair_id or "").strip(), choice, annotator, judge)
        a, b = (vote.policy_b, vote.policy_a) if vote.swapped else (vote.policy_a, vote.policy_b)
        report = self.report(a, b, bootstrap=0) if with_report else None
        winner = vote.winner or {"tie": "neither (tie)", "both_bad": "neither (both bad)"}[vote.choice]
        said = "Recorded" if created else "Already recorded for this pair; nothing changed"
        message = (f"{said}: A was {vote.policy_a}, B was {vote.policy_b}; you picked {winner}. "
                   + (f"{b} vs {a}: {report.verdict.words}." if report else ""))
        return EvalVoteOutcome(created, message, vote.policy_a, vote.policy_b, report)

    def report(self, a: str, b: str, judge: str | None = None, bootstrap: int = 200) -> EvalReport:
        """The verdict of b against a from the stored eval votes (of one judge kind, when given)."""
        return report_from_votes(self.store.eval_votes(judge), a, b, bootstrap)

    def leaderboard(self, judge: str | None = None, bootstrap: int = 500) -> list[Strength]:
        """Bradley-Terry strengths of base and every judged round from all eval votes (of one judge kind)."""
        return leaderboard(self.store.eval_votes(judge), bootstrap)

    def record_checks(self, round_id: int, sampling: SamplingConfig) -> RoundChecks | None:
        """Run and store the automatic checks of a finished round on the eval prompts (None: no eval prompts)."""
        prompts = self.store.eval_prompts(limit=self.config.check_prompts) if self.config.check_prompts else []
        if not prompts:
            return None
        if self.generator.backend != "local":  # drift needs the round's log-probs: the weights in this process
            log.info("round %d: automatic checks skipped: pairs come from %s (run them with --generator local)",
                     round_id, self.generator.backend)
            return None
        checks = run_checks(self.policy, [p.messages for p in prompts], sampling, round_adapter_name(round_id))
        self.store.set_round_checks(round_id, checks.to_dict())
        log.info("round %d checks: %s", round_id, checks.summary())
        return checks

    def checks(self, round_id: int) -> RoundChecks | None:
        stored = self.store.round_checks(int(round_id))
        return None if stored is None else RoundChecks.from_dict(stored)

    def gate(self, round_id: int, generator: str | None) -> GateDecision:
        """May this round replace the current generator? Its verdict against the generator (against the base when
        nobody has compared those two yet) and its checks decide."""
        name = round_adapter_name(round_id)
        current = generator if generator and generator != name else BASE
        report = self.report(current, name, bootstrap=0)
        if report.win.n == 0 and current != BASE:
            report = self.report(BASE, name, bootstrap=0)
        return decide(name, report.a, report.verdict, self.checks(round_id), self.config.require_working)

    def _record(self, prompt, first: str, second: str, policies: tuple[str, str], sampling: SamplingConfig,
                annotator: str) -> EvalPair:
        swapped = self._fork().random() < 0.5  # sides are random; the shown order is recorded
        (pa, ra), (pb, rb) = ((policies[1], second), (policies[0], first)) if swapped else \
            ((policies[0], first), (policies[1], second))
        return self.store.add_eval_pair(prompt, pa, pb, ra, rb, swapped, self.policy.choice.label,
                                        {**sampling.to_dict(), **self.provenance()}, annotator)

    def provenance(self) -> dict[str, str]:
        """Where eval answers are generated, recorded with each eval pair and vote beside the sampling settings:
        'local' or the engine's URL, and the model name it was asked for."""
        return {"backend": self.generator.backend, "backend_model": self.generator.model}

    def _fork(self) -> random.Random:
        with self._lock:
            return random.Random(self._rng.random())


def policy_name(text: str | int | None) -> str:
    """'base', 'round-2', '2' or 2 -> the policy's name."""
    text = str(text if text is not None else "").strip().lower()
    if text in ("", BASE):
        return BASE
    return f"round-{int(text)}" if text.isdigit() else text


def simulate_judging(evaluation: Evaluation, a: str, b: str, n: int, sampling: SamplingConfig, judge: Judge,
                     annotator: str = SIMULATED, batch_size: int = 32, bootstrap: int = 200) -> EvalReport:
    """`n` blind comparisons of a vs b judged by `judge` exactly as a person makes them (serve, read, vote),
    recorded as judge 'simulated'; returns the verdict over every simulated vote of this comparison."""
    a, b = evaluation.check(a, b)
    evaluation.queue.resize(target=2 * batch_size, batch_size=batch_size)  # bulk: bigger generate calls
    try:
        for _ in range(n):
            pair, _ = evaluation.serve(annotator, a, b, sampling)
            choice = judge(prompt_text(pair.prompt), pair.response_a, pair.response_b)
            evaluation.vote(pair.id, choice, annotator, judge=SIMULATED, with_report=False)
    finally:
        evaluation.queue.resize(evaluation.config.queue_target, evaluation.config.queue_batch)
    return evaluation.report(a, b, judge=SIMULATED, bootstrap=bootstrap)


