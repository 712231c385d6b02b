"""How prefapp scales with the number of votes: builds stores of 10k, 100k and 1M votes with the real schema and
times each whole-store operation, every one in its own subprocess so its peak RSS is its own.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/scale.py --sizes 10000 100000 1000000

The stores are built with bulk SQL on a `Store` (so every migration applies): prompts, pairs shown with random
sides, votes by 12 annotators with 2-3 annotators on ~19% of pairs, repeat probes for ~4% of pairs, notes
(reasons, human-written responses) on ~1% of votes. They are kept under --workdir and reused.

Operations (issue 14's table): `quality` (the Quality tab's report), `data_summary` (the Data tab: counts and 20
preview rows), `resolve` (votes -> the DPO `datasets.Dataset`), `export` (save_to_disk + Parquet), `preflight`
(resolve + the preflight report with the demo model's tokenizer), `click` (one vote click: the next overlap pair,
recording the pair shown, the vote, the counters and the progress line; median of 20 clicks by three of the store's
own annotators; then the median of 5 undos and of 5 repeat-probe picks; on a copy of the store), `vote_write` (500
`record_vote` calls, each a pair's first vote, wall and CPU per vote; on a copy), `refill_pick` (the queue's choice of the
least-served prompts) and, up to 100k votes, `votes_legacy` (every vote as a Python object,
what everything did before).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPS = ("quality", "data_summary", "resolve", "export", "preflight", "click", "vote_write", "refill_pick",
       "votes_legacy")
LEGACY_MAX = 100_000  # store.votes() at 1M takes ~30 s and 4 GiB: measured once in issue 14, not every run
ANNOTATORS = 12
BUILD_VERSION = "3"


def build(path: Path, n_votes: int) -> int:
    """A store of about `n_votes` votes, bulk-built in SQL; returns the exact number of votes."""
    from prefapp.store import Store

    regular = round(n_votes / 1.233)  # pairs with a first vote; the rest are overlap and probe votes
    n_prompts = max(regular // 4, 1)
    with Store(path) as store:
        cur = store._cur()
        cur.execute("BEGIN TRANSACTION")
        cur.execute(
            "INSERT INTO prompts (id, messages, hash, source, created_at) "
            "SELECT i, json_array(json_object('role', 'user', 'content', 'Question ' || i || ': what is ' || "
            "(i % 97) || ' + ' || (i % 89) || '? ' || md5(i::VARCHAR))), md5('prompt' || i), 'bench', "
            "TIMESTAMPTZ '2026-01-01' FROM range(1, ? + 1) t(i)", [n_prompts])
        cur.execute("SELECT setval('prompts_id_seq', (SELECT max(id) FROM prompts))")
        cur.execute(
            "INSERT INTO pairs (id, prompt_id, prompt, response_a, response_b, swapped, model_id, adapter_id, "
            "sampling, served_to, created_at) "
            "SELECT md5('pair' || i), q.id, q.messages, "
            "'The answer is ' || (i % 97) || '. ' || md5('a' || i) || ' ' || md5('c' || i), "
            "'I think it is ' || (i % 89) || ', obviously. ' || md5('b' || i) || ' ' || md5('d' || i), "
            "hash(i, 's') % 2 = 0, 'prefapp-demo', CASE WHEN i % 3 = 0 THEN 'round-1' END, "
            "'{\"temperature\": 1.0, \"top_p\": 0.95, \"max_new_tokens\": 64}', 'annotator-' || (i % ?), "
            "TIMESTAMPTZ '2026-01-01' + to_seconds(i) "
            "FROM range(?) t(i) JOIN prompts q ON q.id = 1 + i % ?",  # a constant: an equi-join, not a nested loop
            [ANNOTATORS, regular, n_prompts])
        # Overlap: a 2nd annotator on every 7th pair, a 3rd on every 20th; probes of every 25th pair.
        cur.execute(
            "CREATE TEMP TABLE planned AS "
            "SELECT i, k, md5('pair' || i) AS pair_id, 'annotator-' || ((i + 5 * k) % ?) AS annotator "
            "FROM range(?) t(i), range(3) r(k) WHERE k = 0 OR (k = 1 AND i % 7 = 0) OR (k = 2 AND i % 20 = 0)",
            [ANNOTATORS, regular])
        cur.execute(
            "INSERT INTO pairs (id, prompt_id, prompt, response_a, response_b, swapped, model_id, adapter_id, "
            "sampling, served_to, created_at, probe_of) "
            "SELECT 'probe' || p.id, p.prompt_id, p.prompt, p.response_b, p.response_a, NOT p.swapped, p.model_id, "
            "p.adapter_id, p.sampling, p.served_to, p.created_at + INTERVAL 1 DAY, p.id "
            "FROM pairs p JOIN planned x ON x.pair_id = p.id AND x.k = 0 WHERE x.i % 25 = 0")
        cur.execute(
            "INSERT INTO planned SELECT x.i, 3, 'probe' || x.pair_id, x.annotator FROM planned x "
            "WHERE x.k = 0 AND x.i % 25 = 0")
        cur.execute(
            "INSERT INTO votes (pair_id, annotator, choice, prompt_id, prompt, response_a, response_b, swapped, "
            "model_id, adapter_id, sampling, shown_at, created_at) "
            "SELECT p.id, x.annotator, CASE WHEN h < 45 THEN 'A' WHEN h < 85 THEN 'B' WHEN h < 93 THEN 'tie' "
            "ELSE 'both_bad' END, p.prompt_id, p.prompt, p.response_a, p.response_b, p.swapped, p.model_id, "
            "p.adapter_id, p.sampling, p.created_at, p.created_at + to_seconds(3 + x.i % 20 + x.k) "
            "FROM (SELECT *, hash(i, k, 'choice') % 100 AS h FROM planned) x JOIN pairs p ON p.id = x.pair_id "
            "ORDER BY x.i, x.k")
        cur.execute(
            "INSERT INTO vote_notes (vote_id, reason, written_chosen) "
            "SELECT id, 'reason ' || id, CASE WHEN id % 2 = 0 THEN 'A better answer, written: ' || md5(id::VARCHAR) END "
            "FROM votes WHERE id % 97 = 0")
        cur.execute("DROP TABLE planned")
        cur.execute("COMMIT")
        store.recount()  # the figures each vote keeps up to date, for votes written by bulk SQL
        (n,) = cur.execute("SELECT count(*) FROM votes").fetchone()
        cur.execute("CHECKPOINT")
    return n


def store_for(workdir: Path, size: int) -> tuple[Path, int]:
    path = workdir / f"scale-{size}-v{BUILD_VERSION}.duckdb"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["votes"]
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    n = build(path, size)
    meta.write_text(json.dumps({"votes": n}))
    print(f"built {path.name}: {n} votes, {path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - started:.0f} s",
          flush=True)
    return path, n


# --- one operation, in this process ----------------------------------------------------------------------------


def measure(op: str, db: Path) -> dict:
    from prefapp.store import Store

    for module in IMPORTS.get(op, ()):  # imports (torch, transformers: seconds) are not the operation's cost
        __import__(module)
    with tempfile.TemporaryDirectory() as tmp:
        if op in WRITES:  # on a copy: every run starts from the same store
            db = Path(shutil.copy(db, Path(tmp) / db.name))
        with Store(db) as store:
            started = time.perf_counter()
            detail = OPERATIONS[op](store)
            seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"op": op, "seconds": seconds, "peak_rss_mib": peak, **(detail or {})}


def _quality(store) -> dict:
    from prefapp.labeling.quality import quality_report

    report = quality_report(store)
    return {"detail": f"{report.overlapped_pairs} overlapped pairs, fleiss {report.fleiss_kappa:.3f}"}


def _data_summary(store) -> dict:
    from prefapp.service import PrefService

    summary = PrefService.data_summary(SimpleNamespace(store=store))  # the method reads only self.store
    return {"detail": f"{summary.pairs} rows, {len(summary.preview)} previewed"}


def _resolve(store) -> dict:
    from prefapp.preferences.resolve import preference_dataset

    dataset, counts = preference_dataset(store)
    return {"detail": f"{len(dataset)} rows"}


def _export(store) -> dict:
    from prefapp.preferences.resolve import export_preferences

    with tempfile.TemporaryDirectory() as tmp:
        result = export_preferences(store, Path(tmp), "bench")
    return {"detail": f"{result.counts.pairs} rows"}


def _preflight(store) -> dict:
    from transformers import AutoConfig

    from prefapp.config import DEMO_MODEL_DIR, TrainConfig
    from prefapp.models import load_tokenizer
    from prefapp.preferences.resolve import preference_dataset
    from prefapp.training.preflight import run_preflight

    dataset, counts = preference_dataset(store)
    report = run_preflight(dataset, TrainConfig(), load_tokenizer(str(DEMO_MODEL_DIR)),
                           AutoConfig.from_pretrained(DEMO_MODEL_DIR), ties_dropped=counts.ties,
                           both_bad_dropped=counts.both_bad)
    return {"detail": f"{report.lengths.audited} pairs tokenized of {report.data.pairs}"}


def _click(store, clicks: int = 20, overlap: int = 2, undos: int = 5) -> dict:
    """What one vote click costs the store: the next pair (overlap first, else the queue's pair recorded as shown),
    the vote, the counters and the progress line; then what an undo costs. The annotators are the store's own, so
    every lookup by annotator meets a hundred thousand of their votes at 1M."""
    prompt = store.get_prompt(1)
    parts: dict[str, list[float]] = {"next_pair": [], "vote": [], "counts": [], "progress": [], "total": []}
    for i in range(clicks):
        annotator = f"annotator-{i % 3}"
        t0 = time.perf_counter()
        pair = store.pair_for_overlap(annotator, overlap) or store.add_pair(
            prompt, "left", "right", swapped=False, model_id="prefapp-demo", adapter_id=None, sampling={},
            served_to=annotator)
        t1 = time.perf_counter()
        store.record_vote(pair.id, "A", annotator)
        t2 = time.perf_counter()
        store.vote_counts(annotator)
        t3 = time.perf_counter()
        store.labelling_progress(overlap)
        t4 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            parts[key].append(value * 1000)
    parts["undo"], parts["probe_pick"] = [], []
    for i in range(undos):
        t0 = time.perf_counter()
        store.undo_last_vote(f"annotator-{i % 3}")
        t1 = time.perf_counter()
        store.probe_candidate(f"annotator-{i % 3}", random.Random(i))  # with --probe-rate: a repeat probe's pick
        parts["undo"].append((t1 - t0) * 1000)
        parts["probe_pick"].append((time.perf_counter() - t1) * 1000)
    medians = {k: statistics.median(v) for k, v in parts.items()}
    return {"seconds_per_click": medians["total"] / 1000,
            "detail": "median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items())}


def _vote_write(store, votes: int = 500) -> dict:
    """What one vote's write costs (`record_vote`: BEGIN, the duplicate check, the vote, its tallies, COMMIT), each
    the first vote on a pair shown for it, one pair per prompt (as the queue spreads them): median wall and CPU time
    per vote (CPU holds up on a loaded machine)."""
    pairs = [store.add_pair(store.get_prompt(1 + i), "left", "right", swapped=False, model_id="prefapp-demo",
                            adapter_id=None, sampling={}, served_to=f"annotator-{i % 3}") for i in range(votes)]
    wall, cpu = [], []
    for i, pair in enumerate(pairs):
        t0, c0 = time.perf_counter(), time.process_time()
        store.record_vote(pair.id, "A", f"annotator-{i % 3}")
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"seconds_per_click": statistics.median(wall) / 1000,
            "detail": f"{votes} votes, ms per vote: wall median {statistics.median(wall):.1f} mean "
                      f"{statistics.mean(wall):.1f}, CPU median {statistics.median(cpu):.1f} mean {statistics.mean(cpu):.1f}"}


def _refill_pick(store) -> dict:
    picked = store.least_served_prompts(16, {1: 2, 2: 1}, exclude={3})  # as the queue asks: 2x a batch of 8
    return {"detail": f"{len(picked)} prompts"}


def _votes_legacy(store) -> dict:
    return {"detail": f"{len(store.votes())} Vote objects"}


WRITES = ("click", "vote_write")
IMPORTS = {"quality": ["prefapp.labeling.quality"], "data_summary": ["prefapp.service"],
           "resolve": ["prefapp.preferences.resolve"], "export": ["prefapp.preferences.resolve"],
           "preflight": ["prefapp.service", "prefapp.training.preflight", "transformers"]}
OPERATIONS = {"quality": _quality, "data_summary": _data_summary, "resolve": _resolve, "export": _export,
              "preflight": _preflight, "click": _click, "vote_write": _vote_write, "refill_pick": _refill_pick,
              "votes_legacy": _votes_legacy}


# --- the driver ------------------------------------------------------------------------------------------------


def run_op(op: str, db: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", op, "--db", str(db)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        return {"op": op, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    parser.add_argument("--workdir", default="/tmp/prefapp-scale", help="where the built stores are kept")
    parser.add_argument("--measure", choices=OPS, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.db))))
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        db, n = store_for(workdir, size)
        print(f"\n## {n} votes ({db.stat().st_size / 2**20:.0f} MiB store)\n")
        print("| operation | seconds | peak RSS MiB | detail |\n|---|---|---|---|")
        for op in args.ops:
            if op == "votes_legacy" and n > LEGACY_MAX:
                continue
            r = run_op(op, db)
            if "error" in r:
                print(f"| {op} | failed | | {r['error']} |", flush=True)
                continue
            seconds = r.get("seconds_per_click", r["seconds"])
            print(f"| {op} | {seconds:.3f} | {r['peak_rss_mib']:.0f} | {r.get('detail', '')} |", flush=True)


if __name__ == "__main__":
    main()
