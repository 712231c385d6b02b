"""`prefapp` console command: serve the app, export votes, train a round, rebuild the demo model, run the loop."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from prefapp.config import (DEMO_MODEL_DIR, LOOP_TRAIN_CONFIG, TRAIN_METHODS, AppConfig, ConfigError, LabelingConfig,
                            TrainConfig, read_guidelines)

log = logging.getLogger(__name__)


def _app_config(args: argparse.Namespace) -> AppConfig:
    given = {
        "model": getattr(args, "model", None),
        "data_dir": getattr(args, "data_dir", None),
        "db_path": getattr(args, "db", None),
        "prompts_path": getattr(args, "prompts", None),
    }
    return AppConfig.from_env(**{k: v for k, v in given.items() if v})


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
        max_length=args.max_length, loss_type=args.loss_type, seed=args.seed,
        save_steps=getattr(args, "save_steps", TrainConfig.save_steps), method=getattr(args, "method", "dpo"),
        precompute_ref_log_probs=getattr(args, "precompute_ref_log_probs", False),
    ).with_rank(args.lora_r)


def labeling_config(base: LabelingConfig, overlap: int | None, probe_rate: float | None, guidelines: str | None,
                    queue: int | None) -> LabelingConfig:
    """The serve flags over the environment's labelling settings, validated."""
    changes = {k: v for k, v in (("overlap", overlap), ("probe_rate", probe_rate), ("queue_target", queue))
               if v is not None}
    if guidelines:
        changes["guidelines"] = read_guidelines(guidelines)
    if queue is not None:
        changes["queue_batch"] = min(base.queue_batch, max(queue, 1))
    config = replace(base, **changes)
    config.validate()
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    from prefapp.hosting.auth import access_from_env
    from prefapp.hosting.environment import check_bind

    config = _app_config(args)
    config.host, config.port = args.host or config.host, args.port or config.port
    config.allow_public = config.allow_public or args.allow_public
    config.users_file = Path(args.users_file) if args.users_file else config.users_file
    config.labeling = labeling_config(config.labeling, args.overlap, args.probe_rate, args.guidelines, args.queue)
    config.generator = args.generator or config.generator
    config.generator_url = args.generator_url or config.generator_url
    config.generator_model = args.generator_model or config.generator_model
    picked = {"selection": args.selection, "coverage_share": args.coverage_share}  # prefapp.labeling.active
    config.labeling = replace(config.labeling, **{k: v for k, v in picked.items() if v is not None})
    config.labeling.validate()
    check_bind(config.host, access_from_env(config.users_file) is not None, config.allow_public)  # before imports

    from prefapp.ui.app import launch  # gradio and torch: seconds to import

    launch(config)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from prefapp.service import round_adapter_name
    from prefapp.store import Store
    from prefapp.training import rounds as round_files

    config = _app_config(args)
    with Store(config.db_path) as store:
        rnd = store.get_round(args.round)
    if rnd is None or rnd.status != "finished" or not rnd.adapter_path:
        raise ConfigError(f"round {args.round} is not a finished round in {config.db_path}: pick one the Train tab lists")
    out = Path(args.out) if args.out else config.data_dir / "merged" / round_adapter_name(rnd.id)
    print(round_files.merge_adapter(rnd.base_model, rnd.adapter_path, out))
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    import getpass

    from prefapp.hosting.auth import add_user

    prompt = f"password for {args.name}: "
    password = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    add_user(Path(args.users_file), args.name, args.role, password)
    print(f"{args.name} ({args.role}) saved to {args.users_file}; serve with --users-file {args.users_file}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from prefapp.store import Store

    dest = Path(args.dest)
    if dest.exists() or dest.is_symlink():
        raise ConfigError(f"{dest} already exists: give a new file name (a backup never overwrites a file)")
    with Store(_app_config(args).db_path) as store:
        print("backup written to", store.snapshot(dest))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from prefapp.hosting.durability import restore

    db = _app_config(args).db_path
    figures, kept = restore(Path(args.backup), db)
    print(f"restored {db} from {args.backup}: {figures['votes']} votes, {figures['rounds']} rounds"
          + (f"; the replaced file is kept as {kept}" if kept else ""))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from prefapp.preferences.export import push_to_hub
    from prefapp.preferences.resolve import export_preferences
    from prefapp.store import Store

    config = _app_config(args)
    with Store(config.db_path) as store:
        result = export_preferences(store, config.exports_dir, args.name, _export_options(args))
    print(f"exported {result.counts.pairs} pairs to {result.dataset_dir} and {result.parquet_path}: {result.detail}")
    if args.push:
        print("pushed:", push_to_hub(result.dataset_dir, args.push))
    return 0


def _add_export_options(p: argparse.ArgumentParser) -> None:
    from prefapp.preferences.resolve import BOTH_BAD, DISAGREEMENT, SOURCES, WRITTEN, ExportOptions

    d = ExportOptions()
    p.add_argument("--disagreement", choices=DISAGREEMENT, default=d.disagreement,
                   help="overlapped pairs: majority answer (a split is dropped), only agreed pairs, or every vote")
    p.add_argument("--both-bad", choices=BOTH_BAD, default=d.both_bad,
                   help="both-bad votes: drop, or keep those with a written better response")
    p.add_argument("--written", choices=WRITTEN, default=d.written, help="a human-written response becomes chosen")
    p.add_argument("--sources", choices=SOURCES, default=d.sources, help="rows from votes, imported pairs, or both")
    p.add_argument("--imported-share", type=float, default=d.imported_share,
                   help="with --sources both: imported pairs are at most this share of the rows (e.g. 0.5)")
    p.add_argument("--eval-votes", action="store_true",
                   help="also the decided eval votes (A/B on held-out prompts), marked origin=eval; off: eval votes "
                        "only judge rounds")


def _export_options(args: argparse.Namespace):
    from prefapp.preferences.resolve import ExportOptions

    return ExportOptions(disagreement=args.disagreement, both_bad=args.both_bad, written=args.written,
                         sources=args.sources, imported_share=args.imported_share, eval_votes=args.eval_votes)


def cmd_import(args: argparse.Namespace) -> int:
    """Preference data from a file, a saved dataset or a Hub dataset into the store (preferences.pair_import)."""
    from prefapp.preferences.pair_import import preview, store_parsed
    from prefapp.store import Store

    parsed = preview(args.source, args.split, args.format)
    if args.preview:
        shown = {"source": parsed.source.name, "format": parsed.format, "detected_from": parsed.why,
                 "rows": len(parsed.source.rows), "parsed": len(parsed.items), "skipped": parsed.skipped_by_reason(),
                 "sample": parsed.sample()}
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    with Store(_app_config(args).db_path) as store:
        report = store_parsed(store, parsed)
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) if args.json else report.summary())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from prefapp.models import resolve_model
    from prefapp.training.dpo import train_dpo
    from prefapp.training.headless import issue_lines, load_kto_data, load_training_data, preflight, rank, world_size
    from prefapp.training.kto import train_kto

    if args.resume and not args.output:
        raise ConfigError("--resume continues a run: pass its adapter directory with --output DIR")
    config = _app_config(args)
    train_config = _train_config(args)
    choice = resolve_model(config.model)
    if train_config.method == "kto":  # every labelled completion, built and checked as the app's KTO round
        if args.loss_type != TrainConfig.loss_type:
            raise ConfigError(f"--loss-type {args.loss_type} is a DPO loss; a KTO round uses TRL's KTO loss: "
                              "drop --loss-type, or train with --method dpo")
        data, report = load_kto_data(args.dataset, config.db_path, _export_options(args), train_config, choice.source)
    else:
        data = load_training_data(args.dataset, config.db_path, _export_options(args))
        report = preflight(data, train_config, choice.source)
    train = train_kto if train_config.method == "kto" else train_dpo
    main_rank = rank() == 0
    if main_rank and (args.preflight or issue_lines(report)):
        print(report.markdown() if args.preflight else "\n".join(issue_lines(report)))
    if not report.ok:
        raise ConfigError(report.errors[0])
    if args.preflight:
        return 0
    out = Path(args.output or config.adapters_dir / f"cli-run-{time.strftime('%Y%m%d-%H%M%S')}")
    rows = "labelled completions (KTO)" if train_config.method == "kto" else "pairs"
    if main_rank:
        print(f"training {choice.label} ({choice.reason}) on {len(data.dataset)} {rows} from {data.source} -> {out}"
              + (f" on {world_size()} processes" if world_size() > 1 else ""))
    on_progress = (lambda p: print(f"step {p.step}/{p.total_steps} {_metrics_line(p.metrics)}")) if main_rank else None
    result = train(choice.source, data.dataset, train_config, out, on_progress=on_progress, resume=args.resume)
    if world_size() > 1:  # every rank: equal digests show the processes trained one model together
        print(f"rank {rank()}/{world_size()}: {result.steps} steps, weights sha256 {result.weights_sha256}", flush=True)
    if main_rank:
        print(f"done in {result.seconds:.1f}s ({result.precision}); adapter: {result.adapter_dir}")
        for warning in result.warnings:
            print("warning:", warning)
        print(json.dumps(result.metrics, indent=2))
        if not args.dataset and not result.cancelled:
            _record_round(config.db_path, result.adapter_dir, choice, data.dataset)
    return 0


def _record_round(db_path: Path, adapter_dir: Path, choice, dataset) -> None:
    """A run on the store becomes that store's next round, so the app lists it and can chat with it."""
    from prefapp.store import Store, StoreLockedError
    from prefapp.training.adapters import register_round
    from prefapp.training.rounds import dataset_sha256

    try:
        with Store(db_path) as store:
            rnd = register_round(store, adapter_dir, choice.source, choice.label,
                                 {"dataset_sha256": dataset_sha256(dataset), "trained_by": "prefapp train"})
        print(f"recorded as round {rnd.id} in {db_path}")
    except (StoreLockedError, ValueError) as exc:
        print(f"warning: the round was not recorded in {db_path} ({exc}); "
              f"later: prefapp add-round {adapter_dir} --data-dir {db_path.parent}")


def cmd_add_round(args: argparse.Namespace) -> int:
    """An adapter trained elsewhere becomes the store's next finished round, after the base-model check."""
    from prefapp.models import resolve_model
    from prefapp.store import Store
    from prefapp.training.adapters import register_round

    config = _app_config(args)
    choice = resolve_model(config.model)
    with Store(config.db_path) as store:
        rnd = register_round(store, args.adapter_dir, choice.source, choice.label)
    print(f"round {rnd.id}: {rnd.adapter_path} on {choice.label}; the app loads it on its next start "
          "(or use the Train tab's Add round while it runs)")
    return 0


def _metrics_line(metrics: dict) -> str:
    keys = ("loss", "rewards/margins", "rewards/accuracies", "kl")  # DPO's and KTO's
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


def cmd_build_demo_model(args: argparse.Namespace) -> int:
    from prefapp.demo.model import DemoModelConfig, build_demo_model

    config = DemoModelConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    metrics = build_demo_model(Path(args.out), cfg=config, **({"prompts_dir": Path(args.prompts_dir)}
                                                             if args.prompts_dir else {}))
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def cmd_loop(args: argparse.Namespace) -> int:
    """The closed loop on the demo task with the simulated annotator, printing the win rate."""
    from prefapp.demo.loop import run_demo_loop

    report = run_demo_loop(
        Path(args.workdir), n_pairs=args.pairs, n_eval=args.eval_prompts, rounds=args.rounds,
        train_config=_train_config(args), seed=args.seed,
    )
    print(report.summary())
    return 0


def _format_names() -> str:
    from prefapp.preferences.formats import format_names

    return format_names()


def cmd_eval(args: argparse.Namespace) -> int:
    """Judge two policies blind on the eval prompts; print the verdict (and the leaderboard) as text or JSON."""
    report, seconds = evaluation_run(_app_config(args), args.a, args.b, args.judge, args.n_prompts, args.seed,
                                     model_given=bool(args.model))
    if args.json:
        print(json.dumps({**report.to_dict(), "judge": args.judge, "seconds": round(seconds, 1)}))
    else:
        print(report.summary())
        for row in report.leaderboard:
            print(f"  {row.policy:>10}  strength {row.strength:+.2f} (95% CI {row.ci_low:+.2f} to {row.ci_high:+.2f}), "
                  f"{row.comparisons} comparisons")
    return 0


def evaluation_run(config: AppConfig, a: str, b: str | None, judge: str, n: int, seed: int = 0,
                   model_given: bool = False) -> tuple:
    """What `prefapp eval` does: with judge 'human', the verdict from the eval votes in the store (no model loaded);
    with 'simulated', `n` new blind comparisons voted by the demo task's simulated annotator, then the verdict over
    all simulated votes. b defaults to the newest finished round; the model defaults to that round's base."""
    import time

    from prefapp.demo.task import simulated_annotator
    from prefapp.evaluation.judge import policy_name, report_from_votes, simulate_judging
    from prefapp.service import PrefService
    from prefapp.store import Store

    started = time.perf_counter()
    with Store(config.db_path) as store:
        newest = store.last_finished_round()
        if b is None and newest is None:
            raise ConfigError(f"{config.db_path} has no finished round to judge: train one first (prefapp train)")
        a, b = policy_name(a), policy_name(b if b is not None else newest.id)
        if judge == "human":
            return report_from_votes(store.eval_votes("human"), a, b, bootstrap=500), time.perf_counter() - started
    if not model_given and newest is not None:
        config.model = newest.base_model  # judge the rounds with the model they were trained on
    service = PrefService.open(config, seed=seed)
    try:
        if Path(service.policy.choice.source).resolve() != DEMO_MODEL_DIR.resolve():
            log.warning("the simulated annotator judges the demo task only: on %s its verdict means little",
                        service.policy.choice.label)
        report = simulate_judging(service.evaluation, a, b, n, service.sampling, simulated_annotator, bootstrap=500)
    finally:
        service.close()
    return report, time.perf_counter() - started


def cmd_import_eval(args: argparse.Namespace) -> int:
    from prefapp.service import PrefService

    service = PrefService.open(_app_config(args))
    try:
        print(service.import_eval_prompts(args.source, args.column, args.split, uploaded=True))
    finally:
        service.close()
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
    p.add_argument("--users-file", help="accounts (TOML, see add-user); default env PREFAPP_USERS_FILE/PREFAPP_USERS")
    p.add_argument("--allow-public", action="store_true",
                   help="serve on a non-local --host without accounts, on purpose (env PREFAPP_ALLOW_PUBLIC=1)")
    p.add_argument("--overlap", type=int, help="annotators per pair (2+ measures agreement; env PREFAPP_OVERLAP)")
    p.add_argument("--probe-rate", type=float, help="share of repeat probes, e.g. 0.05 (env PREFAPP_PROBE_RATE)")
    p.add_argument("--guidelines", help="Markdown file shown beside the task (env PREFAPP_GUIDELINES)")
    p.add_argument("--queue", type=int, help="pairs generated ahead of the annotators (default 16, 0: none)")
    p.add_argument("--generator", help="'local' (default: this process; env PREFAPP_GENERATOR)")
    p.add_argument("--generator-url", help="an OpenAI-compatible engine, http://HOST:PORT/v1 (vLLM, SGLang, TGI, "
                   "transformers serve); key from env PREFAPP_GENERATOR_API_KEY (env PREFAPP_GENERATOR_URL)")
    p.add_argument("--generator-model", help="the engine's model name (default: the one it serves; "
                   "env PREFAPP_GENERATOR_MODEL)")
    p.add_argument("--selection", choices=("coverage", "active"),
                   help="which pairs to serve: least-labelled prompts (default) or those the last round is least sure of")
    p.add_argument("--coverage-share", type=float, help="with --selection active: share still chosen by coverage (0.3)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("merge", help="fold a finished round's adapter into the base: a standalone model to serve")
    _add_common(p)
    p.add_argument("--round", type=int, required=True, help="the finished round to merge")
    p.add_argument("--out", help="output directory (default <data-dir>/merged/round-N-<time>)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("add-user", help="add or replace an account (password read from stdin, stored hashed)")
    p.add_argument("name")
    p.add_argument("--role", choices=("annotator", "admin"), default="annotator")
    p.add_argument("--users-file", default="users.toml", help="the accounts file to create or update")
    p.set_defaults(func=cmd_add_user)

    p = sub.add_parser("backup", help="copy the DuckDB file consistently (while the app runs: its Data safety button)")
    _add_common(p)
    p.add_argument("dest", help="the new .duckdb file to write")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup in place of the store (the app must be stopped; the replaced "
                       "file is kept beside it)")
    _add_common(p)
    p.add_argument("backup", help="the backup .duckdb file, e.g. data/backups/auto-....duckdb")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("export", help="write the votes as a prompt/chosen/rejected dataset")
    _add_common(p)
    p.add_argument("--name", help="export name (default: a timestamp)")
    p.add_argument("--push", metavar="REPO_ID", help="also push to this Hub dataset repo (token from HF_TOKEN)")
    _add_export_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import preference pairs (or labelled completions) from a file or dataset")
    _add_common(p)
    p.add_argument("source", help=".json, .jsonl, .csv or .parquet file, a saved dataset folder, or a Hub dataset id")
    p.add_argument("--split", default="train", help="split of a saved DatasetDict or a Hub dataset")
    p.add_argument("--format", default="auto", help="auto (detect) or one of: " + _format_names())
    p.add_argument("--json", action="store_true", help="print the counts as JSON: added, duplicates, skipped by reason")
    p.add_argument("--preview", action="store_true",
                   help="show the detected format and three parsed rows; write nothing")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", help="train a DPO or KTO LoRA adapter headless, on the store or an export "
                       "(torchrun-ready)")
    _add_common(p)
    p.add_argument("--method", choices=TRAIN_METHODS, default=TrainConfig.method,
                   help="dpo: preference pairs; kto: every labelled completion of the store (pairs unpaired, chat "
                   "thumbs, both-bad and written responses, imported unpaired data), as the app's KTO round")
    p.add_argument("--dataset", help="export directory, .parquet or .jsonl; default: the store's votes, resolved "
                   "exactly as `prefapp export` and the app do (the options below)")
    _add_export_options(p)
    p.add_argument("--output", help="adapter directory (default <data-dir>/adapters/cli-run-<time>); a run on the "
                   "store is recorded there as its next round")
    p.add_argument("--preflight", action="store_true", help="print the preflight report and stop (exit 2 on errors)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint under --output")
    p.add_argument("--save-steps", type=int, default=TrainConfig.save_steps, help="checkpoint every N steps (0: off)")
    p.add_argument("--precompute-ref-log-probs", action="store_true",
                   help="compute the reference log-probs once before training instead of every step")
    _add_train_knobs(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("add-round", help="register a LoRA adapter trained elsewhere as a finished round")
    _add_common(p)
    p.add_argument("adapter_dir", help="the adapter folder (adapter_config.json + adapter weights)")
    p.set_defaults(func=cmd_add_round)

    p = sub.add_parser("build-demo-model", help="rebuild the bundled demo model from its synthetic corpus")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "demo-model"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="training steps (default: the demo model's; fewer is faster and worse)")
    p.add_argument("--prompts-dir", help="where the demo*.jsonl prompt files go (default data/prompts)")
    p.set_defaults(func=cmd_build_demo_model)

    p = sub.add_parser("loop", help="closed loop on the demo task with the simulated annotator; prints the win rate")
    p.add_argument("--workdir", default="/tmp/prefapp-loop", help="scratch dir for the store, exports and adapters")
    p.add_argument("--pairs", type=int, default=200, help="pairs labelled per round")
    p.add_argument("--eval-prompts", type=int, default=300, help="held-out prompts for the head-to-head")
    p.add_argument("--rounds", type=int, default=1)
    _add_train_knobs(p, LOOP_TRAIN_CONFIG)
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("eval", help="judge two policies blind on the eval prompts: verdict, win rates, leaderboard")
    _add_common(p)
    p.add_argument("--a", default="base", help="the reference policy: base (default) or round-N")
    p.add_argument("--b", help="the candidate policy, e.g. round-2 (default: the newest finished round)")
    p.add_argument("--judge", choices=("simulated", "human"), default="human",
                   help="simulated: the demo task's simulated annotator votes now; human: the eval votes in the store")
    p.add_argument("--prompts", type=int, default=300, dest="n_prompts",
                   help="comparisons the simulated judge makes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("import-eval", help="add held-out eval prompts (never served for labelling)")
    _add_common(p)
    p.add_argument("source", help=".txt, .jsonl, .csv, .parquet, a saved dataset folder or a Hub dataset")
    p.add_argument("--column", help="the prompt column of a table or dataset")
    p.add_argument("--split", default="train")
    p.set_defaults(func=cmd_import_eval)
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
