"""The evaluation intents of `PrefService`, kept here so the facade stays short: a mixin whose methods use the
service's `evaluation`, `store`, `generator`, `sampling` and prompt-source helpers. One method per user intent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefapp.evaluation.checks import RoundChecks
from prefapp.evaluation.gate import GateDecision
from prefapp.evaluation.heldout import eval_import_message
from prefapp.evaluation.judge import EvalReport, EvalVoteOutcome, policy_name, report_from_votes
from prefapp.evaluation.stats import Strength
from prefapp.preferences.prompt_import import read_prompts
from prefapp.store.records import _check_annotator


@dataclass(frozen=True)
class EvalPairView:
    pair_id: str
    prompt: str
    response_a: str  # who wrote which side is revealed only by the vote's outcome
    response_b: str
    comparison: str  # "round-2 vs base", for an admin; annotators are not shown it in the tab
    source: str  # "queue" (ready ahead) or "generated" (the queue was empty)
    messages: tuple[dict, ...] = ()  # the prompt's turns: earlier turns of a conversation, then the user's last


class EvalIntents:
    """Mixed into PrefService."""

    def import_eval_prompts(self, source: str, column: str | None = None, split: str = "train",
                            uploaded: bool = False) -> str:
        """Add held-out eval prompts (same formats as a prompt import); they are never served for labelling."""
        source = self._prompt_source(source, uploaded)
        read = read_prompts(source, column or None, split)
        self.check_fits_context(read.prompts)
        name = Path(source).name or source
        return eval_import_message(self.store.add_eval_prompts(read.prompts, f"eval:{name}"[:200]))

    def eval_prompt_count(self) -> int:
        """How many held-out eval prompts there are (never served for labelling)."""
        return self.store.eval_prompt_count()

    def gate(self, round_id: int) -> GateDecision:
        """The round's verdict against the current generator and its checks: may it become the generator?"""
        return self.evaluation.gate(int(round_id), self.generator)

    def round_checks(self, round_id: int) -> RoundChecks | None:
        """The automatic post-round checks of a round (None when they have not run)."""
        return self.evaluation.checks(round_id)

    def round_evaluations(self) -> dict[int, str]:
        """Per finished round, its verdict against the base and its checks in a few words (the rounds table)."""
        votes = self.store.eval_votes()
        out = {}
        for rnd in self.store.rounds():
            if rnd.status != "finished":
                continue
            win = report_from_votes(votes, "base", f"round-{rnd.id}", bootstrap=0).win
            checks = self.evaluation.checks(rnd.id)
            verdict = (f"{report_from_votes(votes, 'base', f'round-{rnd.id}', bootstrap=0).verdict.key} vs base "
                       f"({win.rate:.0%} of {win.decided} decided)" if win.n else "no eval votes yet")
            flags = "not run" if checks is None else (f"FLAGGED: {' '.join(checks.flags)}" if checks.flags else "ok")
            out[rnd.id] = f"{verdict}; checks: {flags}"
        return out

    def eval_comparison(self, a: str | None = None, b: str | None = None) -> tuple[str, str]:
        """The two policies to compare: as given, else the admin's pick, else the newest round against the current
        generator."""
        if a and b:
            return self.evaluation.check(a, b)
        if self.evaluation.comparison is not None:
            return self.evaluation.check(*self.evaluation.comparison)
        return self.evaluation.default_comparison(self.generator)

    def set_eval_comparison(self, a: str, b: str) -> str:
        """An admin picks the two policies everyone compares next (b empty: back to the default comparison)."""
        if not (b or "").strip():
            self.evaluation.comparison = None
            return "Comparing the newest round with the current generator (the default)."
        self.evaluation.comparison = self.evaluation.check(a or "base", b)
        return f"Everyone now compares {self.evaluation.comparison[1]} with {self.evaluation.comparison[0]}."

    def eval_next(self, annotator: str, a: str | None = None, b: str | None = None) -> EvalPairView:
        """The next blind eval pair (sides random, identities hidden), from the eval queue when it is warm."""
        a, b = self.eval_comparison(a, b)
        pair, source = self.evaluation.serve(_check_annotator(annotator), a, b, self.sampling)
        text = pair.prompt[-1]["content"] if len(pair.prompt) == 1 else "\n\n".join(
            f"{m['role']}: {m['content']}" for m in pair.prompt)
        return EvalPairView(pair.id, text, pair.response_a, pair.response_b, f"{b} vs {a}", source,
                            tuple(pair.prompt))

    def eval_vote(self, pair_id: str, choice: str, annotator: str) -> EvalVoteOutcome:
        """Record a blind eval vote; the outcome reveals which policy wrote which side and the verdict so far."""
        return self.evaluation.vote(pair_id, choice, _check_annotator(annotator))

    def eval_report(self, a: str | None = None, b: str | None = None, judge: str | None = None) -> EvalReport:
        """Wins, losses, ties, win rate with its interval, length-controlled win rate, verdict and leaderboard."""
        a, b = self.eval_comparison(policy_name(a) if a else None, policy_name(b) if b else None)
        return self.evaluation.report(a, b, judge=judge or None, bootstrap=500)

    def leaderboard(self, judge: str | None = None) -> list[Strength]:
        """Bradley-Terry strengths of the base and every judged round, with bootstrap 95% intervals."""
        return self.evaluation.leaderboard(judge or None)
