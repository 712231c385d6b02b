"""Pairs per second: the queue's batched generation vs two separate `generate` calls per prompt.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generation_throughput.py --models 135m demo --batch 8 16

Same model, same prompts, same sampling and max_new_tokens on both sides, in one run:
- batched: what prefapp.labeling.pair_queue does, `generation.sample(policy, B prompts, num_samples=2)`: ONE generate
  call for 2B sequences;
- separate: what a naive app does, two `generate` calls of one sequence per prompt.
The 135M-shape model (random weights, see bench_models.py) never stops early, so both sides generate exactly
max_new_tokens per sequence; the demo model stops at end-of-turn, so its generated tokens are printed too.
Prints figures only (no timed asserts); note the machine's load average, which is printed with them. On a
shared, oversubscribed machine use OMP_NUM_THREADS=1: spinning OpenMP threads slow everything down 3x there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_models import bench_choice  # noqa: E402
from prefapp.labeling import generation
from prefapp.config import DEMO_PROMPTS_PATH, SamplingConfig  # noqa: E402
from prefapp.models import Policy  # noqa: E402
from prefapp.preferences.prompts import load_prompt_file  # noqa: E402


def n_tokens(policy: Policy, texts: list[str]) -> int:
    """Generated tokens, re-tokenized from the text (the 135M shape's random ids mostly decode to nothing)."""
    return sum(len(policy.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def batched(policy: Policy, prompts: list, sampling: SamplingConfig) -> tuple[float, int]:
    start = time.perf_counter()
    pairs = generation.sample(policy, prompts, sampling, num_samples=2)
    return time.perf_counter() - start, n_tokens(policy, [r for pair in pairs for r in pair])


def separate(policy: Policy, prompts: list, sampling: SamplingConfig) -> tuple[float, int]:
    start, replies = time.perf_counter(), []
    for prompt in prompts:
        for _ in range(2):
            replies += generation.sample(policy, [prompt], sampling, num_samples=1)[0]
    return time.perf_counter() - start, n_tokens(policy, replies)


def run(model: str, batch: int, max_new_tokens: int, prompts: list) -> None:
    policy = Policy(bench_choice(model), device="cpu")
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)
    generation.sample(policy, prompts[:2], sampling, num_samples=1)  # warm-up: first call pays one-off costs
    torch.manual_seed(0)
    b_s, b_tok = batched(policy, prompts[:batch], sampling)
    torch.manual_seed(0)
    s_s, s_tok = separate(policy, prompts[:batch], sampling)
    if model == "135m":  # random weights never end a reply early: every sequence is max_new_tokens long
        b_tok = s_tok = 2 * batch * max_new_tokens
    print(f"{policy.choice.label}: {batch} pairs, max_new_tokens={max_new_tokens}, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"  batched  (1 generate call, {2 * batch} seqs): {b_s:7.2f} s  {batch / b_s:6.2f} pairs/s  "
          f"{b_tok / b_s:7.1f} tokens/s  ({b_tok} tokens)")
    print(f"  separate ({2 * batch} generate calls, 1 seq):  {s_s:7.2f} s  {batch / s_s:6.2f} pairs/s  "
          f"{s_tok / s_s:7.1f} tokens/s  ({s_tok} tokens)")
    print(f"  speed-up: {s_s / b_s:.2f}x pairs/s, {(b_tok / b_s) / (s_tok / s_s):.2f}x tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["135m", "demo"], help="135m and/or demo")
    parser.add_argument("--batch", type=int, nargs="+", default=[8],
                        help="prompts per batched call (the queue's queue_batch); several values: one run each")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    prompts = load_prompt_file(DEMO_PROMPTS_PATH)
    for model in args.models:
        for batch in args.batch:
            run(model, batch, args.max_new_tokens, prompts)


if __name__ == "__main__":
    main()
