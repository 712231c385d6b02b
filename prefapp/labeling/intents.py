"""The labelling intents of `PrefService` that make every label count, kept here so the facade stays short: a mixin
whose methods use the service's `labeling`, `store`, `policy`, `sampling` and `aligned` round."""

from __future__ import annotations

from prefapp.config import ConfigError
from prefapp.labeling.active import scorer_for
from prefapp.store.records import _check_annotator


class LabelingIntents:
    """Mixed into PrefService."""

    def set_selection(self, mode: str, coverage_share: float | None = None) -> str:
        """Pick pairs by coverage (least-labelled prompt) or actively (smallest margin under the latest round)."""
        scorer = scorer_for(self.store, self.aligned, self.policy.adapters)
        selection = self.labeling.set_selection(mode, coverage_share, scorer)
        if selection.mode == "coverage":
            return "Pairs are chosen by coverage: least-labelled prompts first."
        by = f"round {selection.scorer.round_id}" if selection.scorer else "the next round (none yet: coverage)"
        return (f"Active selection: {1 - selection.coverage_share:.0%} of pairs are the ones {by} is least sure "
                f"of, {selection.coverage_share:.0%} by coverage.")

    def rate_reply(self, messages: list[dict], reply: str, good: bool, annotator: str, which: str = "base") -> str:
        """Thumbs up (good=True) or down on a chat reply of the base or the aligned model, stored as feedback."""
        if which not in ("base", "aligned") or (which == "aligned" and self.aligned is None):
            raise ConfigError(f"cannot rate the {which!r} reply: rate 'base', or 'aligned' once a round exists")
        try:
            annotator = _check_annotator(annotator or "")
        except ValueError as exc:
            raise ConfigError(f"{exc} (the Label tab's name field)") from exc
        adapter = None if which == "base" else self.aligned
        provenance = {"model_id": self.policy.choice.label, "adapter_id": adapter, "side": which,
                      "sampling": self.sampling.to_dict()}
        self.store.rate_completion(messages, reply, bool(good), annotator, provenance)
        return f"Thanks: {'thumbs up' if good else 'thumbs down'} on the {which} reply is stored."

    def _follow_round(self) -> None:
        """The newest round scores candidate pairs (active selection) as soon as it is the aligned one."""
        scorer = self.labeling.selection.scorer
        wanted = scorer_for(self.store, self.aligned, self.policy.adapters)
        if (scorer.adapter if scorer else None) != (wanted.adapter if wanted else None):
            self.labeling.set_selection(scorer=wanted)
