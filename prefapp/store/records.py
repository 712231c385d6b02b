"""What the store returns (frozen dataclasses: a caller cannot change a stored fact by mutating a result), the
column lists and row converters kept beside them, and the input checks every write goes through."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from prefapp.config import CHOICES

ROLES = ("system", "user", "assistant")  # chat-template roles a stored prompt may use
MAX_ANNOTATOR_LEN = 100  # long enough for "name (team)", short enough for a leaderboard cell
MAX_REPORTED_ERRORS = 20  # a 10k-line bad file should not produce a 10k-line warning

# ---------------------------------------------------------------------------------------------
# What the store returns. Frozen: a caller cannot change a stored fact by mutating a result.


@dataclass(frozen=True)
class Prompt:
    id: int
    messages: list[dict]
    source: str
    created_at: datetime

    @property
    def text(self) -> str:
        """The last user message: what the prompt asks."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


@dataclass(frozen=True)
class AddPromptsResult:
    added: int
    duplicates: int
    invalid: int
    errors: list[str]  # one line per invalid prompt (at most MAX_REPORTED_ERRORS), each naming the fix


@dataclass(frozen=True)
class Pair:
    id: str
    prompt_id: int
    prompt: list[dict]
    response_a: str
    response_b: str
    swapped: bool
    model_id: str
    adapter_id: str | None
    sampling: dict
    served_to: str | None
    created_at: datetime


@dataclass(frozen=True)
class Vote:
    id: int
    pair_id: str
    annotator: str
    choice: str
    prompt_id: int
    prompt: list[dict]
    response_a: str
    response_b: str
    swapped: bool
    model_id: str
    adapter_id: str | None
    sampling: dict
    shown_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    created: bool  # False: this annotator had already voted on the pair; `vote` is that first vote
    counts: VoteCounts  # everyone's and the voter's votes as of the COMMIT that answered this vote


@dataclass(frozen=True)
class VoteCounts:
    total: int
    by_choice: dict[str, int]  # every choice in CHOICES, zeros included
    by_annotator: dict[str, int]
    mine: int  # votes of the annotator asked about (0 when none was given)


@dataclass(frozen=True)
class Round:
    id: int
    status: str
    base_model: str
    adapter_path: str | None
    export_path: str | None
    n_pairs: int
    config: dict
    metrics: dict | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    provenance: dict | None = None  # dataset_sha256, counts, export_path, output_dir, resumes (see the service)


# ---------------------------------------------------------------------------------------------
# Column lists and row -> dataclass, kept side by side so they cannot drift apart.

_PROMPT_COLS = "id, messages, source, created_at"
_PAIR_COLS = (
    "id, prompt_id, prompt, response_a, response_b, swapped, model_id, adapter_id, sampling, served_to, created_at"
)
_VOTE_COLS = (
    "id, pair_id, annotator, choice, prompt_id, prompt, response_a, response_b, swapped, model_id, adapter_id, "
    "sampling, shown_at, created_at"
)
_ROUND_COLS = (
    "id, status, base_model, adapter_path, export_path, n_pairs, config, metrics, error, started_at, finished_at, "
    "provenance"
)


def _prompt(row: tuple) -> Prompt:
    id_, messages, source, created_at = row
    return Prompt(id_, json.loads(messages), source, _utc(created_at))


def _pair(row: tuple) -> Pair:
    id_, prompt_id, prompt, a, b, swapped, model_id, adapter_id, sampling, served_to, created_at = row
    return Pair(id_, prompt_id, json.loads(prompt), a, b, swapped, model_id, adapter_id, json.loads(sampling),
                served_to, _utc(created_at))


def _vote(row: tuple) -> Vote:
    id_, pair_id, annotator, choice, prompt_id, prompt, a, b, swapped, model_id, adapter_id, sampling, shown, at = row
    return Vote(id_, pair_id, annotator, choice, prompt_id, json.loads(prompt), a, b, swapped, model_id, adapter_id,
                json.loads(sampling), _utc(shown), _utc(at))


def _round(row: tuple) -> Round:
    id_, status, base, adapter, export, n_pairs, config, metrics, error, started, finished, provenance = row
    return Round(id_, status, base, adapter, export, n_pairs, json.loads(config),
                 None if metrics is None else json.loads(metrics), error, _utc(started),
                 None if finished is None else _utc(finished), None if provenance is None else json.loads(provenance))



# ---------------------------------------------------------------------------------------------
# Small helpers.


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(ts: datetime) -> datetime:
    # DuckDB hands TIMESTAMPTZ back in the session's time zone; callers always get UTC.
    return ts.astimezone(timezone.utc)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def to_messages(prompt: str | list[dict]) -> list[dict]:
    """Turn a prompt (plain text or chat messages) into clean chat messages, or raise ValueError saying why not."""
    if isinstance(prompt, str):
        text = prompt.strip()
        if not text:
            raise ValueError("empty prompt: write some text, or drop the line")
        return [{"role": "user", "content": text}]
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(f"expected text or a non-empty list of {{role, content}} messages, "
                         f"got {type(prompt).__name__}")
    messages = []
    for i, m in enumerate(prompt, 1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} must be a dict with a string 'content'")
        if m.get("role") not in ROLES:
            raise ValueError(f"message {i} has role {m.get('role')!r}: use one of {', '.join(ROLES)}")
        messages.append({"role": m["role"], "content": m["content"]})
    if messages[-1]["role"] != "user":
        raise ValueError("the last message must be the user turn the model answers: drop the trailing "
                         f"{messages[-1]['role']} message")
    if not messages[-1]["content"].strip():
        raise ValueError("the last user message is empty: write the question")
    return messages


def _check_choice(choice: str) -> str:
    if choice not in CHOICES:
        raise ValueError(f"choice {choice!r} is not a valid answer: use one of {', '.join(CHOICES)}")
    return choice


def _check_annotator(annotator: str) -> str:
    name = annotator.strip() if isinstance(annotator, str) else ""
    if not name:
        raise ValueError("annotator name is empty: enter your name (1-100 characters) before voting")
    if len(name) > MAX_ANNOTATOR_LEN:
        raise ValueError(f"annotator name is {len(name)} characters long: use at most {MAX_ANNOTATOR_LEN}")
    return name


def _json_dict(value: dict, what: str) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return _canonical(value)
    except TypeError as e:
        raise ValueError(f"{what} must hold only JSON values (str, number, bool, list, dict): {e}") from e


def prompt_hash(messages: list[dict]) -> str:
    """The stable hash of a prompt: sha256 of its canonical JSON (what `prompts.hash` stores)."""
    return hashlib.sha256(_canonical(messages).encode()).hexdigest()


@dataclass(frozen=True)
class ParsedPrompts:
    fresh: dict[str, str]  # hash -> messages JSON, in input order, each prompt once
    batch_duplicates: int  # prompts repeated within this batch
    invalid: int
    errors: list[str]  # one line per invalid prompt (at most MAX_REPORTED_ERRORS), then a count of the rest


def parse_prompts(prompts: Sequence[str | list[dict]], source: str, what: str = "prompts") -> ParsedPrompts:
    """Check a batch of prompts for a store write: clean messages keyed by hash, invalid ones counted with reasons."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source is empty: say where the {what} came from, e.g. 'typed' or 'file:x.jsonl'")
    fresh: dict[str, str] = {}
    invalid, errors, batch_dups = 0, [], 0
    for i, prompt in enumerate(prompts, 1):
        try:
            messages = to_messages(prompt)
        except ValueError as e:
            invalid += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"prompt {i}: {e}")
            continue
        digest = prompt_hash(messages)
        batch_dups += digest in fresh
        fresh.setdefault(digest, json.dumps(messages, ensure_ascii=False))
    if invalid > MAX_REPORTED_ERRORS:
        errors.append(f"... and {invalid - MAX_REPORTED_ERRORS} more invalid prompts")
    return ParsedPrompts(fresh, batch_dups, invalid, errors)
