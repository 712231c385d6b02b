"""`prefapp` console command: serve the app, export votes, train a round, rebuild the demo model, run the loop."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from prefapp.config import LOOP_TRAIN_CONFIG, AppConfig, ConfigError, TrainConfig

log = logging.getLogger(__name__)


def _app_config(args: argparse.Namespace) -> AppConfig:
    given = {
        "model": getattr(args, "model", None),
        "data_dir": getattr(args, "data_dir", None),
        "db_path": getattr(args, "db", None),
        "prompts_path": getattr(args, "prompts", None),
    }
    return AppConfig(**{k: v for k, v in given.items() if v})


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="Hub id, local model dir, 'demo' or 'auto' (default; env PREFAPP_MODEL)")
    p.add_argument("--data-dir", help="where the DuckDB file, exports and adapters live (env PREFAPP_DATA_DIR)")
    p.add_argument("--db", help="DuckDB file (default <data-dir>/prefapp.duckdb; env PREFAPP_DB)")


def _add_train_knobs(p: argparse.ArgumentParser, d: TrainConfig = TrainConfig()) -> None:
    p.add_argument("--beta", type=float, default=d.beta, help="KL strength (0.1 is the usual start)")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--epochs", type=float, default=d.num_epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--lora-r", type=int, default=d.lora_r)
    p.add_argument("--loss-type", default=d.loss_type)
    p.add_argument("--seed", type=int, default=d.seed)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        beta=args.beta, learning_rate=args.learning_rate, num_epochs=args.epochs, batch_size=args.batch_size,
        max_length=args.max_length, lora_r=args.lora_r, lora_alpha=2 * args.lora_r, loss_type=args.loss_type,
        seed=args.seed,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from prefapp.ui import launch

    config = _app_config(args)
    config.host, config.port = args.host or config.host, args.port or config.port
    launch(config)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from prefapp.export import export_preferences, push_to_hub
    from prefapp.store import Store

    config = _app_config(args)
    with Store(config.db_path) as store:
        result = export_preferences(store.votes(), config.exports_dir, args.name)
    c = result.counts
    print(f"exported {c.pairs} pairs to {result.dataset_dir} and {result.parquet_path} "
          f"(left out: {c.ties} ties, {c.both_bad} both bad; {c.votes} votes in all)")
    if args.push:
        print("pushed:", push_to_hub(result.dataset_dir, args.push))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from prefapp.export import load_preferences, PREFERENCE_COLUMNS
    from prefapp.models import resolve_model
    from prefapp.training import train_dpo

    config = _app_config(args)
    train_config = _train_config(args)
    dataset = load_preferences(args.dataset).select_columns(list(PREFERENCE_COLUMNS))
    train_config.validate(len(dataset))
    choice = resolve_model(config.model)
    out = Path(args.output or config.adapters_dir / "cli-run")
    print(f"training {choice.label} ({choice.reason}) on {len(dataset)} pairs -> {out}")
    result = train_dpo(choice.source, dataset, train_config, out,
                       on_progress=lambda p: print(f"step {p.step}/{p.total_steps} {_metrics_line(p.metrics)}"))
    print(f"done in {result.seconds:.1f}s ({result.precision}); adapter: {result.adapter_dir}")
    print(json.dumps(result.metrics, indent=2))
    return 0


def _metrics_line(metrics: dict) -> str:
    keys = ("loss", "rewards/margins", "rewards/accuracies")
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


def cmd_build_demo_model(args: argparse.Namespace) -> int:
    from prefapp.demo_model import build_demo_model

    metrics = build_demo_model(Path(args.out), seed=args.seed)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def cmd_loop(args: argparse.Namespace) -> int:
    """The closed loop on the demo task with the simulated annotator, printing the win rate."""
    from prefapp.evaluation import run_demo_loop

    report = run_demo_loop(
        Path(args.workdir), n_pairs=args.pairs, n_eval=args.eval_prompts, rounds=args.rounds,
        train_config=_train_config(args), seed=args.seed,
    )
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefapp", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the Gradio app")
    _add_common(p)
    p.add_argument("--host", help="interface to bind (default 127.0.0.1; env PREFAPP_HOST)")
    p.add_argument("--port", type=int, help="port (default 7860; env PREFAPP_PORT)")
    p.add_argument("--prompts", help="extra prompt file to import at start (.txt or .jsonl)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write the votes as a prompt/chosen/rejected dataset")
    _add_common(p)
    p.add_argument("--name", help="export name (default: a timestamp)")
    p.add_argument("--push", metavar="REPO_ID", help="also push to this Hub dataset repo (token from HF_TOKEN)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a DPO LoRA adapter on an exported dataset, headless")
    _add_common(p)
    p.add_argument("--dataset", required=True, help="export directory, .parquet or .jsonl with prompt/chosen/rejected")
    p.add_argument("--output", help="adapter directory (default <data-dir>/adapters/cli-run)")
    _add_train_knobs(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("build-demo-model", help="rebuild the bundled demo model from its synthetic corpus")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "demo-model"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_build_demo_model)

    p = sub.add_parser("loop", help="closed loop on the demo task with the simulated annotator; prints the win rate")
    p.add_argument("--workdir", default="/tmp/prefapp-loop", help="scratch dir for the store, exports and adapters")
    p.add_argument("--pairs", type=int, default=200, help="pairs labelled per round")
    p.add_argument("--eval-prompts", type=int, default=300, help="held-out prompts for the head-to-head")
    p.add_argument("--rounds", type=int, default=1)
    _add_train_knobs(p, LOOP_TRAIN_CONFIG)
    p.set_defaults(func=cmd_loop)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except (ConfigError, ValueError, RuntimeError) as exc:
        print(f"prefapp: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
