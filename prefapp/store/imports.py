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

from prefapp.store.records import _ROUND_COLS, Round, _canonical, _json_dict, _now, _round, _utc, to_messages

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
        if new:
            self.checkpoint()  # an import can be large: into the .duckdb file now, not only the log
        return AddImportedResult(len(new), len(rows) - len(new))

    def imported_pairs(self, source: str | None = None) -> list[ImportedPair]:
        """Imported pairs in the order they were imported; those of one `source` when given."""
        where, params = ("WHERE source = ?", [source]) if source is not None else ("", [])
        rows = self._cur().execute(f"SELECT {_COLS} FROM imported_pairs {where} ORDER BY id", params).fetchall()
        return [ImportedPair(i, json.loads(p), c, r, s, f, n, h, _utc(at)) for i, p, c, r, s, f, n, h, at in rows]

    def imported_pairs_table(self):
        """Every imported pair as a pyarrow Table in the DPO row shape of prefapp.preferences.resolve (conversational
        prompt/chosen/rejected, the vote provenance columns empty) plus where each pair came from."""
        return self._cur().sql(
            "SELECT prompt::STRUCT(role VARCHAR, content VARCHAR)[] AS prompt, "
            "[{'role': 'assistant', 'content': chosen}] AS chosen, [{'role': 'assistant', 'content': rejected}] "
            "AS rejected, 'import-' || id AS pair_id, '' AS annotator, '' AS model_id, '' AS adapter_id, "
            "false AS human_written, strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f') || '+00:00' "
            "AS voted_at, 'import' AS origin, source AS import_source, format AS import_format, "
            "source_row AS import_row, file_sha256 AS import_sha256 FROM imported_pairs ORDER BY id").to_arrow_table()

    def imported_counts(self) -> dict[str, int]:
        """source -> imported pairs, largest first."""
        return dict(self._cur().execute(
            "SELECT source, count(*) AS n FROM imported_pairs GROUP BY source ORDER BY n DESC, source").fetchall())

    def add_finished_round(self, base_model: str, adapter_path: str, config: dict, metrics: dict, provenance: dict,
                           n_pairs: int = 0) -> Round:
        """Record an adapter trained outside the app (`prefapp train`, another machine) as the next finished round."""
        config_json, metrics_json = _json_dict(config, "config"), _json_dict(metrics, "metrics")
        provenance_json = _json_dict(provenance, "provenance")
        with self._write() as cur:
            known = cur.execute("SELECT id FROM rounds WHERE adapter_path = ? AND status = 'finished'",
                                [adapter_path]).fetchone()
            if known is not None:
                raise ValueError(f"{adapter_path} is already round {known[0]}: nothing was added")
            (round_id,) = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM rounds").fetchone()
            now = _now()
            cur.execute(
                "INSERT INTO rounds (id, status, base_model, adapter_path, export_path, n_pairs, config, metrics, "
                "started_at, finished_at, provenance) VALUES (?, 'finished', ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                [round_id, base_model, adapter_path, n_pairs, config_json, metrics_json, now, now, provenance_json])
            added = _round(cur.execute(f"SELECT {_ROUND_COLS} FROM rounds WHERE id = ?", [round_id]).fetchone())
        self.checkpoint()  # a round's record goes into the .duckdb file, not only the log
        return added
