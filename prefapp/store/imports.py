"""Imported preference pairs: pairs someone else labelled, kept beside the votes with where each came from.

A pair is stored once: its key is the sha256 of (prompt, chosen, rejected), so importing the same file again,
or the same pair from another file, adds nothing. Each row keeps its provenance: the source (file name or Hub
dataset id), the format it was read as, its row in that source and the sha256 of the source's bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prefapp.store.records import _canonical, _now, _utc, to_messages

IMPORTED_COLUMNS = ("prompt", "chosen", "rejected", "source", "format", "source_row", "file_sha256")


@dataclass(frozen=True)
class ImportedPair:
    id: int
    prompt: list[dict]
    chosen: str
    rejected: str
    source: str  # file name or Hub dataset id (with its split)
    format: str  # the format it was read as (prefapp.preferences.formats)
    source_row: int  # 0-based row of the source table
    file_sha256: str  # of the source's bytes (every file of a folder or a Hub download)
    created_at: datetime


@dataclass(frozen=True)
class AddImportedResult:
    added: int
    duplicates: int  # already stored (a re-import) or twice in this batch


_COLS = "id, prompt, chosen, rejected, source, format, source_row, file_sha256, created_at"


def pair_key(prompt: list[dict], chosen: str, rejected: str) -> str:
    """What makes two imported pairs the same pair."""
    return hashlib.sha256(_canonical([prompt, chosen, rejected]).encode()).hexdigest()


class ImportStore:
    """Store methods for imported pairs; mixed into `Store` (uses its `_cur()` and `_write()`)."""

    def add_imported_pairs(self, rows: Sequence[tuple[list[dict], str, str, int]], source: str, format: str,
                           file_sha256: str) -> AddImportedResult:
        """Store the (prompt, chosen, rejected, source_row) rows of one import in one transaction; pairs already
        stored are skipped and counted."""
        if not source.strip() or not format.strip():
            raise ValueError("an import needs its source and format: say where the pairs came from")
        fresh: dict[str, tuple] = {}
        for prompt, chosen, rejected, row in rows:
            messages = to_messages(prompt)
            if not chosen.strip() or not rejected.strip() or chosen == rejected:
                raise ValueError(f"row {row}: chosen and rejected must be two different non-empty responses")
            fresh.setdefault(pair_key(messages, chosen, rejected),
                             (json.dumps(messages, ensure_ascii=False), chosen, rejected, int(row)))
        new: list[tuple] = []
        with self._write() as cur:
            if fresh:
                stored = {k for (k,) in cur.execute("SELECT hash FROM imported_pairs WHERE hash IN "
                                                    "(SELECT unnest(?::VARCHAR[]))", [list(fresh)]).fetchall()}
                new = [(k, *v) for k, v in fresh.items() if k not in stored]
            if new:
                columns = list(zip(*new))
                cur.execute(
                    "INSERT INTO imported_pairs (hash, prompt, chosen, rejected, source_row, source, format, "
                    "file_sha256, created_at) SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])::JSON, "
                    "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]), ?, ?, ?, ?",
                    [*map(list, columns), source.strip(), format, file_sha256, _now()])
        return AddImportedResult(len(new), len(rows) - len(new))

    def imported_pairs(self, source: str | None = None) -> list[ImportedPair]:
        """Imported pairs in the order they were imported; those of one `source` when given."""
        where, params = ("WHERE source = ?", [source]) if source is not None else ("", [])
        rows = self._cur().execute(f"SELECT {_COLS} FROM imported_pairs {where} ORDER BY id", params).fetchall()
        return [ImportedPair(i, json.loads(p), c, r, s, f, n, h, _utc(at)) for i, p, c, r, s, f, n, h, at in rows]

    def imported_counts(self) -> dict[str, int]:
        """source -> imported pairs, largest first."""
        return dict(self._cur().execute(
            "SELECT source, count(*) AS n FROM imported_pairs GROUP BY source ORDER BY n DESC, source").fetchall())
