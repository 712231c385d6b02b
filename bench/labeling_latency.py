"""Time from a vote to the next pair on screen, in a real browser (Playwright + Debian's Chromium).

    OMP_NUM_THREADS=1 .venv/bin/python bench/labeling_latency.py --models demo 135m --votes 100

For each model: the app is served on a local port, one annotator votes with the keyboard shortcuts (1/2/3/4)
after a short think time, and each vote is timed from the key press until the page shows a different pair id.
- queue: the background queue (prefapp.labeling.pair_queue) is filled first and keeps refilling while votes go on;
- sequential baseline: no queue (queue_target=0), the pair is generated after the vote, as a naive app does.
Prints p50 / p95 / max per mode, where the served pairs came from, and the machine's load average.
The 135M-shape model has random weights (bench_models.py). Figures only, no timed asserts.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench_models import bench_choice  # noqa: E402
from prefapp.config import DEMO_PROMPTS_PATH, AppConfig, LabelingConfig, SamplingConfig  # noqa: E402
from prefapp.models import Policy  # noqa: E402
from prefapp.service import PrefService  # noqa: E402
from prefapp.store import Store  # noqa: E402
from prefapp.ui.app import build_ui  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
KEYS = "1212123412"  # mostly A/B, some tie / both bad
NEW_PAIR_JS = "prev => { const v = document.querySelector('#pair-id textarea').value; return v && v !== prev; }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def time_votes(url: str, votes: int, think_s: float) -> list[float]:
    """Seconds from each vote's key press to the next pair id on the page."""
    timings = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(600_000)
        page.goto(url)
        name = page.get_by_label("Your name (annotator)")
        name.fill("bench")
        name.press("Enter")
        box = page.locator("#pair-id textarea")
        page.wait_for_function(NEW_PAIR_JS, arg="", polling="raf")
        page.locator("#label-progress").click()  # focus out of the name box: keys go to the shortcuts
        for i in range(votes):
            time.sleep(think_s)
            prev = box.input_value()
            start = time.perf_counter()
            page.keyboard.press(KEYS[i % len(KEYS)])
            page.wait_for_function(NEW_PAIR_JS, arg=prev, polling="raf")
            timings.append(time.perf_counter() - start)
        browser.close()
    return timings


def run_mode(policy: Policy, workdir: Path, labeling: LabelingConfig, sampling: SamplingConfig, votes: int,
             think_s: float) -> tuple[list[float], Counter, float]:
    config = AppConfig(model=policy.choice.source, data_dir=workdir, sampling=sampling, labeling=labeling)
    service = PrefService(config, Store(config.db_path), policy, seed=0)
    service.import_prompts(DEMO_PROMPTS_PATH, source="demo")
    prefill = 0.0
    if labeling.queue_target:
        service.labeling.queue.start()
        start = time.perf_counter()
        service.labeling.queue.wait_ready(labeling.queue_target - labeling.queue_batch + 1, timeout=3600)
        prefill = time.perf_counter() - start
    demo = build_ui(service)
    demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        timings = time_votes(demo.local_url, votes, think_s)
    finally:
        demo.close()
        sources = Counter(service.labeling.served)
        service.close()
    return timings, sources, prefill


def report(label: str, timings: list[float]) -> str:
    ms = [t * 1000 for t in timings]
    return (f"  {label:<34} n={len(ms):3d}  p50 {statistics.median(ms):8.1f} ms  p95 {percentile(ms, 0.95):8.1f} ms"
            f"  max {max(ms):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo", "135m"])
    parser.add_argument("--votes", type=int, default=100, help="timed votes with the queue")
    parser.add_argument("--baseline-votes", type=int, default=20, help="timed votes without a queue")
    parser.add_argument("--think-ms", type=float, default=200, help="pause before each vote (reading time)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--queue-batch", type=int, default=8)
    parser.add_argument("--queue-target", type=int, default=0,
                        help="pairs kept ready; 0: votes + batch, so a slow model's queue keeps up")
    args = parser.parse_args()
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    target = args.queue_target or args.votes + args.queue_batch
    for model in args.models:
        policy = Policy(bench_choice(model), device="cpu")
        with tempfile.TemporaryDirectory(prefix="prefapp-latency-") as tmp:
            queued, sources, prefill = run_mode(policy, Path(tmp) / "queue",
                                                LabelingConfig(queue_target=target, queue_batch=args.queue_batch),
                                                sampling, args.votes, args.think_ms / 1000)
            baseline, _, _ = run_mode(policy, Path(tmp) / "sequential", LabelingConfig(queue_target=0), sampling,
                                      args.baseline_votes, args.think_ms / 1000)
        print(f"{policy.choice.label}: max_new_tokens={args.max_new_tokens}, think {args.think_ms:.0f} ms, queue "
              f"target {target} / batch {args.queue_batch} (prefilled in {prefill:.1f} s; "
              f"served: {dict(sources)}), load average {os.getloadavg()[0]:.1f}")
        print(report("vote -> next pair, warm queue", queued))
        print(report("vote -> next pair, sequential baseline", baseline))
        print(f"  p50 ratio baseline/queue: {statistics.median(baseline) / statistics.median(queued):.0f}x")


if __name__ == "__main__":
    main()
