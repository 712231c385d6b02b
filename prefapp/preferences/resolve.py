"""From votes to preference rows, with the team's choices made explicit and counted.

- Repeat probes are quality checks, not new data: their votes are always left out (and counted).
- Disagreement between annotators on one pair: `majority` keeps the pair's most common answer (a tied count
  drops the pair), `drop` keeps only pairs where everyone agreed, `all` keeps every vote as its own row.
  Answers are compared in the sample frame (prefapp.labeling.quality.sample_choice), so side swaps do not matter.
- Ties and both-bad: `drop` (no preference), or for both-bad `written` keeps the vote when the annotator wrote a
  better response: that response is `chosen` against each of the two bad ones.
- A human-written response replaces `chosen` (`written="use"`) and the row says so (`human_written`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from datasets import Dataset

from prefapp.config import ConfigError
from prefapp.preferences.export import PREFERENCE_COLUMNS, ExportCounts, ExportResult, save_export
from prefapp.labeling.quality import sample_choice

DISAGREEMENT = ("majority", "drop", "all")
SOURCES = ("votes", "imported", "both")
BOTH_BAD = ("drop", "written")
WRITTEN = ("use", "ignore")


@dataclass(frozen=True)
class ExportOptions:
    disagreement: str = "majority"  # overlapped pairs: the majority answer; a split vote is dropped
    both_bad: str = "drop"  # "written": keep both-bad votes that came with a human-written response
    written: str = "use"  # a human-written response becomes `chosen`
    sources: str = "votes"  # rows from the app's votes, from imported preference pairs, or both

    def validate(self) -> None:
        for name, allowed in (("disagreement", DISAGREEMENT), ("both_bad", BOTH_BAD), ("written", WRITTEN),
                              ("sources", SOURCES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ResolveCounts:
    votes: int
    probe_votes: int  # left out: repeat probes
    pairs: int  # distinct pairs voted on (probes excluded)
    disagreeing_pairs: int  # pairs whose annotators did not all agree
    dropped_disagreements: int  # pairs dropped for disagreement (split majority, or `drop`)
    ties: int  # left out: no preference
    both_bad: int  # both-bad answers left out
    human_written: int  # rows whose `chosen` an annotator wrote
    rows: int

    def as_export_counts(self) -> ExportCounts:
        return ExportCounts(votes=self.votes, pairs=self.rows, ties=self.ties, both_bad=self.both_bad)

    def summary(self) -> str:
        return (f"{self.rows} rows from {self.votes} votes on {self.pairs} pairs; left out: {self.ties} ties, "
                f"{self.both_bad} both bad, {self.probe_votes} repeat-probe votes, {self.dropped_disagreements} "
                f"pairs for disagreement (of {self.disagreeing_pairs} with disagreement); "
                f"{self.human_written} rows have a human-written chosen response.")


def preference_dataset(store, options: ExportOptions = ExportOptions()) -> tuple[Dataset, ResolveCounts]:
    """THE votes -> DPO dataset pipeline: every export and every training run (app, CLI, benches) calls this."""
    options.validate()
    if options.sources != "votes":
        raise ConfigError(f"sources={options.sources!r}: imported preference pairs are not available yet; "
                          "use sources='votes'")
    return resolve(store.votes(), store.probe_links(), store.vote_notes(), options)


def export_preferences(store, exports_dir: Path, name: str | None = None,
                       options: ExportOptions = ExportOptions()) -> ExportResult:
    """Resolve the store's votes under `options` and save them (save_to_disk + Parquet) as `exports_dir/<name>`."""
    dataset, counts = preference_dataset(store, options)
    result = save_export(dataset, counts.as_export_counts(), exports_dir, name)
    return replace(result, detail=counts.summary())


def resolve(votes: Iterable, probe_links: dict[str, str], notes: dict[int, tuple[str | None, str | None]],
            options: ExportOptions = ExportOptions()) -> tuple[Dataset, ResolveCounts]:
    """Preference rows (prompt/chosen/rejected + provenance) and what was left out, under `options`."""
    options.validate()
    votes = list(votes)
    kept = [v for v in votes if v.pair_id not in probe_links]
    by_pair: dict[str, list] = defaultdict(list)
    for v in kept:
        by_pair[v.pair_id].append(v)
    rows, ties, both_bad, written_rows, disagreeing, dropped = [], 0, 0, 0, 0, 0
    for pair_votes in by_pair.values():
        frames = Counter(sample_choice(v.choice, v.swapped) for v in pair_votes)
        if len(frames) > 1:
            disagreeing += 1
        chosen_votes = _decide(pair_votes, frames, options.disagreement)
        if chosen_votes is None:
            dropped += 1
            continue
        for vote in chosen_votes:
            written = notes.get(vote.id, (None, None))[1] if options.written == "use" else None
            new_rows = _rows(vote, written, options)
            ties += vote.choice == "tie"
            both_bad += vote.choice == "both_bad" and not new_rows
            written_rows += sum(r["human_written"] for r in new_rows)
            rows += new_rows
    counts = ResolveCounts(len(votes), len(votes) - len(kept), len(by_pair), disagreeing, dropped, ties, both_bad,
                           written_rows, len(rows))
    if not rows:
        return Dataset.from_dict({c: [] for c in (*PREFERENCE_COLUMNS, "pair_id")}), counts
    return Dataset.from_list(rows), counts


def _decide(pair_votes: list, frames: Counter, disagreement: str) -> list | None:
    """The votes of one pair that become rows, or None when the pair is dropped."""
    if disagreement == "all" or len(frames) == 1:
        return pair_votes if disagreement == "all" else pair_votes[:1]
    if disagreement == "drop":
        return None
    (top, n), *rest = frames.most_common()
    if rest and rest[0][1] == n:
        return None  # no majority
    return [next(v for v in pair_votes if sample_choice(v.choice, v.swapped) == top)]


def _rows(vote, written: str | None, options: ExportOptions) -> list[dict]:
    prompt = [{"role": m["role"], "content": m["content"]} for m in vote.prompt]
    if vote.choice in ("A", "B"):
        winner, loser = (vote.response_a, vote.response_b) if vote.choice == "A" else (vote.response_b, vote.response_a)
        pairs = [(written or winner, loser)]
    elif vote.choice == "both_bad" and options.both_bad == "written" and written:
        pairs = [(written, vote.response_a), (written, vote.response_b)]
    else:
        return []
    return [{
        "prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}], "pair_id": vote.pair_id,
        "annotator": vote.annotator, "model_id": vote.model_id, "adapter_id": vote.adapter_id or "",
        "human_written": bool(written), "voted_at": vote.created_at.isoformat(),
    } for chosen, rejected in pairs]
