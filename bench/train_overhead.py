"""The app's training path vs a plain TRL script, same exported data and config, side by side in one run.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/train_overhead.py [--pairs 300] [--repeats 3]

Each run is a fresh process (so peak RSS is that run's own), the two paths alternate, and the figures are medians:
wall time of the whole process (imports, loading, training, saving) and peak resident memory (ru_maxrss from
wait4). The app path is `prefapp.training.dpo.train_dpo` as the Train tab calls it: input checks, truncation audit,
progress callback with live warnings every step, checkpoints every `save_steps`, the round record. The plain script
is what a TRL user writes: load_from_disk -> DPOConfig -> DPOTrainer(peft_config=...) -> train() -> save.
Targets from the issue: wall-time ratio <= 1.05, peak-memory ratio <= 1.10. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The demo loop's settings (LOOP_TRAIN_CONFIG: 3 epochs, so the app's checkpoint at step 50 is part of the cost).
CONFIG = dict(beta=0.1, learning_rate=1e-3, num_epochs=3.0, batch_size=8, max_length=256, lora_r=16, lora_alpha=32,
              lora_dropout=0.0, loss_type="sigmoid", seed=0)


def build_export(n_tasks: int, out: Path) -> int:
    """Demo-task prompts, two flawed corpus answers each, the simulated annotator's pick; A/B rows only."""
    from datasets import Dataset

    from prefapp.demo.task import corpus_response, sample_tasks, simulated_annotator

    rng, rows = random.Random(0), []
    for task in sample_tasks(n_tasks, seed=0):
        a, b = corpus_response(task, rng), corpus_response(task, rng)
        choice = simulated_annotator(task.question, a, b)
        if choice in ("A", "B"):
            chosen, rejected = (a, b) if choice == "A" else (b, a)
            rows.append({"prompt": [{"role": "user", "content": task.question}],
                         "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
    from datasets.utils import disable_progress_bars

    disable_progress_bars()
    Dataset.from_list(rows).save_to_disk(str(out))
    return len(rows)


def run_app(data: Path, out: Path, extra: dict) -> None:
    from prefapp.config import DEMO_MODEL_DIR, TrainConfig
    from prefapp.preferences.export import load_preferences
    from prefapp.training.dpo import train_dpo

    result = train_dpo(DEMO_MODEL_DIR, load_preferences(data), TrainConfig(**CONFIG, **extra), out,
                       on_progress=lambda p: None)
    print(json.dumps({"steps": result.steps, "train_loss": round(result.metrics["train_loss"], 4)}))


def run_trl(data: Path, out: Path, extra: dict) -> None:
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from prefapp.config import DEMO_MODEL_DIR

    c = CONFIG
    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    args = DPOConfig(output_dir=str(out / "scratch"), beta=c["beta"], learning_rate=c["learning_rate"],
                     num_train_epochs=c["num_epochs"], per_device_train_batch_size=c["batch_size"],
                     max_length=c["max_length"], loss_type=c["loss_type"], seed=c["seed"], report_to="none",
                     use_cpu=True, bf16=False, activation_checkpointing=False, disable_tqdm=True,  # as the app: fp32
                     precompute_ref_log_probs=extra.get("precompute_ref_log_probs", False))
    lora = LoraConfig(r=c["lora_r"], lora_alpha=c["lora_alpha"], lora_dropout=c["lora_dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=load_from_disk(str(data)), processing_class=tokenizer,
                         peft_config=lora)
    trainer.train()
    trainer.model.save_pretrained(str(out))
    print(json.dumps({"steps": trainer.state.global_step,
                      "train_loss": round(trainer.state.log_history[-1]["train_loss"], 4)}))


def measure(which: str, data: Path, work: Path, extra: dict) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, the child's last line) of one run in a fresh process."""
    out = Path(tempfile.mkdtemp(prefix=f"{which}-", dir=work))
    cmd = [sys.executable, __file__, "--child", which, "--data", str(data), "--out", str(out),
           "--extra", json.dumps(extra)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    line = proc.stdout.read().strip().splitlines()[-1] if status == 0 else f"FAILED (status {status})"
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=300, help="demo tasks to label (ties/both-bad are dropped)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=CONFIG["num_epochs"])
    parser.add_argument("--precompute-ref-log-probs", action="store_true", help="both paths precompute the reference")
    parser.add_argument("--child", choices=("app", "trl"))
    parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--extra", default="{}")
    args = parser.parse_args()
    if args.child:
        CONFIG["num_epochs"] = json.loads(args.extra).pop("num_epochs", CONFIG["num_epochs"])
        extra = {k: v for k, v in json.loads(args.extra).items() if k != "num_epochs"}
        (run_app if args.child == "app" else run_trl)(Path(args.data), Path(args.out), extra)
        return
    CONFIG["num_epochs"] = args.epochs
    extra = {"precompute_ref_log_probs": True} if args.precompute_ref_log_probs else {}
    with tempfile.TemporaryDirectory(prefix="prefapp-bench-") as work:
        data = Path(work) / "export"
        n = build_export(args.pairs, data)
        print(f"{n} A/B pairs from {args.pairs} demo tasks; config {CONFIG} {extra}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {args.repeats} alternating repeats")
        times: dict[str, list[float]] = {"app": [], "trl": []}
        cpu: dict[str, list[float]] = {"app": [], "trl": []}
        peaks: dict[str, list[float]] = {"app": [], "trl": []}
        for i in range(args.repeats):
            for which in (("app", "trl") if i % 2 == 0 else ("trl", "app")):
                seconds, cpu_s, peak, line = measure(which, data, Path(work), {**extra, "num_epochs": args.epochs})
                times[which].append(seconds)
                cpu[which].append(cpu_s)
                peaks[which].append(peak)
                print(f"  run {i + 1} {which:>3}: {seconds:6.2f} s wall, {cpu_s:6.2f} s CPU, peak RSS {peak:7.1f} MiB  "
                      f"{line}", flush=True)
    t_app, t_trl = statistics.median(times["app"]), statistics.median(times["trl"])
    m_app, m_trl = statistics.median(peaks["app"]), statistics.median(peaks["trl"])
    print(f"{'':>12} {'app':>10} {'plain TRL':>10} {'ratio':>7} {'target':>7}")
    print(f"{'wall s':>12} {t_app:10.2f} {t_trl:10.2f} {t_app / t_trl:7.3f} {'<=1.05':>7}")
    c_app, c_trl = statistics.median(cpu["app"]), statistics.median(cpu["trl"])
    print(f"{'CPU s':>12} {c_app:10.2f} {c_trl:10.2f} {c_app / c_trl:7.3f} {'':>7}  "
          "(user+sys: robust to a busy machine)")
    print(f"{'peak MiB':>12} {m_app:10.1f} {m_trl:10.1f} {m_app / m_trl:7.3f} {'<=1.10':>7}")


if __name__ == "__main__":
    main()
