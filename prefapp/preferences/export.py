"""Votes -> a Hugging Face `datasets.Dataset` in the conversational preference format TRL's DPOTrainer reads.

Each row: `prompt` (the messages the annotator saw), `chosen` and `rejected` (one assistant message each), plus
provenance columns. Which votes become rows is decided in one place, prefapp.preferences.resolve; this module
names, saves, loads and pushes the result.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset, load_from_disk

from prefapp.config import ConfigError
from prefapp.hosting.environment import redact
from prefapp.hosting.paths import check_new_outputs

log = logging.getLogger(__name__)

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")  # what DPOTrainer needs; the rest is provenance
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class ExportCounts:
    votes: int  # every vote considered
    pairs: int  # A/B votes that became preference rows
    ties: int  # left out: no preference
    both_bad: int  # left out: neither response should be reinforced


@dataclass(frozen=True)
class ExportResult:
    name: str
    dataset_dir: Path  # `load_from_disk` this
    parquet_path: Path  # the same rows as one Parquet file
    counts: ExportCounts
    detail: str = ""  # what the export options left out and why (prefapp.preferences.resolve), when options were given


def export_name(name: str | None = None) -> str:
    """A safe directory name: the user's, validated, or a timestamp."""
    if not name:
        return "prefs-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = name.strip()
    if not _NAME_OK.match(name):
        raise ConfigError(
            f"export name {name!r} is not allowed: use letters, digits, '.', '_' or '-' (no slashes), e.g. round-1"
        )
    return name


def save_export(dataset: Dataset, counts: ExportCounts, exports_dir: Path, name: str | None = None) -> ExportResult:
    """Write the dataset with `save_to_disk` and as Parquet under `exports_dir/<name>`."""
    if counts.pairs == 0:
        raise ConfigError(
            f"nothing to export: {counts.votes} votes but no A/B preferences "
            f"({counts.ties} ties, {counts.both_bad} both bad): label more pairs first"
        )
    name = export_name(name)
    target = Path(exports_dir) / name
    check_new_outputs([target, Path(exports_dir) / f"{name}.parquet"], exports_dir)  # no links, no overwriting
    target.parent.mkdir(parents=True, exist_ok=True)
    parquet_path = Path(exports_dir) / f"{name}.parquet"
    dataset.save_to_disk(str(target))
    # The rows' Arrow table in one write (its schema carries the features): `Dataset.to_parquet` would re-batch it.
    pq.write_table(dataset.with_format("arrow")[:], str(parquet_path))
    log.info("exported %d pairs to %s", counts.pairs, target)
    return ExportResult(name, target, parquet_path, counts)


def load_preferences(path: str | Path) -> Dataset:
    """Load an exported dataset (save_to_disk dir, .parquet or .jsonl) and check it has the DPO columns."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist: give an export directory, a .parquet or a .jsonl file")
    if path.is_dir():
        dataset = load_from_disk(str(path))
    elif path.suffix == ".parquet":
        dataset = Dataset.from_parquet(str(path))
    elif path.suffix in (".jsonl", ".json"):
        dataset = Dataset.from_json(str(path))
    else:
        raise ConfigError(f"{path.name}: unsupported format, use an export directory, .parquet or .jsonl")
    missing = [c for c in PREFERENCE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ConfigError(
            f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(dataset.column_names)}): "
            "a preference dataset needs prompt, chosen and rejected"
        )
    return dataset


def push_to_hub(dataset_dir: Path, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Push an export to the Hub; the token comes from the argument or HF_TOKEN, never from the store."""
    dataset = load_from_disk(str(dataset_dir))
    try:
        dataset.push_to_hub(repo_id, token=token, private=private)
    except Exception as exc:  # offline, bad token, no write access: all need the user to act
        raise ConfigError(
            f"push to {repo_id} failed ({type(exc).__name__}: {redact(str(exc))}): check the network and that "
            "HF_TOKEN has write access; the export is still saved locally"
        ) from None  # the chained exception may quote the token; the message above is what the user needs
    return f"https://huggingface.co/datasets/{repo_id}"
