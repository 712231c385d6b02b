"""Why each served pair was chosen (coverage or active selection, with its margin) and how often the model
wrote the same response twice: the store side of prefapp.labeling.distinct and prefapp.labeling.active."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from prefapp.store.records import _now

SELECTIONS = ("coverage", "active")


@dataclass(frozen=True)
class PairOrigin:
    pair_id: str
    selection: str  # one of SELECTIONS
    margin: float | None  # implicit reward margin under margin_round (None: not scored)
    margin_round: int | None
    identical_draws: int  # same-response pairs drawn and replaced before this one
    second_temperature: float | None  # raised temperature of the second sample, if it was needed


@dataclass(frozen=True)
class IdenticalStats:
    served: int  # pairs served with an origin record (generated pairs; probes and overlap repeats excluded)
    resampled: int  # of those, pairs that replaced at least one same-response draw
    hotter: int  # of those, pairs whose second sample needed a raised temperature
    identical_draws: int  # same-response draws replaced in all
    dropped: int  # prompts given up because every draw was the same


@dataclass(frozen=True)
class SelectionMix:
    by_selection: dict[str, int]  # served pairs per selection, every one of SELECTIONS
    labelled: dict[str, int]  # of those, pairs with at least one vote
    mean_abs_margin: dict[str, float | None]  # over scored pairs of each selection

    @property
    def active_share(self) -> float | None:
        total = sum(self.by_selection.values())
        return self.by_selection["active"] / total if total else None


def insert_origin(cur: duckdb.DuckDBPyConnection, pair_id: str, origin: dict) -> None:
    """Record a served pair's origin inside the caller's transaction (Store.add_pair)."""
    selection = origin.get("selection", "coverage")
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r} is unknown: use one of {', '.join(SELECTIONS)}")
    cur.execute(
        "INSERT INTO pair_origin (pair_id, selection, margin, margin_round, identical_draws, second_temperature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [pair_id, selection, origin.get("margin"), origin.get("margin_round"), int(origin.get("identical_draws", 0)),
         origin.get("second_temperature")])


class SelectionStore:
    """Store methods for pair origins; mixed into `Store` (uses its `_cur()` and `_write()`)."""

    def pair_origin(self, pair_id: str) -> PairOrigin | None:
        """Why the pair was served, or None (a probe, an overlap repeat, or a pair from before origins existed)."""
        row = self._cur().execute(
            "SELECT pair_id, selection, margin, margin_round, identical_draws, second_temperature FROM pair_origin "
            "WHERE pair_id = ?", [pair_id]).fetchone()
        return None if row is None else PairOrigin(*row)

    def record_identical_dropped(self, prompt_ids: list[int], adapter_id: str | None, draws: int) -> None:
        """Prompts given up for a batch because the model wrote the same response on every draw."""
        if not prompt_ids:
            return
        now = _now()
        with self._write() as cur:
            for prompt_id in prompt_ids:
                cur.execute("INSERT INTO identical_dropped (prompt_id, adapter_id, draws, created_at) "
                            "VALUES (?, ?, ?, ?)", [prompt_id, adapter_id, draws, now])

    def identical_stats(self) -> IdenticalStats:
        """How often same-response pairs were drawn, replaced, fixed by temperature, or given up."""
        cur = self._cur()
        served, resampled, hotter, draws = cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE identical_draws > 0), "
            "count(*) FILTER (WHERE second_temperature IS NOT NULL), coalesce(sum(identical_draws), 0) "
            "FROM pair_origin").fetchone()
        (dropped,) = cur.execute("SELECT count(*) FROM identical_dropped").fetchone()
        return IdenticalStats(served, resampled, hotter, int(draws), dropped)

    def selection_mix(self) -> SelectionMix:
        """Served and labelled pairs per selection (coverage / active) and their mean |margin|."""
        rows = self._cur().execute(
            "SELECT o.selection, count(*), count(*) FILTER (WHERE EXISTS "
            "(SELECT 1 FROM votes v WHERE v.pair_id = o.pair_id)), avg(abs(o.margin)) "
            "FROM pair_origin o GROUP BY o.selection").fetchall()
        served, labelled = dict.fromkeys(SELECTIONS, 0), dict.fromkeys(SELECTIONS, 0)
        margins: dict[str, float | None] = dict.fromkeys(SELECTIONS)
        for selection, n, voted, mean in rows:
            served[selection], labelled[selection], margins[selection] = n, voted, mean
        return SelectionMix(served, labelled, margins)
