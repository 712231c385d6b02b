"""Which prompts are held out for evaluation and never served for labelling.

Two ways in: an eval set imported as such (its own table, `Store.add_eval_prompts`), or a share of every labelling
import held out automatically by a stable hash of the prompt (the sha256 the store dedups on), so the same prompt
lands on the same side on every machine and every re-import, and never leaks into labelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prefapp.store import AddPromptsResult, Store, to_messages
from prefapp.store.evals import EvalPromptsResult, prompt_hash

HASH_BUCKETS = 16 ** 8  # the first 8 hex digits of the sha256 pick the bucket


def is_held_out(messages: list[dict], share: float) -> bool:
    """True for about `share` of all prompts, always the same ones."""
    return share > 0 and int(prompt_hash(messages)[:8], 16) < share * HASH_BUCKETS


@dataclass(frozen=True)
class LabellingImport:
    result: AddPromptsResult  # the labelling part
    held_out: EvalPromptsResult | None  # the share held out now (None when the share is 0)
    skipped_eval: int  # prompts already in the eval set: kept out of labelling

    def note(self) -> str:
        """'; N held out for evaluation' and friends, for the import message ('' when nothing was held out)."""
        parts = []
        if self.held_out is not None and self.held_out.added:
            parts.append(f"{self.held_out.added} held out for evaluation")
        if self.skipped_eval:
            parts.append(f"{self.skipped_eval} skipped: already eval prompts")
        return "".join(f"; {p}" for p in parts)


def add_labelling_prompts(store: Store, prompts: Sequence, source: str, share: float) -> LabellingImport:
    """Add prompts for labelling, less eval prompts and less the held-out share (which joins the eval set)."""
    keyed = []
    for prompt in prompts:
        try:
            keyed.append((prompt, prompt_hash(to_messages(prompt))))
        except ValueError:
            keyed.append((prompt, None))  # invalid: the store skips it and says why
    eval_hashes = store.held_out_hashes([h for _, h in keyed if h])
    labelling, held = [], []
    for prompt, digest in keyed:
        if digest in eval_hashes:
            continue
        (held if digest and is_held_out(to_messages(prompt), share) else labelling).append(prompt)
    held_result = store.add_eval_prompts(held, source=f"holdout:{source}"[:200]) if held else None
    return LabellingImport(store.add_prompts(labelling, source=source), held_result,
                           sum(1 for _, h in keyed if h in eval_hashes))


def eval_import_message(result: EvalPromptsResult) -> str:
    """What an eval-set import did, in one sentence."""
    parts = [f"added {result.added} eval prompt(s)"]
    if result.duplicates:
        parts.append(f"skipped {result.duplicates} duplicate(s)")
    if result.in_labelling:
        parts.append(f"skipped {result.in_labelling} already used for labelling (they would not be held out)")
    if result.invalid:
        parts.append(f"skipped {result.invalid} invalid ({'; '.join(result.errors[:3])})")
    return ", ".join(parts) + "."
