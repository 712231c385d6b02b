"""Identical pairs on the demo model at default sampling: how many a plain draw gives, and how many are served.

    .venv/bin/python bench/identical_pairs.py --pairs 100

1. Without the rule: `--pairs` prompts, two samples each from one generate call (what the queue did before);
   counts pairs whose responses are equal after whitespace normalization.
2. With the rule: a fresh app serves `--pairs` pairs through the labelling path (queue included); counts identical
   pairs served (the target is at most 1 in 100) and reads from DuckDB how often a pair was drawn again, how often
   the second sample's temperature was raised, and how many prompts were given up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from prefapp.config import AppConfig  # noqa: E402
from prefapp.labeling import generation  # noqa: E402
from prefapp.labeling.distinct import same  # noqa: E402
from prefapp.models import resolve_model  # noqa: E402
from prefapp.service import PrefService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefapp-identical-") as workdir:
        service = PrefService.open(AppConfig(model="demo", data_dir=Path(workdir)), choice=resolve_model("demo"),
                                   seed=args.seed)
        try:
            prompts = [p.messages for p in service.store.least_served_prompts(args.pairs)]
            plain = generation.sample(service.policy, prompts, service.sampling, num_samples=2, seed=args.seed)
            before = sum(same(a, b) for a, b in plain)
            started = time.perf_counter()
            served = [service.next_pair("bench") for _ in range(args.pairs)]
            seconds = time.perf_counter() - started
            after = sum(same(p.response_a, p.response_b) for p in served)
            stats = service.store.identical_stats()
        finally:
            service.close()
    print(f"demo model, sampling {service.sampling}")
    print(f"without the rule: {before} identical of {len(plain)} pairs ({before / len(plain):.0%})")
    print(f"with the rule: {after} identical of {len(served)} served; {stats.resampled} served pairs were drawn "
          f"again ({stats.identical_draws} identical draws replaced), {stats.hotter} needed a hotter second sample, "
          f"{stats.dropped} prompt(s) given up; {seconds:.1f}s to serve {len(served)}")


if __name__ == "__main__":
    main()
