"""What a label buys: win rate of a round against the base after N simulated labels, by how pairs were chosen
and by what the labels train.

    OMP_NUM_THREADS=1 .venv/bin/python bench/label_efficiency.py curves --modes coverage active --seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/label_efficiency.py methods --budget 150 --seeds 0 1 2

`curves`: for each seed and selection mode, one fresh app labels with the simulated annotator (prefapp.demo.task)
up to each budget (50, 100, 150, 200, 300 by default); at each budget a round is trained from the base on every
label so far (LOOP_TRAIN_CONFIG) and meets the base head to head on held-out prompts (prefapp.demo.loop). In
`active` mode the newest round ranks the next pairs (prefapp.labeling.active), with `--share` still chosen by
coverage; before the first round it is coverage. The generator stays the base model in both modes, so the
only difference is which pairs get labelled.

`methods`: the same label budget spent three ways, coverage selection: `dpo` (pair votes -> DPO), `kto` (the
same pair votes -> KTO: pairs unpaired, both-bad responses undesirable) and `both` (half the budget pair votes,
half thumbs up/down on single base replies -> KTO on all of them).

Win rate = wins / (wins + losses) of the round's answer against the base's on the same held-out prompt; each
run has a 95% Wilson interval; across seeds the mean and a 95% t-interval (n-1 degrees of freedom) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from prefapp.config import LOOP_TRAIN_CONFIG, AppConfig  # noqa: E402
from prefapp.demo.loop import head_to_head, simulate_labelling  # noqa: E402
from prefapp.demo.task import judge, sample_tasks  # noqa: E402
from prefapp.models import resolve_model  # noqa: E402

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # two-sided 95% t quantiles by degrees of freedom


def open_service(workdir: Path, seed: int):
    from prefapp.service import PrefService

    return PrefService.open(AppConfig(model="demo", data_dir=workdir), choice=resolve_model("demo"), seed=seed)


def train_and_judge(service, heldout: list[str], seed: int, method: str = "dpo") -> dict:
    started = time.perf_counter()
    config = replace(LOOP_TRAIN_CONFIG, seed=seed, method=method)
    service.start_training(config)
    result = service.wait_training()
    if result is None or result.cancelled:
        raise RuntimeError(f"training did not finish: {service.training_status()}")
    win = head_to_head(service.policy, heldout, service.sampling, service.aligned, seed=seed)
    low, high = win.interval
    return {"wins": win.wins, "losses": win.losses, "ties": win.ties, "rate": win.rate, "ci": [low, high],
            "train_s": round(result.seconds, 1), "s": round(time.perf_counter() - started, 1)}


def curve(mode: str, seed: int, budgets: list[int], share: float, heldout: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="prefapp-eff-") as workdir:
        service = open_service(Path(workdir), seed)
        try:
            service.set_selection(mode, share)
            labelled = 0
            for budget in budgets:
                labels = simulate_labelling(service, budget - labelled)
                labelled = budget
                row = {"mode": mode, "seed": seed, "labels": budget, "choices": labels,
                       "mix": service.store.selection_mix().by_selection,
                       **train_and_judge(service, heldout, seed)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            service.close()
    return rows


def thumbs(service, n: int) -> dict:
    """n thumbs up/down on single base replies to labelling prompts, judged like the simulated annotator."""
    counts = {"up": 0, "down": 0}
    for prompt in service.store.least_served_prompts(n):
        reply, _ = service.chat([], [], prompt.text)
        j = judge(prompt.text, reply)
        good = bool(j.acceptable and not j.rude and not j.rambling)
        service.rate_reply(prompt.messages, reply, good, "simulated", "base")
        counts["up" if good else "down"] += 1
    return counts


def method_run(method: str, seed: int, budget: int, heldout: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="prefapp-eff-") as workdir:
        service = open_service(Path(workdir), seed)
        try:
            pairs = budget // 2 if method == "both" else budget
            labels = simulate_labelling(service, pairs)
            if method == "both":
                labels.update(thumbs(service, budget - pairs))
            row = {"method": method, "seed": seed, "labels": budget, "choices": labels,
                   **train_and_judge(service, heldout, seed, "dpo" if method == "dpo" else "kto")}
        finally:
            service.close()
    print(json.dumps(row), flush=True)
    return row


def mean_ci(rates: list[float]) -> str:
    if len(rates) < 2:
        return f"{rates[0]:.1%}"
    mean, sd = statistics.mean(rates), statistics.stdev(rates)
    half = T95.get(len(rates) - 1, 1.96) * sd / len(rates) ** 0.5
    return f"{mean:.1%} (95% CI {mean - half:.1%}-{mean + half:.1%}; runs {', '.join(f'{r:.0%}' for r in rates)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("curves", "methods"))
    parser.add_argument("--modes", nargs="+", default=["coverage", "active"])
    parser.add_argument("--methods", nargs="+", default=["dpo", "kto", "both"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[50, 100, 150, 200, 300])
    parser.add_argument("--budget", type=int, default=150, help="labels per run for `methods`")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--share", type=float, default=0.3, help="coverage share in active mode")
    parser.add_argument("--eval-prompts", type=int, default=200)
    parser.add_argument("--out", help="also write every row as JSON lines here")
    args = parser.parse_args()
    heldout = [t.question for t in sample_tasks(args.eval_prompts, seed=0, split="heldout")]
    started = time.perf_counter()
    rows = []
    if args.what == "curves":
        for seed in args.seeds:
            for mode in args.modes:
                rows += curve(mode, seed, args.budgets, args.share, heldout)
        print(f"\nwin rate of the round vs base ({args.eval_prompts} held-out prompts), mean over seeds {args.seeds}:")
        for mode in args.modes:
            for budget in args.budgets:
                rates = [r["rate"] for r in rows if r["mode"] == mode and r["labels"] == budget]
                print(f"  {mode:8s} {budget:4d} labels: {mean_ci(rates)}")
    else:
        for seed in args.seeds:
            for method in args.methods:
                rows.append(method_run(method, seed, args.budget, heldout))
        print(f"\nwin rate vs base after {args.budget} labels, mean over seeds {args.seeds}:")
        for method in args.methods:
            print(f"  {method:5s}: {mean_ci([r['rate'] for r in rows if r['method'] == method])}")
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
