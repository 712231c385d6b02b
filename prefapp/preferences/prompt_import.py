"""Prompt sets from tables and datasets: .csv, .parquet, a saved `datasets` folder, or a Hugging Face dataset name.

.txt and .jsonl keep their line-oriented reader (prefapp.preferences.prompts). Here a *column* holds the prompts, chosen by
the user or guessed from the usual names. A cell may be a string (one user turn) or a conversation: a list of
{"role", "content"} messages, or ShareGPT's {"from", "value"}; a conversation ending in assistant turns is cut
after its last user turn (the model answers that turn). Unusable rows are skipped and reported with the reason;
duplicates are left to the store, which counts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from prefapp.config import ConfigError
from prefapp.preferences.prompts import MAX_PROMPT_CHARS, Prompt, load_prompt_file

log = logging.getLogger(__name__)

LIKELY_COLUMNS = ("prompt", "messages", "conversations", "question", "instruction", "input", "text", "query")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MAX_ROWS = 200_000  # a prompt set, not a pre-training corpus
MAX_REPORTED = 10  # reasons listed in the message; the count covers the rest


@dataclass(frozen=True)
class ReadPrompts:
    prompts: list[Prompt]
    column: str | None  # None for .txt/.jsonl
    skipped: list[str]  # "row 7: empty" ..., one per skipped row


def load_table(source: str, split: str = "train"):
    """The `datasets.Dataset` behind a .csv/.parquet file, a save_to_disk folder or a Hub dataset name."""
    from datasets import Dataset, load_dataset, load_from_disk

    path = Path(source).expanduser()
    try:
        if path.suffix == ".csv" and path.is_file():
            return Dataset.from_csv(str(path))
        if path.suffix == ".parquet" and path.is_file():
            return Dataset.from_parquet(str(path))
        if path.is_dir() and (path / "dataset_info.json").exists():
            return load_from_disk(str(path))
        if path.is_dir() and (path / "dataset_dict.json").exists():
            return load_from_disk(str(path))[split]  # a DatasetDict saved to disk
        return load_dataset(source, split=split)
    except ConfigError:
        raise
    except Exception as exc:  # unknown name, offline, unreadable file: the user must change the source
        raise ConfigError(f"could not read prompts from {source!r} ({type(exc).__name__}: {exc}): give a .txt, "
                          ".jsonl, .csv or .parquet file, a saved dataset folder, or a Hub dataset name") from exc


def table_columns(source: str, split: str = "train") -> list[str]:
    """The columns a prompt column can be chosen from (empty for .txt/.jsonl, which have none to choose)."""
    if Path(source).suffix in (".txt", ".jsonl"):
        return []
    return list(load_table(source, split).column_names)


def read_prompts(source: str, column: str | None = None, split: str = "train") -> ReadPrompts:
    """Prompts from any supported source; `column` picks the table column (default: a usual name)."""
    if Path(source).suffix in (".txt", ".jsonl"):
        return ReadPrompts(load_prompt_file(Path(source)), None, [])
    table = load_table(source, split)
    column = column or next((c for c in LIKELY_COLUMNS if c in table.column_names), None)
    if column not in table.column_names:
        raise ConfigError(f"pick the prompt column: {source} has {', '.join(table.column_names)}")
    if len(table) > MAX_ROWS:
        raise ConfigError(f"{source} has {len(table)} rows (limit {MAX_ROWS}): select a subset first")
    prompts, skipped = [], []
    for n, cell in enumerate(table[column], 1):
        try:
            prompts.append(cell_prompt(cell))
        except ValueError as exc:
            skipped.append(f"row {n}: {exc}")
    if not prompts:
        raise ConfigError(f"column {column!r} of {source} holds no usable prompt ({'; '.join(skipped[:3])})")
    return ReadPrompts(prompts, column, skipped)


def cell_prompt(cell: object) -> Prompt:
    """One table cell as a prompt: text, or a conversation cut after its last user turn; ValueError says why not."""
    if isinstance(cell, str):
        if not cell.strip():
            raise ValueError("empty")
        if len(cell) > MAX_PROMPT_CHARS:
            raise ValueError(f"{len(cell)} characters (limit {MAX_PROMPT_CHARS})")
        return cell.strip()
    if isinstance(cell, list) and cell and all(isinstance(m, dict) for m in cell):
        messages = [_message(m) for m in cell]
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last_user is None:
            raise ValueError("a conversation without a user turn")
        return messages[: last_user + 1]
    raise ValueError(f"not text or a message list ({type(cell).__name__})")


def _message(m: dict) -> dict:
    if "role" in m and "content" in m:
        return {"role": str(m["role"]), "content": str(m["content"])}
    if "from" in m and "value" in m and m["from"] in SHAREGPT_ROLES:
        return {"role": SHAREGPT_ROLES[m["from"]], "content": str(m["value"])}
    raise ValueError(f"a message needs role/content (or ShareGPT from/value), got keys {sorted(m)}")


def skipped_text(skipped: list[str]) -> str:
    if not skipped:
        return ""
    more = f" and {len(skipped) - MAX_REPORTED} more" if len(skipped) > MAX_REPORTED else ""
    return f"skipped {len(skipped)} unusable row(s) ({'; '.join(skipped[:MAX_REPORTED])}{more})"
