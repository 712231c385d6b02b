"""Single-sided feedback: labelled completions (a prompt, one response, desirable or not) with provenance.

Where they come from (`source`): a thumbs up / down on a chat reply (`chat`), imported unpaired data
(`import:...`), or anything a caller names. Two more kinds are derived from votes rather than copied, so that
undoing a vote takes them back with it: a *both bad* vote makes its two responses undesirable, and a written
better response is desirable (`labelled_completions()` returns all of them together).

Dedup: one row per (prompt, completion, label, annotator). A chat rating is one per annotator and reply: a
second click replaces the first (thumbs up, then down, leaves one thumbs down).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefapp.store.records import _canonical, _check_annotator, _json_dict, _now, _utc, to_messages

MAX_REPORTED_ERRORS = 20
FEEDBACK_SOURCES_FROM_VOTES = ("both_bad", "written")  # derived from votes, never stored twice


@dataclass(frozen=True)
class LabelledCompletion:
    id: int | None  # None for a completion derived from a vote
    prompt: list[dict]
    completion: str
    label: bool  # True: desirable
    source: str  # 'chat', 'import:...', 'both_bad', 'written', ...
    annotator: str | None
    provenance: dict  # what produced it: model_id, adapter_id, vote_id, pair_id, dataset, row, ...
    created_at: datetime


@dataclass(frozen=True)
class AddCompletionsResult:
    added: int
    duplicates: int
    invalid: int
    errors: list[str]  # one line per invalid row (at most MAX_REPORTED_ERRORS), each naming the fix


_FEEDBACK_COLS = "id, prompt, completion, label, source, annotator, provenance, created_at"


def _feedback(row: tuple) -> LabelledCompletion:
    id_, prompt, completion, label, source, annotator, provenance, created_at = row
    return LabelledCompletion(id_, json.loads(prompt), completion, bool(label), source, annotator,
                              json.loads(provenance), _utc(created_at))


def _key(messages: list[dict], completion: str, annotator: str | None) -> str:
    """The dedup key: the label is not in it, so one annotator holds one opinion on one reply."""
    return hashlib.sha256(_canonical([messages, completion, annotator or ""]).encode()).hexdigest()


def _row(row: Any) -> tuple[list[dict], str, bool, dict]:
    """(prompt, completion, label, provenance) from a 4-tuple or a mapping with those keys; ValueError says why not."""
    if isinstance(row, Mapping):
        missing = [k for k in ("prompt", "completion", "label") if k not in row]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}: give prompt, completion and label (provenance optional)")
        prompt, completion, label, provenance = row["prompt"], row["completion"], row["label"], row.get("provenance")
    elif isinstance(row, Sequence) and not isinstance(row, str) and len(row) in (3, 4):
        prompt, completion, label, provenance = (*row, None) if len(row) == 3 else row
    else:
        raise ValueError("expected (prompt, completion, label, provenance) or a dict with those keys")
    if not isinstance(completion, str) or not completion.strip():
        raise ValueError("the completion is empty: a label needs a response to judge")
    if not isinstance(label, bool):
        raise ValueError(f"label must be True (desirable) or False (undesirable), got {label!r}")
    return to_messages(prompt), completion, label, dict(provenance or {})


class FeedbackStore:
    """Store methods for labelled completions; mixed into `Store` (uses its `_cur()` and `_write()`)."""

    def add_completions(self, rows: Iterable[Any], source: str, annotator: str | None = None) -> AddCompletionsResult:
        """Store labelled completions from one source, skipping invalid rows and ones already stored."""
        if not isinstance(source, str) or not source.strip():
            raise ValueError("source is empty: say where the feedback came from, e.g. 'import:kto.jsonl'")
        if source.strip() in FEEDBACK_SOURCES_FROM_VOTES:
            raise ValueError(f"source {source!r} is derived from votes: record a vote instead")
        annotator = None if annotator is None else _check_annotator(annotator)
        fresh: dict[str, tuple] = {}
        invalid, errors, batch_dups = 0, [], 0
        for i, row in enumerate(rows, 1):
            try:
                messages, completion, label, provenance = _row(row)
                provenance_json = _json_dict(provenance, "provenance")
            except ValueError as e:
                invalid += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(f"row {i}: {e}")
                continue
            key = _key(messages, completion, annotator)
            batch_dups += key in fresh
            fresh.setdefault(key, (json.dumps(messages, ensure_ascii=False), completion, label, provenance_json))
        if invalid > MAX_REPORTED_ERRORS:
            errors.append(f"... and {invalid - MAX_REPORTED_ERRORS} more invalid rows")
        added = 0
        if fresh:
            with self._write() as cur:
                stored = {k for (k,) in cur.execute(
                    "SELECT key FROM feedback WHERE list_contains(?::VARCHAR[], key)", [list(fresh)]).fetchall()}
                new = [(k, *v) for k, v in fresh.items() if k not in stored]
                now = _now()
                for key, prompt, completion, label, provenance in new:
                    cur.execute(
                        "INSERT INTO feedback (key, prompt, completion, label, source, annotator, provenance, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [key, prompt, completion, label, source.strip(), annotator, provenance, now])
                added = len(new)
        return AddCompletionsResult(added, batch_dups + len(fresh) - added, invalid, errors)

    def rate_completion(self, prompt: str | list[dict], completion: str, label: bool, annotator: str,
                        provenance: dict | None = None, source: str = "chat") -> LabelledCompletion:
        """An annotator's thumbs up (True) / down (False) on one reply; a second rating replaces the first."""
        annotator = _check_annotator(annotator)
        messages, completion, label, provenance = _row((prompt, completion, label, provenance))
        key, provenance_json = _key(messages, completion, annotator), _json_dict(provenance, "provenance")
        with self._write() as cur:
            cur.execute("DELETE FROM feedback WHERE key = ?", [key])
            row = cur.execute(
                "INSERT INTO feedback (key, prompt, completion, label, source, annotator, provenance, created_at) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_FEEDBACK_COLS}",
                [key, json.dumps(messages, ensure_ascii=False), completion, label, source, annotator,
                 provenance_json, _now()]).fetchone()
        return _feedback(row)

    def stored_completions(self, source: str | None = None) -> list[LabelledCompletion]:
        """Labelled completions stored directly (chat ratings, imports), oldest first; one `source` when given."""
        sql = f"SELECT {_FEEDBACK_COLS} FROM feedback"
        params: list = []
        if source is not None:
            sql, params = sql + " WHERE source = ?", [source]
        return [_feedback(r) for r in self._cur().execute(sql + " ORDER BY created_at, id", params).fetchall()]

    def completions_from_votes(self) -> list[LabelledCompletion]:
        """Both responses of every *both bad* vote (undesirable) and every written better response (desirable)."""
        rows = self._cur().execute(
            "SELECT v.id, v.pair_id, v.annotator, v.choice, v.prompt, v.response_a, v.response_b, v.model_id, "
            "v.adapter_id, v.created_at, n.written_chosen FROM votes v LEFT JOIN vote_notes n ON n.vote_id = v.id "
            "JOIN pairs p ON p.id = v.pair_id WHERE p.probe_of IS NULL "
            "AND (v.choice = 'both_bad' OR n.written_chosen IS NOT NULL) ORDER BY v.created_at, v.id").fetchall()
        out = []
        for vote_id, pair_id, annotator, choice, prompt, a, b, model_id, adapter_id, at, written in rows:
            messages, at = json.loads(prompt), _utc(at)
            prov = {"vote_id": vote_id, "pair_id": pair_id, "model_id": model_id, "adapter_id": adapter_id}
            if choice == "both_bad":
                for side, text in (("A", a), ("B", b)):
                    out.append(LabelledCompletion(None, messages, text, False, "both_bad", annotator,
                                                  {**prov, "side": side}, at))
            if written is not None:
                out.append(LabelledCompletion(None, messages, written, True, "written", annotator, prov, at))
        return out

    def labelled_completions(self) -> list[LabelledCompletion]:
        """Every labelled completion: stored ones (chat, imports) then those derived from votes."""
        return self.stored_completions() + self.completions_from_votes()

    def feedback_counts(self) -> dict[str, dict[str, int]]:
        """source -> {'desirable': n, 'undesirable': m} over every labelled completion."""
        counts: dict[str, dict[str, int]] = {}
        for c in self.labelled_completions():
            by_label = counts.setdefault(c.source, {"desirable": 0, "undesirable": 0})
            by_label["desirable" if c.label else "undesirable"] += 1
        return counts
