"""Active pair selection: serve the pairs the current round can barely tell apart.

For a DPO (or KTO) round the implicit reward of a response y to a prompt x is
    r(x, y) = beta * (log pi_round(y | x) - log pi_base(y | x)),
and both policies are in memory: the loaded `Policy` with the round's adapter on, and with it off. A pair whose
two responses get nearly the same reward (small |r(y1) - r(y2)|) is one the round is unsure about, so its label
teaches the next round most. Ranking by that alone would serve the same few prompts over and over, so a share of
the pairs (`coverage_share`) is still chosen the old way, least-labelled prompt first.

Log-probabilities are computed the way TRL tokenizes a conversational row: the prompt through the chat template
with the generation prompt, prompt + answer through the template in full, and the answer is what follows their
common prefix (so the end-of-turn token the template writes after the answer counts, as it does in training).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from prefapp.models import Policy

log = logging.getLogger(__name__)

MARGIN_BATCH = 32  # sequences per forward pass when scoring: the demo model's whole batch on one CPU pass


@dataclass(frozen=True)
class Scorer:
    """The round whose implicit reward ranks candidate pairs."""

    adapter: str  # the adapter name loaded in the Policy, e.g. "round-2"
    round_id: int
    beta: float  # the round's own beta: its implicit rewards are on that scale


def _token_ids(policy: Policy, prompt: list[dict], completion: str) -> tuple[list[int], int]:
    """(prompt + completion ids, where the completion starts), as TRL's DPO/KTO tokenization does it."""
    tok = policy.tokenizer
    prompt_text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tok.apply_chat_template(prompt + [{"role": "assistant", "content": completion}], tokenize=False)
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tok(full_text, add_special_tokens=False)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    return full_ids, start


def sequence_logps(policy: Policy, prompts: Sequence[list[dict]], completions: Sequence[str],
                   adapter: str | None) -> list[float]:
    """Sum of the completion tokens' log-probabilities given the prompt, under base + `adapter` (None: base)."""
    encoded = [_token_ids(policy, p, c) for p, c in zip(prompts, completions)]
    out: list[float] = []
    pad = policy.tokenizer.pad_token_id or 0
    for start in range(0, len(encoded), MARGIN_BATCH):
        chunk = encoded[start:start + MARGIN_BATCH]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (seq, _) in enumerate(chunk):  # right padding: positions of real tokens stay 0..n-1
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        with policy.using(adapter) as model, torch.inference_mode():
            logits = model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device)).logits
        logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = ids[:, 1:].to(logps.device)
        token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, (seq, begin) in enumerate(chunk):
            # token t is predicted at position t-1: the completion's tokens are begin..len-1
            out.append(float(token_logps[row, begin - 1:len(seq) - 1].sum()))
    return out


def implicit_rewards(policy: Policy, prompts: Sequence[list[dict]], completions: Sequence[str],
                     scorer: Scorer) -> list[float]:
    """beta * (log pi_round - log pi_base) for each completion."""
    on = sequence_logps(policy, prompts, completions, scorer.adapter)
    off = sequence_logps(policy, prompts, completions, None)
    return [scorer.beta * (a - b) for a, b in zip(on, off)]


def pair_margins(policy: Policy, prompts: Sequence[list[dict]], firsts: Sequence[str], seconds: Sequence[str],
                 scorer: Scorer) -> list[float]:
    """r(first) - r(second) per pair; both responses of every pair scored in the same passes."""
    n = len(prompts)
    rewards = implicit_rewards(policy, [*prompts, *prompts], [*firsts, *seconds], scorer)
    return [rewards[i] - rewards[n + i] for i in range(n)]


class Mix:
    """How many of each batch are chosen by coverage: `share` of all pairs kept, exactly over time.

    A running credit carries the fraction a batch could not take, so 0.3 of batches of 8 gives 2, 3, 2, 3, 2, ...
    (12 of 40), never a rounding drift that starves one side.
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self._credit = 0.0

    def coverage_slots(self, n_keep: int) -> int:
        self._credit += n_keep * self.share
        slots = min(n_keep, int(self._credit + 1e-9))
        self._credit -= slots
        return slots


def choose(margins: Sequence[float | None], n_keep: int, coverage_slots: int) -> list[tuple[int, str]]:
    """Which candidates to serve, as (index, 'coverage' | 'active'), in candidate order. Candidates come
    least-labelled first; None marks one that was not scored. Coverage takes the first `coverage_slots`, active the
    smallest |margin| among the other scored ones, and coverage fills up when too few could be scored."""
    n_keep = min(n_keep, len(margins))
    covered = list(range(min(coverage_slots, n_keep)))
    scored = [i for i in range(len(margins)) if i >= len(covered) and margins[i] is not None]
    active = sorted(scored, key=lambda i: (abs(margins[i]), i))[:n_keep - len(covered)]
    filler = [i for i in range(len(covered), len(margins)) if i not in active][:n_keep - len(covered) - len(active)]
    picked = [(i, "coverage") for i in covered + filler] + [(i, "active") for i in active]
    return sorted(picked)


@dataclass(frozen=True)
class Selection:
    """How the pair queue chooses what to serve (LabelingConfig.selection / coverage_share / active_pool)."""

    mode: str = "coverage"  # "coverage" or "active"
    coverage_share: float = 0.3
    pool: int = 2  # candidates drawn per pair kept, in active mode
    scorer: Scorer | None = None  # the current round; None until one exists (active then acts as coverage)

    @property
    def ranks(self) -> bool:
        """Whether candidates are ranked by margin (active mode with a round to score them)."""
        return self.mode == "active" and self.scorer is not None


def draw_batch(generator, policy: Policy, prompts: Sequence, sampling, adapter: str | None, selection: Selection,
               mix: Mix, n_keep: int, resamples: int = 2, near: float = 0.0) -> tuple[list[tuple], list[int], int]:
    """Draw distinct pairs for `prompts` (least-labelled first) from `generator` (local or an engine), score them
    with the round's adapter on and off in the local `policy` when a round exists, keep `n_keep`.

    Returns ([(prompt, first, second, origin)], ids of prompts given up as identical, draws per given-up prompt).
    `origin` is what `Store.add_pair` records: selection, margin, margin_round, identical_draws, second_temperature.
    """
    from prefapp.labeling.distinct import TEMPERATURE_STEPS, sample_pairs

    drawn = sample_pairs(generator, [p.messages for p in prompts], sampling, adapter, resamples=resamples, near=near)
    dropped = [p.id for p, d in zip(prompts, drawn) if d is None]
    usable = [(p, d) for p, d in zip(prompts, drawn) if d is not None]
    margins: list[float | None] = [None] * len(usable)
    if selection.scorer is not None and usable:
        margins = pair_margins(policy, [p.messages for p, _ in usable], [d.first for _, d in usable],
                               [d.second for _, d in usable], selection.scorer)
    slots = mix.coverage_slots(min(n_keep, len(usable))) if selection.ranks else n_keep
    kept = []
    for i, why in choose(margins, n_keep, slots):
        prompt, d = usable[i]
        origin = {"selection": why, "margin": margins[i], "identical_draws": d.identical_draws,
                  "margin_round": None if margins[i] is None else selection.scorer.round_id,
                  "second_temperature": d.second_temperature}
        kept.append((prompt, d.first, d.second, origin))
    return kept, dropped, 1 + resamples + len(TEMPERATURE_STEPS)


def scorer_for(store, adapter: str | None, loaded: dict | None = None) -> Scorer | None:
    """The Scorer of a round adapter named 'round-N' (its beta from the round's config); None for the base, and for
    a round not loaded in this process's policy (`loaded`): with a remote generator the round lives in the engine,
    and selection stays coverage."""
    if not adapter or not adapter.startswith("round-") or not adapter[6:].isdigit():
        return None
    if loaded is not None and adapter not in loaded:
        return None
    rnd = store.get_round(int(adapter[6:]))
    beta = float((rnd.config if rnd is not None else {}).get("beta", 0.1))
    return Scorer(adapter, int(adapter[6:]), beta)
