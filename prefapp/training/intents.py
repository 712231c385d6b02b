"""The training intents of `PrefService` (start, watch, cancel and resume a round; what a finished round can become:
generator, merged model, Hub push; rounds trained elsewhere), kept here so the facade stays short: a mixin whose
methods use the service's `store`, `policy`, `config`, `labeling`, `evaluation` and training-job fields."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from prefapp.config import ConfigError, TrainConfig
from prefapp.evaluation.gate import GateRefused
from prefapp.evaluation.judge import policy_name
from prefapp.evaluation.queue import BASE
from prefapp.preferences.export import ExportCounts, ExportResult, save_export
from prefapp.preferences.resolve import ExportOptions
from prefapp.store import Round
from prefapp.training import rounds as round_files
from prefapp.training.dpo import last_checkpoint
from prefapp.training.job import TrainingJob
from prefapp.training.kto import KTOPreflight, kto_round_data, load_round_data, train_columns
from prefapp.training.preflight import PreflightReport, run_preflight
from prefapp.training.progress import TrainProgress, TrainResult
from prefapp.training.rounds import round_adapter_name

log = logging.getLogger(__name__)


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


class TrainingIntents:
    def start_training(self, config: TrainConfig, on_finish: Callable[[int], None] | None = None,
                       options: ExportOptions | None = None) -> int:
        """Export the current preferences (votes by default; `options.sources` adds imported pairs) and start a DPO
        round in the background; returns the round id."""
        with self._job_lock:
            if self._job is not None and self._job.running:
                raise ConfigError(f"round {self._job_round} is still training: wait for it or cancel it first")
            if config.method == "kto":  # every labelled completion; refused when its preflight finds an error
                dataset, counts, _ = kto_round_data(self.store, config, self._own_tokenizer(), options, check=True)
            else:
                dataset, counts = self._preferences(options)
                report = self.preflight(config, dataset, counts)
                if not report.ok:  # only what cannot work blocks the start; warnings are shown by preflight()
                    raise ConfigError(report.first_error())
            round_id = self.store.start_round(
                base_model=self.policy.choice.source, config=config.to_dict(), export_path=None, n_pairs=counts.pairs
            )
            try:
                export = save_export(dataset, counts, self.config.exports_dir, f"{round_adapter_name(round_id)}-{stamp()}")
                train_set = dataset.select_columns(list(train_columns(config)))
                output_dir = self.config.adapters_dir / f"{round_adapter_name(round_id)}-{stamp()}"
                self.store.set_round_provenance(round_id, _provenance(train_set, counts, export, output_dir))
                self._job = TrainingJob(
                    self.policy.choice.source, train_set, config, output_dir,
                    on_finish=lambda result, error: self._finish_round(round_id, export, result, error, on_finish),
                )
                self._job_round = round_id
                self._job.start()
            except Exception as exc:
                self.store.fail_round(round_id, f"could not start: {exc}")
                raise
        log.info("round %d: training on %d pairs", round_id, counts.pairs)
        return round_id

    def training_status(self) -> TrainProgress | None:
        job = self._job
        return job.status() if job is not None else None

    def training_running(self) -> bool:
        """True until a round's thread has ended, recording included (its adapter is loaded by then)."""
        job = self._job
        return job is not None and job.running

    def cancel_training(self) -> bool:
        job = self._job
        if job is None or not job.running:
            return False
        job.cancel()
        return True

    def wait_training(self, timeout: float | None = None) -> TrainResult | None:
        job = self._job
        return job.wait(timeout) if job is not None else None

    def rounds(self) -> list[Round]:
        return self.store.rounds()

    def preflight(self, config: TrainConfig, dataset=None, counts=None,
                  options: ExportOptions | None = None) -> PreflightReport:
        """Check the current data (under `options`: votes, imported or both) and `config` before training: counts,
        truncation, preview, memory, settings."""
        if dataset is None:
            dataset, counts = self._preferences(options)
        model_config = self.policy.config  # from config.json: a remote generator leaves the weights unloaded
        return run_preflight(dataset, config, self._own_tokenizer(), model_config,
                             ties_dropped=counts.ties, both_bad_dropped=counts.both_bad)

    def preflight_kto(self, config: TrainConfig, options: ExportOptions | None = None) -> KTOPreflight:
        """Check the labelled completions for a KTO round: counts, balance and weights, truncation."""
        return kto_round_data(self.store, config, self._own_tokenizer(), options)[2]

    def _own_tokenizer(self):
        """A tokenizer of our own for preflight: a fast tokenizer shared with the generating thread can raise
        'Already borrowed' when two threads use it at once."""
        if getattr(self, "_preflight_tokenizer", None) is None:
            from prefapp.models import load_tokenizer

            self._preflight_tokenizer = load_tokenizer(self.policy.choice.source)
        return self._preflight_tokenizer

    def resume_training(self, round_id: int, on_finish: Callable[[int], None] | None = None) -> int:
        """Continue a cancelled or failed round (also one cut by a crash or an app restart) from its checkpoint."""
        with self._job_lock:
            if self._job is not None and self._job.running:
                raise ConfigError(f"round {self._job_round} is still training: wait for it or cancel it first")
            rnd = self.store.get_round(int(round_id))
            prov = (rnd.provenance or {}) if rnd else {}
            if rnd is None or not prov.get("output_dir") or last_checkpoint(Path(prov["output_dir"])) is None:
                raise ConfigError(f"round {round_id} has no checkpoint to resume from: start a new round instead")
            export_dir = Path(prov["export_path"])
            config = TrainConfig(**rnd.config)
            dataset = load_round_data(export_dir, config)
            job = TrainingJob(rnd.base_model, dataset, config, Path(prov["output_dir"]), resume=True,
                              on_finish=lambda result, error: self._finish_round(
                                  rnd.id, ExportResult(export_dir.name, export_dir, export_dir.with_suffix(".parquet"),
                                                       ExportCounts(**prov["counts"])), result, error, on_finish))
            self.store.reopen_round(rnd.id)
            self.store.set_round_provenance(rnd.id, {**prov, "resumes": prov.get("resumes", 0) + 1})
            self._job, self._job_round = job, rnd.id
            job.start()
        log.info("round %d: resuming from %s", rnd.id, last_checkpoint(Path(prov["output_dir"])))
        return rnd.id

    def add_round(self, adapter_dir: str | Path) -> Round:
        """Register a LoRA adapter trained elsewhere (`prefapp train`, another machine) as a finished round, after
        checking it was trained on this app's model; it is loaded and becomes the chat's aligned side."""
        from prefapp.training.adapters import register_round

        choice = self.policy.choice
        rnd = register_round(self.store, self.user_path(adapter_dir), choice.source, choice.label)
        name = round_adapter_name(rnd.id)
        self.backend.add_adapter(name, rnd.adapter_path)
        self.aligned = name
        return rnd

    def make_generator(self, round_id: int | str | None, confirm: bool = False, admin: str | None = None) -> str:
        """THE intent that changes the generator (Train and Chat tabs, /set_generator, rollback, the demo loop): the
        policy that writes new pairs (and the chat's aligned side) becomes a round (3, '3' or 'round-3'), or the base
        (None, 0 or 'base'). The promotion gate refuses a round judged worse or degenerate (with
        PREFAPP_REQUIRE_WORKING, one not judged working) unless `confirm`; each promotion is recorded, a confirmed
        refusal as an override."""
        name = None if round_id in (None, 0, "") else policy_name(round_id)
        if name in (None, BASE):
            return self._use_generator(None)
        number = round_files.round_number(name)
        if number is None or name not in self.backend.adapters:
            raise ConfigError(f"{name} is not a finished round: pick one of "
                              f"{', '.join([BASE, *sorted(self.backend.adapters)])}")
        decision = self.gate(number)
        if not decision.allowed and not confirm:
            raise GateRefused(decision)
        message = self._use_generator(name)  # a remote engine that cannot load it refuses here: nothing recorded
        self.set_aligned(name)
        self.store.record_promotion(number, admin, decision.verdict, decision.flags, not decision.allowed)
        return message + "\n" + decision.text()

    def rollback(self) -> str:
        """Make the finished round before the current generator the generator again (the base before round 1)."""
        current = round_files.round_number(self.generator) if self.generator else None
        if current is None:
            raise ConfigError("the generator is already the base model: nothing to roll back")
        earlier = [r.id for r in self.store.rounds() if r.status == "finished" and r.id < current
                   and round_adapter_name(r.id) in self.backend.adapters]
        return self.make_generator(max(earlier) if earlier else None)

    def merge_round(self, round_id: int, out_dir: str | Path | None = None) -> Path:
        """Fold a finished round's adapter into the base weights and save a standalone model under data/merged/."""
        rnd = self._finished_round(round_id)
        default = self.config.data_dir / "merged" / f"{round_adapter_name(rnd.id)}-{stamp()}"
        target = Path(out_dir) if out_dir else default
        return round_files.merge_adapter(rnd.base_model, rnd.adapter_path, target)

    def push_round(self, round_id: int, repo_id: str, token: str | None = None) -> str:
        """Push a finished round's adapter with a model card to the Hub (token from the argument or HF_TOKEN)."""
        rnd = self._finished_round(round_id)
        card = round_files.model_card(rnd.id, rnd.base_model, rnd.config, rnd.metrics, rnd.provenance,
                                      evaluation=self.gate(rnd.id).text())
        return round_files.push_adapter(rnd.adapter_path, (repo_id or "").strip(), card, token=token)

    def _finished_round(self, round_id: int) -> Round:
        rnd = self.store.get_round(int(round_id))
        if rnd is None or rnd.status != "finished" or not rnd.adapter_path:
            finished = [r.id for r in self.store.rounds() if r.status == "finished"]
            raise ConfigError(f"round {round_id} is not a finished round: pick one of {finished or 'none yet'}")
        return rnd

    def _finish_round(
        self, round_id: int, export: ExportResult, result: TrainResult | None, error: BaseException | None,
        on_finish: Callable[[int], None] | None,
    ) -> None:
        if result is None or error is not None:
            self.store.fail_round(round_id, f"{type(error).__name__}: {error}" if error else "no result")
        elif result.cancelled:
            self.store.fail_round(round_id, "cancelled by the user", status="cancelled")
        else:
            metrics = {**result.metrics, "steps": result.steps, "seconds": result.seconds, "precision": result.precision,
                       "export": str(export.dataset_dir), "warnings": list(result.warnings)}
            self.store.finish_round(round_id, str(result.adapter_dir), metrics)
            name = round_adapter_name(round_id)
            self.backend.add_adapter(name, result.adapter_dir)
            self.aligned = name
            try:  # the automatic post-round checks; a failure must not lose the finished round
                self.evaluation.record_checks(round_id, self.sampling)
            except Exception:
                log.exception("round %d: the automatic checks failed", round_id)
        if on_finish:
            on_finish(round_id)

    def _load_finished_rounds(self) -> None:
        for rnd in sorted(self.store.rounds(), key=lambda r: r.id):
            if rnd.status != "finished" or rnd.base_model != self.policy.choice.source:
                continue
            if not rnd.adapter_path or not Path(rnd.adapter_path).exists():
                log.warning("round %d: adapter %s is missing; skipped", rnd.id, rnd.adapter_path)
                continue
            self.backend.add_adapter(round_adapter_name(rnd.id), rnd.adapter_path)
            self.aligned = round_adapter_name(rnd.id)

    # --- compare -------------------------------------------------------------------------------


def _provenance(dataset, counts, export: ExportResult, output_dir: Path) -> dict:
    """What a round trains on, recorded before it starts: enough to reproduce it and to resume it."""
    return {"dataset_sha256": round_files.dataset_sha256(dataset), "export_path": str(export.dataset_dir),
            "output_dir": str(output_dir), "counts": {"votes": counts.votes, "pairs": counts.pairs,
                                                       "ties": counts.ties, "both_bad": counts.both_bad}}
