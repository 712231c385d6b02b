"""What a label buys: win rate of a round against the base after N simulated labels, by how pairs were chosen
and by what the labels train.

    OMP_NUM_THREADS=1 .venv/bin/python bench/label_efficiency.py curves --modes coverage active --seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/label_efficiency.py methods --budget 150 --seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/label_efficiency.py table      # what label_efficiency.jsonl holds

Each point is appended to `--out` (JSON lines) as soon as it is measured and skipped when run again, so a run
that is stopped keeps its figures and can be continued.

`curves`: for each seed and selection mode, one fresh app labels with the simulated annotator (prefapp.demo.task)
up to each budget (50, 100, 150, 200, 300 by default); at each budget a round is trained from the base on every
label so far (LOOP_TRAIN_CONFIG) and meets the base head to head on held-out prompts (prefapp.demo.loop). In
`active` mode the newest round ranks the next pairs (prefapp.labeling.active), with `--share` still chosen by
coverage; before the first round it is coverage. The generator stays the base model in both modes, so the
only difference is which pairs get labelled.

`methods`: the same label budget spent three ways, coverage selection: `dpo` (pair votes -> DPO), `kto` (the
very same pair votes, in the same app -> KTO: pairs unpaired, both-bad responses undesirable) and `both` (another
app: half the budget pair votes, half thumbs up/down on single base replies -> KTO on all of them).

Every run judges on the same held-out prompts (the first `--eval-prompts` of the demo task's held-out split, each
compared once) through the evaluation path of the app (prefapp.evaluation.judge.simulate_judging: blind pairs,
the simulated annotator as judge, eval votes in the store). Post-round checks are off: they do not change it.
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

from prefapp.config import LOOP_TRAIN_CONFIG, AppConfig, EvalConfig, LabelingConfig  # noqa: E402
from prefapp.demo.loop import simulate_labelling  # noqa: E402
from prefapp.demo.task import judge, sample_tasks, simulated_annotator  # noqa: E402
from prefapp.evaluation.judge import simulate_judging  # noqa: E402
from prefapp.models import resolve_model  # noqa: E402
from prefapp.store import Store  # noqa: E402

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # two-sided 95% t quantiles by degrees of freedom


def open_service(workdir: Path, seed: int, heldout: list[str], pool: int):
    """A fresh demo app whose eval set is exactly `heldout` (so every run judges on the same prompts), post-round
    checks off (they do not change the win rate) and `pool` candidate pairs per pair kept in active mode."""
    from prefapp.service import PrefService

    config = AppConfig(model="demo", data_dir=workdir, labeling=LabelingConfig(active_pool=pool),
                       evaluation=EvalConfig(check_prompts=0))
    store = Store(config.db_path)  # seeded before the app opens, so it does not import the demo's own eval set
    try:
        added = store.add_eval_prompts(heldout, source="bench").added
    finally:
        store.close()
    if added != len(heldout):
        raise RuntimeError(f"only {added} of {len(heldout)} held-out prompts stored: they must be distinct")
    return PrefService.open(config, choice=resolve_model("demo"), seed=seed)


def label(service, n: int, by_selection: dict) -> dict:
    """simulate_labelling, also counting each choice by why its pair was served (coverage / active): a pair the
    round is unsure of may well be one the annotator calls a tie, which DPO cannot use."""
    counts = {"A": 0, "B": 0, "tie": 0, "both_bad": 0}
    for _ in range(n):
        pair = service.next_pair("simulated")
        choice = simulated_annotator(pair.prompt, pair.response_a, pair.response_b)
        service.vote(pair.pair_id, choice, "simulated")
        counts[choice] += 1
        origin = service.store.pair_origin(pair.pair_id)
        why = origin.selection if origin is not None else "coverage"
        by_selection.setdefault(why, {"A": 0, "B": 0, "tie": 0, "both_bad": 0})[choice] += 1
    return counts


def train_and_judge(service, heldout: list[str], seed: int, method: str = "dpo") -> dict:
    """Train a round from the base on every label so far, then judge it against the base once per held-out prompt
    through the evaluation path (blind pairs, simulated judge, votes in the store)."""
    started = time.perf_counter()
    config = replace(LOOP_TRAIN_CONFIG, seed=seed, method=method)
    round_id = service.start_training(config)
    result = service.wait_training()
    if result is None or result.cancelled or service.aligned != f"round-{round_id}":
        raise RuntimeError(f"round {round_id} did not finish: {service.training_status()}")
    report = simulate_judging(service.evaluation, "base", service.aligned, len(heldout), service.sampling,
                              simulated_annotator, bootstrap=0)
    win = report.win
    if win.n != len(heldout):
        raise RuntimeError(f"judged {win.n} comparisons: expected one per held-out prompt ({len(heldout)})")
    # the eval queue and a serve that stopped waiting for it can each take the same prompt: count what was judged
    judged = {v.eval_prompt_id for v in service.store.eval_votes("simulated") if v.policy_b == service.aligned
              or v.policy_a == service.aligned}
    low, high = win.interval
    return {"round": round_id, "prompts_judged": len(judged), "train_rows": service.store.get_round(round_id).n_pairs,
            "wins": win.wins, "losses": win.losses, "ties": win.ties, "rate": win.rate,
            "ci": [round(low, 4), round(high, 4)], "lc_rate": report.lc_win_rate, "train_s": round(result.seconds, 1),
            "s": round(time.perf_counter() - started, 1)}


def curve(mode: str, seed: int, budgets: list[int], args, heldout: list[str], done: set, emit) -> None:
    """One app labelling up to each budget in `mode`; a round per budget (points already in the results skipped
    only when the whole curve is there, since later points need the same app's earlier labels)."""
    if all(("curves", mode, seed, b) in done for b in budgets):
        return
    with tempfile.TemporaryDirectory(prefix="prefapp-eff-") as workdir:
        service = open_service(Path(workdir), seed, heldout, args.pool)
        try:
            service.set_selection(mode, args.share)
            labelled, by_selection = 0, {}
            for budget in budgets:
                labels = label(service, budget - labelled, by_selection)
                labelled = budget
                mix = service.store.selection_mix()
                emit({"what": "curves", "mode": mode, "seed": seed, "labels": budget, "choices": labels,
                      "mix": mix.by_selection, "choices_by_selection": by_selection,
                      "mean_abs_margin": mix.mean_abs_margin, "pool": args.pool, "share": args.share,
                      **train_and_judge(service, heldout, seed)})
        finally:
            service.close()


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


def method_run(seed: int, budget: int, args, heldout: list[str], done: set, emit) -> None:
    """`dpo` and `kto` are two rounds trained from the base on the very same `budget` pair votes (one app); `both`
    is another app whose budget is half pair votes, half thumbs on single base replies, trained with KTO."""
    if "dpo" in args.methods or "kto" in args.methods:
        wanted = [m for m in ("dpo", "kto") if m in args.methods and ("methods", m, seed, budget) not in done]
        if wanted:
            with tempfile.TemporaryDirectory(prefix="prefapp-eff-") as workdir:
                service = open_service(Path(workdir), seed, heldout, args.pool)
                try:
                    labels = simulate_labelling(service, budget)
                    for method in wanted:
                        emit({"what": "methods", "method": method, "seed": seed, "labels": budget, "choices": labels,
                              **train_and_judge(service, heldout, seed, method)})
                finally:
                    service.close()
    if "both" in args.methods and ("methods", "both", seed, budget) not in done:
        with tempfile.TemporaryDirectory(prefix="prefapp-eff-") as workdir:
            service = open_service(Path(workdir), seed, heldout, args.pool)
            try:
                labels = simulate_labelling(service, budget // 2)
                labels.update(thumbs(service, budget - budget // 2))
                emit({"what": "methods", "method": "both", "seed": seed, "labels": budget, "choices": labels,
                      **train_and_judge(service, heldout, seed, "kto")})
            finally:
                service.close()


def mean_ci(rates: list[float]) -> str:
    if len(rates) < 2:
        return f"{rates[0]:.1%}"
    mean, sd = statistics.mean(rates), statistics.stdev(rates)
    half = T95.get(len(rates) - 1, 1.96) * sd / len(rates) ** 0.5
    return f"{mean:.1%} (95% CI {mean - half:.1%}-{mean + half:.1%}; runs {', '.join(f'{r:.0%}' for r in rates)})"


def key(row: dict) -> tuple:
    return (row["what"], row.get("mode") or row.get("method"), row["seed"], row["labels"])


def table(rows: list[dict], n_eval: int) -> None:
    """Mean win rate over seeds per point, with the t-interval and each run's rate (the first row of a point counts:
    a coverage point measured again from a fresh app, e.g. `--budgets 300` alone, is the same procedure)."""
    rows = list({key(r): r for r in reversed(rows)}.values())
    curves = [r for r in rows if r["what"] == "curves"]
    if curves:
        print(f"\nwin rate of the round vs base ({n_eval} held-out prompts), coverage vs active selection:")
        for mode in sorted({r["mode"] for r in curves}):
            for budget in sorted({r["labels"] for r in curves if r["mode"] == mode}):
                rates = [r["rate"] for r in curves if r["mode"] == mode and r["labels"] == budget]
                print(f"  {mode:8s} {budget:4d} labels: {mean_ci(rates)}")
    active = [r for r in curves if r["mode"] == "active" and "choices_by_selection" in r]
    if active:  # how useful the labels of actively chosen pairs were: a tie or both-bad vote gives DPO nothing
        print("\nvotes on the pairs each selection served, active runs (newest point of each seed):")
        newest = {r["seed"]: r for r in sorted(active, key=lambda r: r["labels"])}.values()
        for why in ("coverage", "active"):
            votes = [r["choices_by_selection"].get(why, {}) for r in newest]
            n = sum(sum(v.values()) for v in votes)
            decisive = sum(v.get("A", 0) + v.get("B", 0) for v in votes)
            margins = [r["mean_abs_margin"].get(why) for r in newest if r["mean_abs_margin"].get(why) is not None]
            print(f"  {why:8s}: {n} votes, {decisive / n if n else 0:.0%} decisive (A or B)"
                  + (f", mean |margin| {statistics.mean(margins):.3f}" if margins else ""))
    methods = [r for r in rows if r["what"] == "methods"]
    if methods:
        print(f"\nwin rate vs base on the same label budget ({n_eval} held-out prompts), coverage selection:")
        for method in ("dpo", "kto", "both"):
            for budget in sorted({r["labels"] for r in methods if r["method"] == method}):
                rates = [r["rate"] for r in methods if r["method"] == method and r["labels"] == budget]
                print(f"  {method:5s} {budget:4d} labels: {mean_ci(rates)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("curves", "methods", "table"))
    parser.add_argument("--modes", nargs="+", default=["coverage", "active"])
    parser.add_argument("--methods", nargs="+", default=["dpo", "kto", "both"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[50, 100, 150, 200, 300])
    parser.add_argument("--budget", type=int, default=150, help="labels per run for `methods`")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--share", type=float, default=0.3, help="coverage share in active mode")
    parser.add_argument("--pool", type=int, default=LabelingConfig.active_pool,
                        help="candidate pairs generated per pair kept in active mode (the app's default)")
    parser.add_argument("--eval-prompts", type=int, default=200)
    parser.add_argument("--out", default="label_efficiency.jsonl",
                        help="results, one JSON line per point, appended as each is measured; points already "
                             "there are not measured again (`table` prints them)")
    args = parser.parse_args()
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    rows = [r for r in rows if r.get("eval_prompts") == args.eval_prompts]
    if args.what == "table":
        table(rows, args.eval_prompts)
        return
    heldout = [t.question for t in sample_tasks(args.eval_prompts, seed=0, split="heldout")]
    done = {key(r) for r in rows}
    started = time.perf_counter()

    def emit(row: dict) -> None:
        row = {**row, "eval_prompts": args.eval_prompts, "load1": round(os.getloadavg()[0], 1),
               "at": time.strftime("%H:%M:%S")}
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)

    for seed in args.seeds:  # seed-major: a partial run still has whole seeds of every mode
        if args.what == "curves":
            for mode in args.modes:
                curve(mode, seed, args.budgets, args, heldout, done, emit)
        else:
            method_run(seed, args.budget, args, heldout, done, emit)
    table(rows, args.eval_prompts)
    print(f"total {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
