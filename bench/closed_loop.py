"""Closed loop on the demo task: N simulated labels -> DPO -> win rate vs the base on held-out prompts.

    .venv/bin/python bench/closed_loop.py --pairs 300 --rounds 2

Prints, per round, the simulated annotator's label counts, the training time, the round's verdict against the base
judged blind through the same code path as the Evaluate tab and `prefapp eval` (wins among decided comparisons
with a 95% Wilson interval, the length-controlled win rate, the verdict in words), the automatic post-round checks,
what the promotion gate said, and the total wall time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from prefapp.config import LOOP_TRAIN_CONFIG  # noqa: E402
from prefapp.demo.loop import run_demo_loop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=300, help="pairs labelled per round")
    parser.add_argument("--eval-prompts", type=int, default=300, help="held-out prompts per head-to-head")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefapp-bench-") as workdir:
        report = run_demo_loop(Path(workdir), n_pairs=args.pairs, n_eval=args.eval_prompts, rounds=args.rounds,
                               train_config=LOOP_TRAIN_CONFIG, seed=args.seed)
    print(f"closed loop: {args.pairs} pairs/round, {args.eval_prompts} held-out prompts, train config {LOOP_TRAIN_CONFIG}")
    print(report.summary())


if __name__ == "__main__":
    main()
