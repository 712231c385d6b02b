"""Prompt sets from tables and datasets: .json, .jsonl, .csv, .parquet, a saved `datasets` folder, or a Hugging Face
dataset name.

.txt keeps its line-oriented reader (prefapp.preferences.prompts), and so does a .jsonl of {"prompt"} / {"messages"}
lines when no column is chosen. Otherwise a *column* holds the prompts, chosen by the user or guessed from the usual
names. A cell may be a string (one user turn), an Anthropic hh-rlhf dialogue ("\n\nHuman: ... \n\nAssistant: ...")
or a conversation: a list of {"role", "content"} messages, or ShareGPT's {"from", "value"}; a dialogue or
conversation ending in assistant turns is cut after its last user turn (the model answers that turn). An
OpenAssistant message table or tree gives its prompter messages, each with the conversation before it. A column of
answers (chosen, response, ...) of plain text is refused: answers are not prompts. Unusable rows are skipped and
reported with the reason; duplicates are left to the store, which counts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from prefapp.config import ConfigError
from prefapp.preferences.formats import RowError, Skipped, hh_messages, is_oasst, looks_hh, messages, oasst_prompts
from prefapp.preferences.prompts import MAX_PROMPT_CHARS, Prompt, cut_after_last_user, load_prompt_file

log = logging.getLogger(__name__)

LIKELY_COLUMNS = ("prompt", "messages", "conversations", "question", "instruction", "input", "text", "query")
ANSWER_COLUMNS = ("chosen", "rejected", "response", "responses", "completion", "completions", "output", "answer",
                  "answers", "reply", "target")  # hold answers; only a dialogue in them also holds its prompt
LINE_FORMAT_HINT = 'needs a "prompt" string'  # the line reader's refusal of a line of another shape
MAX_ROWS = 200_000  # a prompt set, not a pre-training corpus
MAX_REPORTED = 10  # reasons listed in the message; the count covers the rest


@dataclass(frozen=True)
class ReadPrompts:
    prompts: list[Prompt]
    column: str | None  # None for .txt/.jsonl
    skipped: list[str]  # "row 7: empty" ..., one per skipped row


def load_table(source: str, split: str = "train"):
    """The rows behind a .json/.jsonl/.csv/.parquet file, a save_to_disk folder or a Hub dataset name (a `Dataset`,
    or plain rows for JSON that Arrow cannot type)."""
    from datasets import Dataset, load_dataset, load_from_disk

    from prefapp.preferences.pair_import import load_json

    path = Path(source).expanduser()
    try:
        if path.suffix in (".json", ".jsonl") and path.is_file():
            return load_json(path)
        if path.suffix == ".csv" and path.is_file():
            return Dataset.from_csv(str(path))
        if path.suffix == ".parquet" and path.is_file():
            return Dataset.from_parquet(str(path))
        if path.is_dir() and (path / "dataset_info.json").exists():
            return load_from_disk(str(path))
        if path.is_dir() and (path / "dataset_dict.json").exists():
            return load_from_disk(str(path))[split]  # a DatasetDict saved to disk
        if path.suffix and not path.exists():
            raise ConfigError(f"{source} does not exist: give the path of a prompt file")
        return load_dataset(source, split=split)
    except ConfigError:
        raise
    except Exception as exc:  # unknown name, offline, unreadable file: the user must change the source
        raise ConfigError(f"could not read prompts from {source!r} ({type(exc).__name__}: {exc}): give a .txt, "
                          ".json, .jsonl, .csv or .parquet file, a saved dataset folder, or a Hub dataset "
                          "name") from exc


def table_columns(source: str, split: str = "train") -> list[str]:
    """The columns a prompt column can be chosen from (empty for .txt, which has none to choose)."""
    if Path(source).suffix == ".txt":
        return []
    return list(load_table(source, split).column_names)


def read_prompts(source: str, column: str | None = None, split: str = "train") -> ReadPrompts:
    """Prompts from any supported source; `column` picks the table column (default: a usual name)."""
    suffix = Path(source).suffix
    if suffix == ".txt" or (suffix == ".jsonl" and not column):
        try:
            return ReadPrompts(load_prompt_file(Path(source)), None, [])
        except ConfigError as exc:
            if suffix == ".txt" or LINE_FORMAT_HINT not in str(exc):
                raise  # broken JSON, encoding, size: the line reader's message is the precise one
    table = load_table(source, split)
    if len(table) > MAX_ROWS:
        raise ConfigError(f"{source} has {len(table)} rows (limit {MAX_ROWS}): select a subset first")
    rows = table.to_list()
    if not column and is_oasst(table.column_names, rows[0] if rows else {}):
        return _oasst(source, rows)
    column = column or next((c for c in (*LIKELY_COLUMNS, "chosen") if c in table.column_names), None)
    if column not in table.column_names:
        raise ConfigError(f"pick the prompt column: {source} has {', '.join(table.column_names)}")
    cells = [row.get(column) for row in rows]
    _refuse_answers(source, column, cells)
    prompts, skipped = [], []
    for n, cell in enumerate(cells, 1):
        try:
            prompts.append(cell_prompt(cell))
        except ValueError as exc:
            skipped.append(f"row {n}: {exc}")
    if not prompts:
        raise ConfigError(f"column {column!r} of {source} holds no usable prompt ({'; '.join(skipped[:3])})")
    return ReadPrompts(prompts, column, skipped)


def _refuse_answers(source: str, column: str, cells: list) -> None:
    """A column of answers is not a prompt set, unless its cells are dialogues that carry their prompt."""
    if column.lower() not in ANSWER_COLUMNS:
        return
    sample = [c for c in cells[:20] if c is not None]
    if sample and all(isinstance(c, str) and not looks_hh(c) for c in sample):
        raise ConfigError(f"column {column!r} of {source} holds answers, not prompts: pick the prompt column, or "
                          "import the file as preference pairs (Data tab: Import pairs; `prefapp import`). "
                          "Nothing was added.")


def _oasst(source: str, rows: list[dict]) -> ReadPrompts:
    prompts, skipped = [], []
    for out in oasst_prompts(rows):
        if isinstance(out, Skipped):
            skipped.append(f"row {out.row + 1}: {out.reason}")
        else:
            prompts.append(out[1] if len(out[1]) > 1 else out[1][0]["content"])
    if not prompts:
        raise ConfigError(f"{source} holds no prompter message ({'; '.join(skipped[:3])})")
    return ReadPrompts(prompts, "prompter messages", skipped)


def cell_prompt(cell: object) -> Prompt:
    """One table cell as a prompt: text, or a dialogue / conversation cut after its last user turn; ValueError says
    why not."""
    if isinstance(cell, str) and looks_hh(cell):
        cell = hh_messages(cell)
    if isinstance(cell, str):
        if not cell.strip():
            raise ValueError("empty")
        if len(cell) > MAX_PROMPT_CHARS:
            raise ValueError(f"{len(cell)} characters (limit {MAX_PROMPT_CHARS})")
        return cell.strip()
    if isinstance(cell, list) and cell and all(isinstance(m, dict) for m in cell):
        try:
            turns = messages(cell)
        except RowError as exc:
            raise ValueError(str(exc)) from None
        cut = cut_after_last_user(turns)
        if cut is None:
            raise ValueError("a conversation without a user turn")
        return cut
    raise ValueError(f"not text or a message list ({type(cell).__name__})")


def skipped_text(skipped: list[str]) -> str:
    if not skipped:
        return ""
    more = f" and {len(skipped) - MAX_REPORTED} more" if len(skipped) > MAX_REPORTED else ""
    return f"skipped {len(skipped)} unusable row(s) ({'; '.join(skipped[:MAX_REPORTED])}{more})"
