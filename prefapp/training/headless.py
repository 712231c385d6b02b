"""`prefapp train` from a terminal: the app's training story on the DuckDB store or an export, one or many processes.

`--method dpo` trains on preference pairs (the store's votes resolved as the app's export does, or an export);
`--method kto` on every labelled completion of the store, built and checked by the same code as the app's KTO
round (prefapp.training.kto.kto_round_data: pairs unpaired, chat thumbs, both-bad and written responses, imported
unpaired data; the same preflight).

Under `torchrun --nproc_per_node N` (or `accelerate launch`) every process runs this same code; the Trainer reads
RANK/WORLD_SIZE, splits each batch across processes and all-reduces gradients (gloo on CPU, NCCL on GPUs). Only rank
0 prints progress and writes the adapter; every rank prints one line with its weights' digest so a user can see
that the processes stayed in sync.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from datasets import Dataset

from prefapp.config import ConfigError, TrainConfig
from prefapp.preferences.pair_import import as_training_rows, conversational, preview
from prefapp.preferences.export import PREFERENCE_COLUMNS, ExportCounts, load_preferences
from prefapp.preferences.resolve import ExportOptions, preference_dataset
from prefapp.training.kto import KTOPreflight, kto_round_data
from prefapp.training.preflight import PreflightReport, run_preflight

log = logging.getLogger(__name__)

STORE_WAIT_S = 60.0  # under torchrun the ranks take turns on the DuckDB file; one read takes well under a second
T = TypeVar("T")


@dataclass(frozen=True)
class TrainingData:
    dataset: Dataset  # prompt / chosen / rejected (DPO) or prompt / completion / label (KTO) only
    counts: ExportCounts | None  # None for an export (its ties were dropped before it was written); KTO: pairs = rows
    source: str  # for the log line: where the pairs came from


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def load_training_data(dataset_path: str | None, db_path: Path,
                       options: ExportOptions = ExportOptions()) -> TrainingData:
    """An exported dataset when given, else the store's votes resolved under `options` exactly as the app's export
    and training do (the store is read, never written by training)."""
    if dataset_path:
        try:
            dataset = load_preferences(dataset_path).select_columns(list(PREFERENCE_COLUMNS))
        except ConfigError:
            dataset = None  # not prompt/chosen/rejected: maybe another preference format
        if dataset is None or not conversational(dataset):  # TRL standard, hh-rlhf, ShareGPT, ...: read as pairs
            dataset = as_training_rows(preview(str(dataset_path)))
        return TrainingData(dataset, None, str(dataset_path))
    dataset, counts = _votes_dataset(db_path, options)
    return TrainingData(dataset.select_columns(list(PREFERENCE_COLUMNS)) if len(dataset) else dataset, counts,
                        f"the store {db_path}")


def load_kto_data(dataset_path: str | None, db_path: Path, options: ExportOptions, config: TrainConfig,
                  model_source: str) -> tuple[TrainingData, KTOPreflight]:
    """Every labelled completion of the store and its KTO preflight, exactly as the app's KTO round builds them."""
    from prefapp.models import load_tokenizer

    if dataset_path:
        raise ConfigError(f"--method kto trains on the store's labelled completions, not on --dataset {dataset_path}: "
                          f"import it into the store first (prefapp import {dataset_path} --data-dir DIR: pairs are "
                          "unpaired, prompt/completion/label rows kept), then prefapp train --method kto --data-dir DIR")
    tokenizer = load_tokenizer(model_source)
    dataset, counts, report = _read_store(db_path, lambda store: kto_round_data(store, config, tokenizer, options))
    return TrainingData(dataset, counts, f"the store {db_path}"), report


def _votes_dataset(db_path: Path, options: ExportOptions) -> tuple[Dataset, ExportCounts]:
    def read(store) -> tuple[Dataset, ExportCounts]:
        dataset, counts = preference_dataset(store, options)
        return dataset, counts.as_export_counts()

    return _read_store(db_path, read)


def _read_store(db_path: Path, read: Callable[..., T]) -> T:
    """`read(store)` on the store at db_path, opened only for that (the store is read, never written by training)."""
    from prefapp.store import Store, StoreLockedError

    if not Path(db_path).exists():
        raise FileNotFoundError(f"no store at {db_path}: pass --dataset, or --db / --data-dir of a prefapp store")
    deadline = time.monotonic() + (STORE_WAIT_S if world_size() > 1 else 0.0)
    while True:
        try:
            with Store(db_path) as store:
                return read(store)
        except StoreLockedError:  # another rank is reading it this instant; a running app holds it for good
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2 + 0.1 * rank())


def preflight(data: TrainingData, config: TrainConfig, model_source: str) -> PreflightReport:
    from transformers import AutoConfig

    from prefapp.models import load_tokenizer

    counts = data.counts
    return run_preflight(data.dataset, config, load_tokenizer(model_source), AutoConfig.from_pretrained(model_source),
                         ties_dropped=counts.ties if counts else 0, both_bad_dropped=counts.both_bad if counts else 0)


def issue_lines(report: PreflightReport | KTOPreflight) -> list[str]:
    """A preflight's errors and warnings, one line each, as `prefapp train` prints them before training."""
    if isinstance(report, KTOPreflight):
        return [f"error: {e}" for e in report.errors] + [f"warning: {w}" for w in report.warnings]
    return [f"{i.level}: {i.message}" for i in report.issues]
