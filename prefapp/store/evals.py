"""The evaluation tables of the store: held-out prompts, blind eval pairs and votes, post-round checks and the
promotions the gate let through. A mixin of `Store` (same connection, cursors and write lock).

Eval prompts live in their own table, so no labelling query can ever serve one; a prompt is in one set or the
other (the same sha256 as `prompts.hash` decides). Eval votes live in their own table, so no training export can
pick one up by accident.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prefapp.store.counting import _ISO
from prefapp.store.records import (_PROMPT_COLS, Prompt, _check_annotator, _check_choice, _json_dict, _now, _prompt,
                                   _utc, parse_prompts)
from prefapp.store.records import prompt_hash  # noqa: F401 - evaluation.heldout reads it from here

JUDGES = ("human", "simulated")  # who voted: a person in the Evaluate tab, or the demo task's simulated annotator


@dataclass(frozen=True)
class EvalPromptsResult:
    added: int
    duplicates: int  # already eval prompts
    in_labelling: int  # already labelling prompts: not added, they would not be held out
    invalid: int
    errors: list[str]


@dataclass(frozen=True)
class EvalPair:
    id: str
    eval_prompt_id: int
    prompt: list[dict]
    policy_a: str  # shown on side A
    policy_b: str  # shown on side B
    response_a: str
    response_b: str
    swapped: bool  # the comparison's first policy is on side B
    model_id: str
    sampling: dict  # temperature, top_p, max_new_tokens; backend and backend_model: where the answers were generated
    served_to: str | None
    created_at: datetime


@dataclass(frozen=True)
class EvalVote:
    id: int
    pair_id: str
    annotator: str
    judge: str
    choice: str
    eval_prompt_id: int
    prompt: list[dict]
    policy_a: str
    policy_b: str
    response_a: str
    response_b: str
    swapped: bool
    model_id: str
    sampling: dict
    shown_at: datetime
    created_at: datetime

    @property
    def backend(self) -> str:
        """Where both answers were generated: 'local' or the engine's URL (recorded with the sampling settings)."""
        return self.sampling.get("backend", "local")

    @property
    def winner(self) -> str | None:
        """The policy judged better, None for a tie or both bad."""
        return {"A": self.policy_a, "B": self.policy_b}.get(self.choice)


_EVAL_PAIR_COLS = ("id, eval_prompt_id, prompt, policy_a, policy_b, response_a, response_b, swapped, model_id, "
                   "sampling, served_to, created_at")
_EVAL_VOTE_COLS = ("id, pair_id, annotator, judge, choice, eval_prompt_id, prompt, policy_a, policy_b, response_a, "
                   "response_b, swapped, model_id, sampling, shown_at, created_at")


def _eval_pair(row: tuple) -> EvalPair:
    *head, prompt, pa, pb, ra, rb, swapped, model_id, sampling, served_to, at = row
    return EvalPair(*head, json.loads(prompt), pa, pb, ra, rb, swapped, model_id, json.loads(sampling), served_to,
                    _utc(at))


def _eval_vote(row: tuple) -> EvalVote:
    *head, prompt, pa, pb, ra, rb, swapped, model_id, sampling, shown, at = row
    return EvalVote(*head, json.loads(prompt), pa, pb, ra, rb, swapped, model_id, json.loads(sampling), _utc(shown),
                    _utc(at))


# Decided eval votes as preference rows (an admin's opt-in: prefapp.preferences.resolve), under the labelling votes'
# disagreement rule ($rule: majority, drop or all). An eval pair's sides are fixed for everyone who votes on it, so
# answers compare as they are. `chosen` holds the vote that speaks for each kept pair (every vote, with `all`).
_EVAL_CHOSEN = """
WITH ev AS (SELECT id, pair_id, choice, row_number() OVER (ORDER BY created_at, id) AS seq FROM eval_votes),
answers AS (SELECT pair_id, choice, count(*) AS n, min(seq) AS seq, arg_min(id, seq) AS id FROM ev
            GROUP BY pair_id, choice),
ranked AS (SELECT *, count(*) OVER w AS n_answers, max(n) OVER w AS top, min(seq) OVER w AS pair_seq FROM answers
           WINDOW w AS (PARTITION BY pair_id)),
tops AS (SELECT *, sum((n = top)::INT) OVER (PARTITION BY pair_id) AS n_top FROM ranked),
chosen AS (
    SELECT ev.id, ev.pair_id, ev.choice, p.pair_seq, ev.seq
    FROM ev JOIN (SELECT DISTINCT pair_id, pair_seq FROM tops) p USING (pair_id) WHERE $rule = 'all'
    UNION ALL
    SELECT id, pair_id, choice, pair_seq, seq FROM tops
    WHERE n = top AND (($rule = 'majority' AND n_top = 1) OR ($rule = 'drop' AND n_answers = 1))
)"""
_EVAL_ROWS = _EVAL_CHOSEN + f"""
SELECT from_json(v.prompt, '[{{"role": "VARCHAR", "content": "VARCHAR"}}]') AS prompt,
       [{{'role': 'assistant', 'content': CASE v.choice WHEN 'A' THEN v.response_a ELSE v.response_b END}}] AS chosen,
       [{{'role': 'assistant', 'content': CASE v.choice WHEN 'A' THEN v.response_b ELSE v.response_a END}}] AS rejected,
       v.pair_id, v.annotator, v.model_id, '' AS adapter_id, false AS human_written, {_ISO} AS voted_at,
       'eval' AS origin, CASE v.choice WHEN 'A' THEN v.policy_a ELSE v.policy_b END AS eval_chosen_policy,
       CASE v.choice WHEN 'A' THEN v.policy_b ELSE v.policy_a END AS eval_rejected_policy, v.judge AS eval_judge
FROM chosen c JOIN eval_votes v ON v.id = c.id WHERE c.choice IN ('A', 'B') ORDER BY c.pair_seq, c.seq"""
_EVAL_COUNTS = _EVAL_CHOSEN + """
SELECT (SELECT count(*) FROM eval_votes) AS eval_votes,
       (SELECT count(DISTINCT pair_id) FROM eval_votes) - count(DISTINCT pair_id) AS eval_dropped,
       count(*) FILTER (WHERE choice IN ('A', 'B')) AS eval_rows, count(*) FILTER (WHERE choice = 'tie') AS eval_ties,
       count(*) FILTER (WHERE choice = 'both_bad') AS eval_both_bad
FROM chosen"""


class EvalStore:
    """Store methods for evaluation; mixed into `Store`, which provides `_cur()` and `_write()`."""

    # -- eval prompts --------------------------------------------------------------------------

    def add_eval_prompts(self, prompts: Sequence[str | list[dict]], source: str) -> EvalPromptsResult:
        """Store held-out prompts; ones already stored (in either set) and invalid ones are skipped and counted."""
        parsed = parse_prompts(prompts, source, what="eval prompts")
        fresh, batch_dups, invalid, errors = parsed.fresh, parsed.batch_duplicates, parsed.invalid, parsed.errors
        if not fresh:
            return EvalPromptsResult(0, batch_dups, 0, invalid, errors)
        with self._write() as cur:
            hashes = list(fresh)
            stored = {h for (h,) in cur.execute(
                "SELECT hash FROM eval_prompts WHERE list_contains(?::VARCHAR[], hash)", [hashes]).fetchall()}
            labelling = {h for (h,) in cur.execute(
                "SELECT hash FROM prompts WHERE list_contains(?::VARCHAR[], hash)", [hashes]).fetchall()}
            new = [(h, m) for h, m in fresh.items() if h not in stored and h not in labelling]
            if new:
                cur.execute("INSERT INTO eval_prompts (hash, messages, source, created_at) "
                            "SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])::JSON, ?, ?",
                            [[h for h, _ in new], [m for _, m in new], source.strip(), _now()])
        return EvalPromptsResult(len(new), batch_dups + len(stored), len(labelling - stored), invalid, errors)

    def held_out_hashes(self, hashes: Sequence[str]) -> set[str]:
        """Which of these prompt hashes are eval prompts (a labelling import must skip them)."""
        rows = self._cur().execute("SELECT hash FROM eval_prompts WHERE list_contains(?::VARCHAR[], hash)",
                                   [list(hashes)]).fetchall()
        return {h for (h,) in rows}

    def eval_prompt_count(self) -> int:
        """How many held-out prompts are stored."""
        return self._cur().execute("SELECT count(*) FROM eval_prompts").fetchone()[0]

    def eval_prompts(self, limit: int | None = None) -> list[Prompt]:
        """Eval prompts in id order (the first `limit`), e.g. for the automatic checks."""
        sql = f"SELECT {_PROMPT_COLS} FROM eval_prompts ORDER BY id" + (" LIMIT ?" if limit else "")
        return [_prompt(r) for r in self._cur().execute(sql, [limit] if limit else []).fetchall()]

    def least_compared_eval_prompts(self, policies: tuple[str, str], limit: int, pending: dict[int, int],
                                    rng: random.Random) -> list[Prompt]:
        """Up to `limit` eval prompts with the fewest pairs of these two policies so far (`pending` counted too)."""
        first, second = sorted(policies)
        rows = self._cur().execute(
            "SELECT e.id, count(p.id) FROM eval_prompts e LEFT JOIN eval_pairs p ON p.eval_prompt_id = e.id "
            "AND least(p.policy_a, p.policy_b) = ? AND greatest(p.policy_a, p.policy_b) = ? GROUP BY e.id",
            [first, second]).fetchall()
        keyed = sorted((n + pending.get(pid, 0), rng.random(), pid) for pid, n in rows)
        ids = [pid for _, _, pid in keyed[:limit]]
        if not ids:
            return []
        found = self._cur().execute(f"SELECT {_PROMPT_COLS} FROM eval_prompts WHERE list_contains(?::BIGINT[], id)",
                                    [ids]).fetchall()
        by_id = {row[0]: _prompt(row) for row in found}
        return [by_id[pid] for pid in ids]

    # -- eval pairs and votes ------------------------------------------------------------------

    def add_eval_pair(self, prompt: Prompt, policy_a: str, policy_b: str, response_a: str, response_b: str,
                      swapped: bool, model_id: str, sampling: dict, served_to: str | None) -> EvalPair:
        """Record an eval pair exactly as it is about to be shown (policy_a's answer on side A)."""
        sampling_json = _json_dict(sampling, "sampling")
        with self._write() as cur:
            row = cur.execute("SELECT messages FROM eval_prompts WHERE id = ?", [prompt.id]).fetchone()
            if row is None:
                raise ValueError(f"unknown eval prompt id {prompt.id}: take prompts from the eval set")
            pair = EvalPair(uuid.uuid4().hex, prompt.id, json.loads(row[0]), policy_a, policy_b, response_a,
                            response_b, bool(swapped), model_id, json.loads(sampling_json),
                            (served_to or "").strip() or None, _now())
            cur.execute(f"INSERT INTO eval_pairs ({_EVAL_PAIR_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [pair.id, pair.eval_prompt_id, row[0], policy_a, policy_b, response_a, response_b,
                         pair.swapped, model_id, sampling_json, pair.served_to, pair.created_at])
        return pair

    def get_eval_pair(self, pair_id: str) -> EvalPair | None:
        """The eval pair with this id, or None."""
        row = self._cur().execute(f"SELECT {_EVAL_PAIR_COLS} FROM eval_pairs WHERE id = ?", [pair_id]).fetchone()
        return None if row is None else _eval_pair(row)

    def record_eval_vote(self, pair_id: str, choice: str, annotator: str, judge: str = "human"
                         ) -> tuple[EvalVote, bool]:
        """Store a judge's answer on an eval pair once, with a snapshot of what was shown; (vote, created)."""
        choice, annotator = _check_choice(choice), _check_annotator(annotator)
        if judge not in JUDGES:
            raise ValueError(f"judge {judge!r} is unknown: use one of {', '.join(JUDGES)}")
        with self._write() as cur:
            row = cur.execute(f"SELECT {_EVAL_VOTE_COLS} FROM eval_votes WHERE pair_id = ? AND annotator = ?",
                              [pair_id, annotator]).fetchone()
            if row is not None:
                return _eval_vote(row), False
            (vote_id,) = cur.execute(
                "INSERT INTO eval_votes (pair_id, annotator, judge, choice, eval_prompt_id, prompt, policy_a, "
                "policy_b, response_a, response_b, swapped, model_id, sampling, shown_at, created_at) "
                "SELECT id, ?, ?, ?, eval_prompt_id, prompt, policy_a, policy_b, response_a, response_b, swapped, "
                "model_id, sampling, created_at, ? FROM eval_pairs WHERE id = ? RETURNING id",
                [annotator, judge, choice, _now(), pair_id]).fetchone() or (None,)
            if vote_id is None:
                raise ValueError(f"unknown eval pair {pair_id!r}: it is not in this database; fetch a new one")
            row = cur.execute(f"SELECT {_EVAL_VOTE_COLS} FROM eval_votes WHERE id = ?", [vote_id]).fetchone()
        return _eval_vote(row), True

    def eval_votes(self, judge: str | None = None) -> list[EvalVote]:
        """Every eval vote, oldest first; only one judge's ('human' or 'simulated') when given."""
        where, params = ("WHERE judge = ?", [judge]) if judge else ("", [])
        rows = self._cur().execute(f"SELECT {_EVAL_VOTE_COLS} FROM eval_votes {where} ORDER BY created_at, id",
                                   params).fetchall()
        return [_eval_vote(r) for r in rows]

    def eval_vote_count(self, annotator: str | None = None) -> int:
        """Eval votes in all, or by one annotator."""
        if annotator:
            return self._cur().execute("SELECT count(*) FROM eval_votes WHERE annotator = ?",
                                       [annotator]).fetchone()[0]
        return self._cur().execute("SELECT count(*) FROM eval_votes").fetchone()[0]

    def eval_preference_rows(self, disagreement: str):
        """Decided eval votes (A or B) as preference rows in the export's shape, as Arrow, oldest pair first, with
        their provenance: origin 'eval', the chosen and rejected policies, the judge kind."""
        with self._cur().cursor() as cur:
            return cur.sql(_EVAL_ROWS, params={"rule": disagreement}).to_arrow_table()

    def eval_preference_counts(self, disagreement: str) -> dict[str, int]:
        """What the opt-in adds and leaves out: eval votes, pairs dropped for disagreement, rows, ties, both bad."""
        cur = self._cur().execute(_EVAL_COUNTS, {"rule": disagreement})
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchall()[0]))

    # -- post-round checks and promotions ------------------------------------------------------

    def set_round_checks(self, round_id: int, checks: dict) -> None:
        """Record (or replace) a round's automatic checks."""
        checks_json = _json_dict(checks, "checks")
        with self._write() as cur:
            cur.execute("DELETE FROM round_checks WHERE round_id = ?", [round_id])
            cur.execute("INSERT INTO round_checks (round_id, checks, created_at) VALUES (?, ?, ?)",
                        [round_id, checks_json, _now()])

    def round_checks(self, round_id: int) -> dict | None:
        """A round's automatic checks, or None when they have not run."""
        row = self._cur().execute("SELECT checks FROM round_checks WHERE round_id = ?", [round_id]).fetchone()
        return None if row is None else json.loads(row[0])

    def record_promotion(self, round_id: int, admin: str | None, verdict: str, flags: list[str],
                         confirmed: bool) -> None:
        """Record that a round was made the generator, with the verdict and flags the gate saw."""
        with self._write() as cur:
            cur.execute("INSERT INTO promotions (round_id, admin, verdict, flags, confirmed, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [round_id, admin, verdict, json.dumps(flags), bool(confirmed), _now()])

    def promotions(self) -> list[dict]:
        """Every promotion through the gate, oldest first."""
        rows = self._cur().execute("SELECT round_id, admin, verdict, flags, confirmed, created_at FROM promotions "
                                   "ORDER BY id").fetchall()
        return [{"round_id": r, "admin": a, "verdict": v, "flags": json.loads(f), "confirmed": c, "at": _utc(t)}
                for r, a, v, f, c, t in rows]
