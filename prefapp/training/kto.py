"""KTO training: labelled completions in (desirable or not), a LoRA adapter out.

KTO (TRL's `KTOTrainer`) learns from single-sided feedback, so every label counts: the preference pairs (each
unpaired the way TRL does it, `unpair_preference_dataset`: chosen desirable, rejected undesirable), thumbs up /
down on chat replies, imported unpaired data, both responses of a *both bad* vote (undesirable) and written
better responses (desirable), all from `Store.labelled_completions()`. A completion with the same prompt, text and
label is kept once.

The same linear story as `dpo.py`, whose loading, precision plan, LoRA config, checkpoints and round file it
shares, so a KTO round has the same live curves, cancel / resume and rounds as a DPO round.

Weights: TRL's docs (after Eq. 8 of the KTO paper) advise desirable_weight * n_desirable / (undesirable_weight *
n_undesirable) in [1, 4/3]; `balance_weights` up-weights the rarer side so that ratio is exactly 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from prefapp.config import ConfigError, TrainConfig
from prefapp.preferences.resolve import ExportOptions, preference_dataset
from prefapp.training.dpo import _lora_config, run_trainer
from prefapp.training.preflight import token_ids as _ids
from prefapp.training.progress import TrainProgress, TrainResult

log = logging.getLogger(__name__)

KTO_COLUMNS = ("prompt", "completion", "label")  # TRL's unpaired preference format, conversational
KEEP_SHARE = 0.95  # the suggested max_length keeps this share of rows whole


@dataclass(frozen=True)
class KTOCounts:
    desirable: int
    undesirable: int
    by_source: dict[str, dict[str, int]]  # 'pairs', 'chat', 'both_bad', 'written', 'import:...' -> label counts
    duplicates: int  # rows dropped because the same (prompt, completion, label) came from two places

    @property
    def rows(self) -> int:
        return self.desirable + self.undesirable


def balance_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight): the rarer side up-weighted so weighted counts are equal."""
    if desirable == 0 or undesirable == 0:
        return 1.0, 1.0
    # rounded to 4 places towards the range [1, 4/3], never just below it
    if desirable < undesirable:
        return math.ceil(undesirable / desirable * 1e4) / 1e4, 1.0
    return 1.0, math.floor(desirable / undesirable * 1e4) / 1e4


def kto_dataset(store, options: ExportOptions = ExportOptions()) -> tuple[Dataset, KTOCounts]:
    """Every labelled completion as TRL's unpaired format: prompt (messages), completion (one assistant
    message), label; the resolved pairs unpaired, then the store's labelled completions, duplicates dropped."""
    from trl.data_utils import unpair_preference_dataset

    pairs, _ = preference_dataset(store, options)
    rows: list[tuple[str, list, list, bool]] = []
    if len(pairs):
        for r in unpair_preference_dataset(pairs.select_columns(["prompt", "chosen", "rejected"])):
            rows.append(("pairs", r["prompt"], r["completion"], bool(r["label"])))
    for c in store.labelled_completions():
        rows.append((c.source, c.prompt, [{"role": "assistant", "content": c.completion}], c.label))
    seen: set[str] = set()
    out: dict[str, list] = {k: [] for k in KTO_COLUMNS}
    by_source: dict[str, dict[str, int]] = {}
    for source, prompt, completion, label in rows:
        key = hashlib.sha256(json.dumps([prompt, completion, label], sort_keys=True).encode()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        out["prompt"].append(prompt)
        out["completion"].append(completion)
        out["label"].append(label)
        counts = by_source.setdefault(source, {"desirable": 0, "undesirable": 0})
        counts["desirable" if label else "undesirable"] += 1
    n_good = sum(out["label"])
    counts = KTOCounts(n_good, len(out["label"]) - n_good, by_source, len(rows) - len(seen))
    return Dataset.from_dict(out), counts


# --- preflight ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KTOPreflight:
    counts: KTOCounts
    weights: tuple[float, float]  # (desirable, undesirable) that training will use
    max_length: int
    truncated: int  # rows whose prompt + completion exceed max_length: the completion's end is cut
    dropped: int  # rows whose prompt alone fills max_length: TRL drops them
    suggested_max_length: int  # keeps KEEP_SHARE of rows whole
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def markdown(self) -> str:
        c = self.counts
        lines = [f"**KTO data**: {c.rows} labelled completions, {c.desirable} desirable / {c.undesirable} "
                 f"undesirable; weights desirable {self.weights[0]} / undesirable {self.weights[1]}"
                 f"{f'; {c.duplicates} duplicate(s) dropped' if c.duplicates else ''}.",
                 "By source: " + ", ".join(f"{s} {v['desirable']}+/{v['undesirable']}-" for s, v in
                                           sorted(c.by_source.items())) + ".",
                 f"**Truncation** at max_length={self.max_length}: {self.truncated} cut, {self.dropped} dropped; "
                 f"{self.suggested_max_length} keeps {KEEP_SHARE:.0%} whole."]
        lines += [f"- ERROR: {e}" for e in self.errors] + [f"- warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def kto_preflight(dataset: Dataset, counts: KTOCounts, config: TrainConfig, tokenizer: Any) -> KTOPreflight:
    """Counts, balance and weights, truncation with the model's chat template, and what blocks a start."""
    errors, warnings = [], []
    if counts.rows == 0:
        errors.append("there are no labelled completions: vote on pairs, rate chat replies, or import unpaired data")
    elif config.batch_size < 2:
        errors.append("KTO estimates its KL term from the other rows of a batch: use batch_size 2 or more")
    elif config.batch_size > counts.rows:
        errors.append(f"batch_size={config.batch_size} is larger than the {counts.rows} rows: use at most "
                      f"{counts.rows}")
    if counts.rows and 0 in (counts.desirable, counts.undesirable):
        side = "desirable" if counts.desirable == 0 else "undesirable"
        warnings.append(f"no {side} examples: KTO can only push one way; add some (thumbs, both-bad votes)")
    needed, truncated, dropped = [], 0, 0
    for row in dataset.select(range(min(len(dataset), 2000))):
        prompt = _ids(tokenizer, row["prompt"], add_generation_prompt=True)
        full = _ids(tokenizer, row["prompt"] + row["completion"])
        needed.append(len(full))
        dropped += len(prompt) >= config.max_length
        truncated += len(prompt) < config.max_length < len(full)
    if dropped or truncated:
        warnings.append(f"max_length={config.max_length} cuts {truncated} and drops {dropped} of {len(needed)} rows: "
                        "raise max_length")
    ordered = sorted(needed) or [16]
    keep = ordered[max(0, math.ceil(KEEP_SHARE * len(ordered)) - 1)]
    weights = balance_weights(counts.desirable, counts.undesirable)
    return KTOPreflight(counts, weights, config.max_length, truncated, dropped, max(16, math.ceil(keep / 16) * 16),
                        errors, warnings)


def check_kto_inputs(dataset: Dataset, config: TrainConfig) -> None:
    """What must hold before the model is loaded; ConfigError naming the fix (the settings' own ranges were checked
    when the TrainConfig was built)."""
    missing = [c for c in KTO_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ConfigError(f"KTO data needs columns {', '.join(KTO_COLUMNS)} (missing {', '.join(missing)}): build it "
                          "with prefapp.training.kto.kto_dataset")
    if len(dataset) < max(2, config.batch_size):
        raise ConfigError(f"{len(dataset)} labelled completions for batch_size={config.batch_size}: KTO needs at "
                          "least 2 and a batch no larger than the data")
    if config.batch_size < 2:
        raise ConfigError("KTO estimates its KL term from the other rows of a batch: use batch_size 2 or more")


# --- the story ---------------------------------------------------------------------------------------------------


def _kto_args(config: TrainConfig, plan: Any, checkpoint_dir: Path, weights: tuple[float, float]) -> Any:
    from trl import KTOConfig

    renamed = "activation_checkpointing" in KTOConfig.__dataclass_fields__
    checkpointing = {("activation_checkpointing" if renamed else "gradient_checkpointing"): plan.checkpointing}
    return KTOConfig(
        output_dir=str(checkpoint_dir), beta=config.beta, learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, max_length=config.max_length,
        desirable_weight=weights[0], undesirable_weight=weights[1], seed=config.seed,
        logging_steps=1, report_to="none", save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500, save_total_limit=2,
        precompute_ref_log_probs=config.precompute_ref_log_probs, disable_tqdm=True, dataloader_num_workers=0,
        ddp_find_unused_parameters=False, **plan.args_kwargs, **checkpointing,
    )


def train_kto(
    base_model: str | Path,
    dataset: Dataset,
    config: TrainConfig,
    output_dir: Path,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool = False,
    inputs_checked: bool = False,
) -> TrainResult:
    """Train a LoRA adapter on `base_model` with KTO on `dataset` (prompt, completion, label); as train_dpo does."""
    if not inputs_checked:
        check_kto_inputs(dataset, config)
    n_good = sum(dataset["label"])
    weights = balance_weights(n_good, len(dataset) - n_good)

    def build(model: Any, tokenizer: Any, plan: Any, checkpoints: Path, callbacks: list) -> tuple[Any, dict]:
        from trl import KTOTrainer

        trainer = KTOTrainer(
            model=model, ref_model=None,  # with peft_config: the reference is the base with the adapter off
            args=_kto_args(config, plan, checkpoints, weights),
            train_dataset=dataset.select_columns(list(KTO_COLUMNS)), processing_class=tokenizer,
            peft_config=_lora_config(config), callbacks=callbacks,
        )
        log.info("KTO on %d completions (%d desirable), weights %s, %s, %s", len(dataset), n_good, weights,
                 plan.device, plan.precision)
        return trainer, {"desirable": n_good, "undesirable": len(dataset) - n_good}

    return run_trainer(base_model, dataset, config, output_dir, build, on_progress, stop_event, resume,
                       extra_metrics={"desirable_weight": weights[0], "undesirable_weight": weights[1]})


def kto_round_data(store, config: TrainConfig, tokenizer: Any, options: ExportOptions | None = None,
                   check: bool = False) -> tuple[Dataset, Any, KTOPreflight]:
    """What a KTO round trains on, its export counts (pairs = rows) and its preflight, for PrefService; with
    `check`, a preflight error raises ConfigError naming the fix."""
    from prefapp.preferences.export import ExportCounts

    dataset, counts = kto_dataset(store, options or ExportOptions())
    report = kto_preflight(dataset, counts, config, tokenizer)
    if check and not report.ok:
        raise ConfigError(report.errors[0])
    votes = store.vote_counts()
    export_counts = ExportCounts(votes=votes.total, pairs=counts.rows, ties=votes.by_choice.get("tie", 0),
                                 both_bad=votes.by_choice.get("both_bad", 0))
    return dataset, export_counts, report


def train_columns(config: TrainConfig) -> tuple[str, ...]:
    """The columns a round trains on: TRL's preference columns for DPO, its unpaired ones for KTO."""
    from prefapp.preferences.export import PREFERENCE_COLUMNS

    return KTO_COLUMNS if config.method == "kto" else tuple(PREFERENCE_COLUMNS)


def load_round_data(export_dir: Path, config: TrainConfig) -> Dataset:
    """A round's saved training data, to resume it."""
    from datasets import load_from_disk

    from prefapp.preferences.export import load_preferences

    if config.method == "kto":
        return load_from_disk(str(export_dir)).select_columns(list(KTO_COLUMNS))
    return load_preferences(export_dir).select_columns(list(train_columns(config)))
