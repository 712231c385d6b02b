"""The promotion gate: may a round become the generator of the next round?

It refuses a round judged *worse* than the policy it would replace, or flagged as degenerate by the automatic
checks, unless an admin confirms explicitly (the confirmation is recorded with the verdict and the flags it
overrode). With `require_working`, it also refuses a round not (yet) judged *working*.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefapp.config import ConfigError
from prefapp.evaluation.checks import RoundChecks
from prefapp.evaluation.stats import Verdict


@dataclass(frozen=True)
class GateDecision:
    policy: str  # the round asking to become the generator
    compared_with: str  # the policy its verdict is against
    verdict: str  # "working", "worse", "even", "undecided"
    verdict_text: str
    checks: str  # the checks' summary ("not run" when they have not)
    flags: list[str]
    reasons: list[str]  # why it is refused; empty: allowed

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def text(self) -> str:
        """What *Make generator* shows: the verdict, the checks, and whether it needs confirming."""
        lines = [f"{self.policy} vs {self.compared_with}: {self.verdict_text}", f"checks: {self.checks}"]
        if self.reasons:
            lines.append("Refused: " + " ".join(self.reasons) + " Confirm explicitly to make it the generator "
                         "anyway (your confirmation is recorded).")
        return "\n".join(lines)


class GateRefused(ConfigError):
    """The gate refused a round; the message is the decision's text, then how to confirm from where it was asked (the
    Chat tab's checkbox, the API's `confirm`). An admin may confirm (recorded) to override."""

    def __init__(self, decision: GateDecision, how_to_confirm: str = "") -> None:
        super().__init__(decision.text() + (f"\n{how_to_confirm}" if how_to_confirm else ""))
        self.decision = decision


def decide(policy: str, compared_with: str, verdict: Verdict, checks: RoundChecks | None,
           require_working: bool) -> GateDecision:
    """The gate's decision for `policy` from its verdict against `compared_with` and its post-round checks."""
    reasons = []
    if verdict.key == "worse":
        reasons.append(f"It was judged worse than {compared_with}.")
    if checks is not None and checks.degenerate:
        reasons.append("The automatic checks flagged it as degenerate.")
    if require_working and verdict.key != "working":
        reasons.append(f"This app requires a round judged working before it becomes the generator "
                       f"(PREFAPP_REQUIRE_WORKING); its verdict is {verdict.key}.")
    return GateDecision(policy, compared_with, verdict.key, verdict.words,
                        checks.summary() if checks else "not run", list(checks.flags) if checks else [], reasons)
