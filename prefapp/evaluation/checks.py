"""Automatic checks after every round, no human needed: has the round degenerated, and how far did it drift?

On the eval prompts, one answer per prompt from the base and one from the round, then:
- repetition: the share of word 3-grams that repeat an earlier 3-gram of the same answer, and distinct-2 (distinct
  word bigrams / all bigrams over all answers: low means every answer says the same thing);
- length: mean answer length in tokens, and the share of answers that ran into max_new_tokens;
- drift from the base: on the round's own answers, the mean per-token log-prob ratio log pi_round - log pi_base
  (a per-token KL(round || base) estimate, since the answers are the round's samples) and its per-answer sum.
Each figure sits beside the base's; crossing a threshold raises a flag worded as the remedy. Outputs that turn
repetitive mean the learning rate is too high or beta too low: halve the learning rate, raise beta to 0.2-0.5,
train fewer epochs.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch

from prefapp.config import SamplingConfig
from prefapp.labeling import generation
from prefapp.models import Policy

log = logging.getLogger(__name__)

# Thresholds. Each is far enough from a healthy round that a flag means something (a healthy demo round: repeated
# 3-grams 0-2%, tokens/answer within +-40% of the base, drift 0.1-0.6 nats/token).
REPEAT_MAX = 0.15  # repeated 3-gram share above this, and at least twice the base's (+5 points)
DISTINCT_MIN_RATIO = 0.5  # distinct-2 fallen below half the base's
HIT_MAX_RISE = 0.25  # share of answers hitting max_new_tokens up by more than 25 points
LENGTH_MAX_RATIO = 2.0  # mean length more than doubled (DPO inflates length)
DRIFT_MAX = 2.0  # nats per token: the round no longer resembles its base
REMEDY = "halve the learning rate, raise beta to 0.2-0.5, or train fewer epochs"


@dataclass(frozen=True)
class TextStats:
    repeated_3grams: float  # mean share of an answer's word 3-grams that repeat one earlier in the same answer
    distinct_2: float  # distinct word bigrams / all word bigrams, over all answers
    mean_tokens: float
    hit_max: float  # share of answers that reached max_new_tokens


@dataclass(frozen=True)
class RoundChecks:
    policy: str  # "round-N"
    prompts: int  # eval prompts sampled
    base: TextStats
    round: TextStats
    log_ratio_per_token: float  # mean of log pi_round - log pi_base per answer token (a per-token KL estimate)
    kl_per_answer: float  # the same summed over each answer, averaged
    flags: list[str] = field(default_factory=list)  # what crossed a threshold, each with its remedy

    @property
    def degenerate(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RoundChecks":
        return cls(d["policy"], d["prompts"], TextStats(**d["base"]), TextStats(**d["round"]),
                   d["log_ratio_per_token"], d["kl_per_answer"], list(d.get("flags", [])))

    def summary(self) -> str:
        b, r = self.base, self.round
        head = (f"repeated 3-grams {r.repeated_3grams:.1%} (base {b.repeated_3grams:.1%}), distinct-2 "
                f"{r.distinct_2:.2f} (base {b.distinct_2:.2f}), {r.mean_tokens:.1f} tokens/answer (base "
                f"{b.mean_tokens:.1f}), hit max_new_tokens {r.hit_max:.0%} (base {b.hit_max:.0%}), drift "
                f"{self.log_ratio_per_token:.2f} nats/token (KL ~{self.kl_per_answer:.1f} per answer)")
        return head + ("; FLAGGED: " + " ".join(self.flags) if self.flags else "; no flags")


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of the answer's word n-grams that already occurred earlier in it (0 for answers under n+1 words)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams of all texts (1.0 when there are none)."""
    grams = Counter(tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 1.0


def text_stats(replies: list[str], token_counts: list[int], max_new_tokens: int) -> TextStats:
    n = max(len(replies), 1)
    return TextStats(sum(repeated_ngram_share(r) for r in replies) / n, distinct_n(replies),
                     sum(token_counts) / n, sum(c >= max_new_tokens - 1 for c in token_counts) / n)


def flags(base: TextStats, rnd: TextStats, drift: float) -> list[str]:
    """The thresholds a round crosses, each worded with what to do about it."""
    out = []
    if rnd.repeated_3grams > REPEAT_MAX and rnd.repeated_3grams > 2 * base.repeated_3grams + 0.05:
        out.append(f"Repetitive outputs ({rnd.repeated_3grams:.0%} repeated 3-grams vs {base.repeated_3grams:.0%} "
                   f"for the base): the learning rate is too high or beta too low; {REMEDY}.")
    if rnd.distinct_2 < DISTINCT_MIN_RATIO * base.distinct_2:
        out.append(f"Answers collapsed to the same words (distinct-2 {rnd.distinct_2:.2f} vs {base.distinct_2:.2f}): "
                   f"{REMEDY}.")
    if rnd.hit_max > base.hit_max + HIT_MAX_RISE:
        out.append(f"{rnd.hit_max:.0%} of answers run into max_new_tokens (base {base.hit_max:.0%}): they do not "
                   f"stop; {REMEDY}.")
    if rnd.mean_tokens > LENGTH_MAX_RATIO * max(base.mean_tokens, 1.0):
        out.append(f"Answers are {rnd.mean_tokens / max(base.mean_tokens, 1.0):.1f}x as long as the base's: DPO "
                   "inflates length; raise beta, and check that longer answers are not always chosen.")
    if drift > DRIFT_MAX:
        out.append(f"The round drifted far from the base ({drift:.1f} nats/token): {REMEDY}.")
    return out


def run_checks(policy: Policy, prompts: list[list[dict]], sampling: SamplingConfig, adapter: str,
               seed: int = 0, batch_size: int = 32) -> RoundChecks:
    """Sample the base and the round on `prompts` and measure repetition, length and drift; flags included."""
    base_replies, round_replies = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        base_replies += [r for (r,) in generation.sample(policy, chunk, sampling, adapter=None, seed=seed + start)]
        round_replies += [r for (r,) in generation.sample(policy, chunk, sampling, adapter=adapter,
                                                          seed=seed + start)]
    base_counts = [len(_reply_ids(policy, r)) for r in base_replies]
    round_counts = [len(_reply_ids(policy, r)) for r in round_replies]
    per_token, per_answer = log_ratio(policy, prompts, round_replies, adapter, sampling, batch_size)
    base = text_stats(base_replies, base_counts, sampling.max_new_tokens)
    rnd = text_stats(round_replies, round_counts, sampling.max_new_tokens)
    return RoundChecks(adapter, len(prompts), base, rnd, per_token, per_answer, flags(base, rnd, per_token))


def _reply_ids(policy: Policy, reply: str) -> list[int]:
    return policy.tokenizer(reply, add_special_tokens=False)["input_ids"]


def log_ratio(policy: Policy, prompts: list[list[dict]], replies: list[str], adapter: str,
              sampling: SamplingConfig, batch_size: int = 32) -> tuple[float, float]:
    """Mean per-token and per-answer log pi_adapter(reply) - log pi_base(reply), teacher-forced on the replies."""
    texts = generation.render_prompts(policy, prompts, sampling)
    sequences = []
    for text, reply in zip(texts, replies):
        prompt_ids = policy.tokenizer(text, add_special_tokens=False)["input_ids"]
        reply_ids = _reply_ids(policy, reply)[: sampling.max_new_tokens]
        if len(reply_ids) < sampling.max_new_tokens - 1 and policy.tokenizer.eos_token_id is not None:
            reply_ids.append(policy.tokenizer.eos_token_id)  # stopping is part of the answer: a round that stops
            #                                                    where the base rambles on differs right there
        sequences.append((prompt_ids, reply_ids))
    total = tokens = 0.0
    answers = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        diff = _reply_logprobs(policy, chunk, adapter) - _reply_logprobs(policy, chunk, None)
        answers += diff.sum(dim=1).tolist()
        total += float(diff.sum())
        tokens += sum(len(r) for _, r in chunk)
    return (total / tokens if tokens else 0.0), (sum(answers) / len(answers) if answers else 0.0)


def _reply_logprobs(policy: Policy, chunk: list[tuple[list[int], list[int]]], adapter: str | None) -> torch.Tensor:
    """(batch, longest reply) log-probs of each reply token given its prompt; 0 past a reply's end."""
    width = max(len(p) + len(r) for p, r in chunk)
    longest = max((len(r) for _, r in chunk), default=0)
    pad = policy.tokenizer.pad_token_id or 0
    ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for i, (p, r) in enumerate(chunk):  # right padding: positions line up with the unpadded sequence
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        mask[i, : len(p) + len(r)] = 1
    with policy.using(adapter) as model, torch.inference_mode():
        logits = model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device)).logits.float().cpu()
    logp = torch.log_softmax(logits, dim=-1)
    out = torch.zeros((len(chunk), longest))
    for i, (p, r) in enumerate(chunk):
        if r:
            positions = torch.arange(len(p) - 1, len(p) + len(r) - 1)  # the logits that predict each reply token
            out[i, : len(r)] = logp[i, positions, torch.tensor(r)]
    return out
