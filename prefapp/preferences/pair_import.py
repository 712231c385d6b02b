"""Bring your own preference data: read a file, a saved dataset or a Hub dataset, detect its format, parse it into
pairs (prefapp.preferences.formats) and store them with their provenance in one transaction.

Sources: .json (an array or JSON lines), .jsonl, .csv, .parquet, a `save_to_disk` folder, or a Hub dataset id,
all read with `datasets`. Nothing is written until the whole source parsed; rows that cannot become a pair are
skipped and counted by reason, the first one of each reason quoted. A re-import adds nothing (see store/imports.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from prefapp.errors import ConfigError
from prefapp.preferences.formats import FORMATS, ParsedCompletion, ParsedPair, Skipped, detect, format_names

log = logging.getLogger(__name__)

MAX_ROWS = 2_000_000  # a preference set, even a large public one, is well under this
SAMPLE_ROWS = 3  # parsed rows shown before anything is written
DETECT_ROWS = 20  # rows looked at to detect the format
QUOTE_CHARS = 160  # how much of a skipped row is quoted
COMPRESSED = (".gz", ".bz2", ".xz", ".zst")  # as published (hh-rlhf, OpenAssistant trees): read as they are


@dataclass(frozen=True)
class Source:
    name: str  # provenance: the file name, or the Hub id with its split
    sha256: str  # of the bytes read (every file of a folder, the downloaded files of a Hub dataset)
    columns: list[str]
    rows: list[dict]


@dataclass(frozen=True)
class Parsed:
    source: Source
    format: str
    why: str  # what about the data decided the format ("given" when the user named it)
    items: list  # ParsedPair or ParsedCompletion
    skipped: list[Skipped]

    @property
    def paired(self) -> bool:
        return FORMATS[self.format].paired

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped).most_common())

    def examples(self) -> dict[str, str]:
        """reason -> the first skipped row of that reason, quoted."""
        out: dict[str, str] = {}
        for s in self.skipped:
            if s.reason not in out:
                rows = self.source.rows
                out[s.reason] = f"row {s.row}: {_quote(rows[s.row]) if s.row < len(rows) else ''}"
        return out

    def sample(self, n: int = SAMPLE_ROWS) -> list[dict]:
        """The first parsed rows as plain dicts, as they will be stored."""
        return [_plain(item) for item in self.items[:n]]


@dataclass(frozen=True)
class ImportReport:
    source: str
    format: str
    rows: int  # rows read from the source
    added: int
    duplicates: int  # already stored (a re-import) or repeated within the source
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the first such row, quoted
    kind: str = "pairs"  # or "labelled completions" (KTO shape, stored as single-sided feedback)

    def as_dict(self) -> dict:
        return {"source": self.source, "format": self.format, "kind": self.kind, "rows": self.rows,
                "added": self.added, "duplicates": self.duplicates, "skipped": self.skipped,
                "skipped_examples": self.examples}

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = "; ".join(f"{n} {reason} (e.g. {self.examples.get(reason, '')})"
                            for reason, n in self.skipped.items())
        return (f"{self.source} read as {self.format}: added {self.added} {self.kind}, {self.duplicates} duplicate(s), "
                f"skipped {skipped} row(s)" + (f": {reasons}" if reasons else "") + ".")


# ---------------------------------------------------------------------------------------------
# Reading.


def read_source(source: str, split: str = "train") -> Source:
    """The rows of a .json/.jsonl/.csv/.parquet file, a saved dataset folder or a Hub dataset, with their sha256."""
    source = (source or "").strip()
    if not source:
        raise ConfigError("no source given: name a .json, .jsonl, .csv or .parquet file, a saved dataset folder or a "
                          "Hub dataset id")
    path = Path(source).expanduser()
    dataset = _load(source, path, split)
    if len(dataset) > MAX_ROWS:
        raise ConfigError(f"{source} has {len(dataset)} rows (limit {MAX_ROWS}): select a subset first")
    if len(dataset) == 0:
        raise ConfigError(f"{source} holds no rows: check the file or the split ({split!r})")
    if path.exists():
        name, digest = path.name, _sha256_files([path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                                                       if p.is_file()))
    else:
        name = f"{source}:{split}"
        digest = _sha256_files([Path(f["filename"]) for f in dataset.cache_files])
    return Source(name, digest, list(dataset.column_names), dataset.to_list())


def _load(source: str, path: Path, split: str):
    from datasets import Dataset, load_dataset, load_from_disk

    suffix = path.suffix.lower()
    if suffix in COMPRESSED and len(path.suffixes) > 1:
        suffix = path.suffixes[-2].lower()  # data.jsonl.gz reads as .jsonl (datasets decompresses)
    try:
        if path.is_file():
            if suffix in (".json", ".jsonl"):
                return load_json(path)
            if suffix == ".csv":
                return load_dataset("csv", data_files=str(path), split="train")
            if suffix == ".parquet":
                return Dataset.from_parquet(str(path))
            raise ConfigError(f"{path.name}: unsupported file type {suffix or '(none)'}: give a .json, .jsonl, "
                              ".csv or .parquet file (.gz, .bz2, .xz or .zst compressed JSON or CSV too)")
        if path.is_dir() and (path / "dataset_info.json").exists():
            return load_from_disk(str(path))
        if path.is_dir() and (path / "dataset_dict.json").exists():
            saved = load_from_disk(str(path))
            if split not in saved:
                raise ConfigError(f"{path.name} has no split {split!r}: pick one of {', '.join(saved)}")
            return saved[split]
        if suffix or path.is_absolute() or source.startswith("."):
            raise ConfigError(f"{source} does not exist: give the path of a file or a saved dataset folder")
        return load_dataset(source, split=split)
    except ConfigError:
        raise
    except Exception as exc:  # unknown name, offline, unreadable file: the user must change the source
        raise ConfigError(f"could not read {source!r} ({type(exc).__name__}: {exc}): give a .json, .jsonl, .csv or "
                          ".parquet file, a saved dataset folder, or a Hub dataset id (online)") from exc


def load_json(path: Path):
    """JSON lines or a JSON array; when Arrow cannot give the rows one schema (OpenAssistant trees nest replies to
    any depth), the rows are read as plain JSON instead."""
    from datasets import load_dataset

    try:
        return load_dataset("json", data_files=str(path), split="train")
    except Exception as exc:
        log.info("datasets could not read %s (%s); reading it as plain JSON", path, exc)
    text = _read_text(path)
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                         if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid JSON or JSON lines ({exc.msg} at line {exc.lineno}): fix or "
                          "remove that line") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path.name}: expected one JSON object per row (an array of objects, or JSON lines)")
    return _PlainRows(rows)


def _read_text(path: Path) -> str:
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower())
    if path.suffix.lower() == ".zst":
        raise ConfigError(f"{path.name}: datasets could not read it and plain JSON needs it decompressed: "
                          "run `zstd -d` on it first")
    try:
        if opener is None:
            return path.read_text(encoding="utf-8-sig")
        with opener(path, "rt", encoding="utf-8-sig") as f:
            return f.read()
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise ConfigError(f"{path.name} is not UTF-8 JSON text ({exc}): re-save it as UTF-8 JSON lines") from exc


class _PlainRows:
    """The few `Dataset` members read_source uses, over rows Arrow could not type."""

    cache_files: list = []

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.column_names = list(dict.fromkeys(k for r in rows for k in r))

    def __len__(self) -> int:
        return len(self.rows)

    def to_list(self) -> list[dict]:
        return self.rows


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Parsing and storing.


def parse_source(source: Source, format: str = "auto") -> Parsed:
    """Detect (or take) the format and parse every row; nothing is stored."""
    format = (format or "auto").strip()
    if format == "auto":
        format, why = detect(source.columns, source.rows[:DETECT_ROWS])
    elif format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}: use auto or one of {format_names()}")
    else:
        why = "given"
    items, skipped = [], []
    for out in FORMATS[format].parse(source.rows):
        (skipped if isinstance(out, Skipped) else items).append(out)
    if not items:
        reasons = "; ".join(f"{n} {r}" for r, n in Counter(s.reason for s in skipped).most_common(5))
        raise ConfigError(f"no usable row in {source.name} read as {format} ({reasons or 'no rows'}); columns found: "
                          f"{', '.join(source.columns)}. Pick the right --format (one of {format_names()}) or fix "
                          "the rows. Nothing was written.")
    return Parsed(source, format, why, items, skipped)


def preview(source: str, split: str = "train", format: str = "auto") -> Parsed:
    """Read and parse without writing: the detected format and the rows it gives."""
    return parse_source(read_source(source, split), format)


def store_parsed(store, parsed: Parsed) -> ImportReport:
    """Write the parsed rows in one transaction: pairs to imported_pairs, labelled completions to feedback."""
    src = parsed.source
    if parsed.paired:
        rows = [(p.prompt, p.chosen, p.rejected, p.row) for p in parsed.items]
        result = store.add_imported_pairs(rows, source=src.name, format=parsed.format, file_sha256=src.sha256)
        added, duplicates, kind = result.added, result.duplicates, "pairs"
    else:
        rows = [{"prompt": c.prompt, "completion": c.completion, "label": c.label,
                 "provenance": {"dataset": src.name, "format": parsed.format, "row": c.row,
                                "file_sha256": src.sha256}} for c in parsed.items]
        result = store.add_completions(rows, source=f"import:{src.name}"[:200])
        added, duplicates, kind = result.added, result.duplicates, "labelled completions"
    skipped, examples = parsed.skipped_by_reason(), parsed.examples()
    for error in getattr(result, "errors", []):  # rows the store refused (its rules are the final word)
        reason = error.split(": ", 1)[-1]
        skipped[reason] = skipped.get(reason, 0) + 1
        examples.setdefault(reason, error)
    report = ImportReport(src.name, parsed.format, len(src.rows), added, duplicates, skipped, examples, kind)
    log.info("%s", report.summary())
    return report


def import_source(store, source: str, split: str = "train", format: str = "auto") -> ImportReport:
    """Read, parse and store one source: the user intent behind `prefapp import` and the Data tab's import."""
    return store_parsed(store, preview(source, split, format))


def _plain(item: ParsedPair | ParsedCompletion) -> dict:
    if isinstance(item, ParsedPair):
        return {"row": item.row, "prompt": item.prompt, "chosen": item.chosen, "rejected": item.rejected}
    return {"row": item.row, "prompt": item.prompt, "completion": item.completion, "label": item.label}


def _quote(row: dict) -> str:
    text = json.dumps(row, ensure_ascii=False, default=str)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


# ---------------------------------------------------------------------------------------------
# Into the one pipeline (prefapp.preferences.resolve.preference_dataset): imported rows beside the votes' rows.

VOTE_PROVENANCE = {"origin": "vote", "import_source": "", "import_format": "", "import_row": -1, "import_sha256": ""}


def with_imported(store, votes, share: float | None = None, seed: int = 0) -> tuple[object, int, int]:
    """The votes' rows plus the imported pairs, these at most `share` of the result (a seeded random subset when the
    cap bites): (dataset, imported rows kept, imported rows left out by the cap). Every row gets the provenance
    columns origin ('vote' or 'import'), import_source, import_format, import_row and import_sha256."""
    import random

    from datasets import Dataset, concatenate_datasets

    imported = Dataset(store.imported_pairs_table())
    total = keep = len(imported)
    if share is not None and share < 1:
        keep = min(total, int(share * len(votes) / (1 - share)))
    if keep < total:
        imported = imported.select(sorted(random.Random(seed).sample(range(total), keep)))
    if not len(votes):
        return imported, keep, total - keep
    for column, value in VOTE_PROVENANCE.items():
        votes = votes.add_column(column, [value] * len(votes))
    if not keep:
        return votes, 0, total
    return concatenate_datasets([votes, imported.cast(votes.features)]), keep, total - keep


def conversational(dataset) -> bool:
    """Whether a prompt/chosen/rejected dataset is in the conversational shape prefapp trains on."""
    if not len(dataset):
        return True
    row = dataset[0]
    return all(isinstance(row[c], list) and row[c] and isinstance(row[c][0], dict) for c in ("prompt", "chosen",
                                                                                           "rejected"))


def as_training_rows(parsed: Parsed):
    """Parsed pairs of any format as the conversational prompt/chosen/rejected rows DPO trains on."""
    from datasets import Dataset

    if not parsed.paired:
        raise ConfigError(f"{parsed.source.name} holds labelled completions ({parsed.format}), not pairs: DPO needs "
                          "pairs; import it with `prefapp import` for the feedback store instead")
    if parsed.skipped:
        log.warning("%s: %d row(s) skipped (%s)", parsed.source.name, len(parsed.skipped),
                    json.dumps(parsed.skipped_by_reason()))
    return Dataset.from_list([{"prompt": p.prompt, "chosen": [{"role": "assistant", "content": p.chosen}],
                               "rejected": [{"role": "assistant", "content": p.rejected}]} for p in parsed.items])
