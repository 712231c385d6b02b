"""From votes to preference rows, with the team's choices made explicit and counted.

- Repeat probes are quality checks, not new data: their votes are always left out (and counted).
- Disagreement between annotators on one pair: `majority` keeps the pair's most common answer (a tied count
  drops the pair), `drop` keeps only pairs where everyone agreed, `all` keeps every vote as its own row.
  Answers are compared in the sample frame (prefapp.labeling.quality.sample_choice), so side swaps do not matter.
  The first vote (oldest) of the winning answer gives the row.
- Ties and both-bad: `drop` (no preference), or for both-bad `written` keeps the vote when the annotator wrote a
  better response: that response is `chosen` against each of the two bad ones.
- A human-written response replaces `chosen` (`written="use"`) and the row says so (`human_written`).
- Eval votes (blind comparisons on held-out prompts, prefapp.store.evals) are kept out unless an admin opts them in
  (`eval_votes=True`): then each decided eval vote (A or B) is a row, chosen the winning policy's answer, under the
  same disagreement rule; ties and both-bad are left out and counted (an eval vote has no written response). Every
  row then says where it came from (`origin`: vote, import or eval) and eval rows which policies won and lost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from datasets import Dataset, concatenate_datasets

from prefapp.config import ConfigError
from prefapp.store.counting import table_fingerprint
from prefapp.preferences.export import ExportCounts, ExportResult, save_export
from prefapp.preferences.pair_import import VOTE_PROVENANCE, with_imported

DISAGREEMENT = ("majority", "drop", "all")
SOURCES = ("votes", "imported", "both")
BOTH_BAD = ("drop", "written")
WRITTEN = ("use", "ignore")
EVAL_PROVENANCE = {"eval_chosen_policy": "", "eval_rejected_policy": "", "eval_judge": ""}  # blank: not an eval row


@dataclass(frozen=True)
class ExportOptions:
    disagreement: str = "majority"  # overlapped pairs: the majority answer; a split vote is dropped
    both_bad: str = "drop"  # "written": keep both-bad votes that came with a human-written response
    written: str = "use"  # a human-written response becomes `chosen`
    sources: str = "votes"  # rows from the app's votes, from imported preference pairs, or both
    imported_share: float | None = None  # with "both": imported rows are at most this share of the rows
    eval_votes: bool = False  # an admin's opt-in: decided eval votes become rows too (they judge held-out prompts)

    def validate(self) -> None:
        for name, allowed in (("disagreement", DISAGREEMENT), ("both_bad", BOTH_BAD), ("written", WRITTEN),
                              ("sources", SOURCES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")
        if self.imported_share is not None and not 0 < self.imported_share <= 1:
            raise ConfigError(f"imported_share={self.imported_share}: give a share above 0 and at most 1 (0.5: at "
                              "most half the rows imported), or none for no cap")


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
    rows: int  # imported rows included
    imported: int = 0  # rows from imported preference pairs (prefapp.preferences.pair_import)
    imported_capped: int = 0  # imported pairs left out by ExportOptions.imported_share
    eval_votes: int = 0  # with ExportOptions.eval_votes: every eval vote considered
    eval_rows: int = 0  # rows from decided eval votes (included in `rows`)
    eval_ties: int = 0  # left out: eval ties
    eval_both_bad: int = 0  # left out: eval both-bad votes
    eval_dropped: int = 0  # eval pairs dropped for disagreement

    def as_export_counts(self) -> ExportCounts:
        return ExportCounts(votes=self.votes + self.eval_votes, pairs=self.rows, ties=self.ties + self.eval_ties,
                            both_bad=self.both_bad + self.eval_both_bad)

    def summary(self) -> str:
        return (f"{self.rows} rows from {self.votes} votes on {self.pairs} pairs; left out: {self.ties} ties, "
                f"{self.both_bad} both bad, {self.probe_votes} repeat-probe votes, {self.dropped_disagreements} "
                f"pairs for disagreement (of {self.disagreeing_pairs} with disagreement); "
                f"{self.human_written} rows have a human-written chosen response."
                + (f" {self.imported} imported pairs included" if self.imported else "")
                + (f" ({self.imported_capped} imported pairs left out by the cap)" if self.imported_capped else "")
                + ("." if self.imported or self.imported_capped else "")
                + (f" Eval votes opted in: {self.eval_rows} rows from {self.eval_votes} eval votes (left out: "
                   f"{self.eval_ties} ties, {self.eval_both_bad} both bad, {self.eval_dropped} pairs for disagreement)."
                   if self.eval_votes else ""))


def preference_dataset(store, options: ExportOptions = ExportOptions(),
                       limit: int | None = None) -> tuple[Dataset, ResolveCounts]:
    """THE votes -> DPO dataset pipeline: every export and every training run (app, CLI, benches) calls this.

    DuckDB resolves the votes (prefapp.store.counting) and hands the rows over as Arrow, which becomes the
    `datasets.Dataset` without a Python object per row. `limit`: only the first rows (a preview); counts are
    always of everything.
    """
    options.validate()
    if not options.eval_votes:
        return _labelled(store, options, limit)
    dataset, counts = _with_eval_votes(store, *_labelled(store, options), options.disagreement)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset, counts


def _labelled(store, options: ExportOptions, limit: int | None = None) -> tuple[Dataset, ResolveCounts]:
    """The rows of the app's votes and/or the imported pairs (`options.sources`)."""
    args = (options.disagreement, options.both_bad, options.written)
    if options.sources == "votes":
        return _votes_dataset(store, args, limit)
    # Imported preference pairs (prefapp.preferences.pair_import), after the votes' rows when both are asked for.
    if options.sources == "both":
        votes, counts = _votes_dataset(store, args)
    else:
        votes, counts = Dataset.from_dict({}), ResolveCounts(*[0] * 9)
    share = options.imported_share if options.sources == "both" else None
    dataset, kept, capped = with_imported(store, votes, share)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset, replace(counts, rows=counts.rows + kept, imported=kept, imported_capped=capped)


def _with_eval_votes(store, dataset: Dataset, counts: ResolveCounts, disagreement: str
                     ) -> tuple[Dataset, ResolveCounts]:
    """`dataset` followed by the decided eval votes' rows; every row gets the provenance columns of both."""
    table = store.eval_preference_rows(disagreement)
    counts = replace(counts, **store.eval_preference_counts(disagreement))
    counts = replace(counts, rows=counts.rows + counts.eval_rows)
    evals = Dataset(table, fingerprint=table_fingerprint(table))
    if not len(dataset):
        return _provenance(evals), counts
    dataset = _provenance(dataset)
    return concatenate_datasets([dataset, _provenance(evals).cast(dataset.features)]), counts


def _provenance(dataset: Dataset) -> Dataset:
    """Every provenance column of votes, imports and eval votes, those a row's origin lacks filled with blanks."""
    blanks = {**VOTE_PROVENANCE, **EVAL_PROVENANCE}
    for column, value in blanks.items():
        if column not in dataset.column_names:
            dataset = dataset.add_column(column, [value] * len(dataset))
    return dataset.select_columns([*[c for c in dataset.column_names if c not in blanks], *blanks])


def _votes_dataset(store, args: tuple, limit: int | None = None) -> tuple[Dataset, ResolveCounts]:
    """The votes' rows as DuckDB hands them over (Arrow), fingerprinted by content (datasets would hash row by row),
    and their counts, from one resolution."""
    table, counts = store.preference_resolution(*args, limit=limit)
    return Dataset(table, fingerprint=table_fingerprint(table)), ResolveCounts(**counts)


def export_preferences(store, exports_dir: Path, name: str | None = None,
                       options: ExportOptions = ExportOptions()) -> ExportResult:
    """Resolve the store's votes under `options` and save them (save_to_disk + Parquet) as `exports_dir/<name>`."""
    dataset, counts = preference_dataset(store, options)
    result = save_export(dataset, counts.as_export_counts(), exports_dir, name)
    return replace(result, detail=counts.summary())
