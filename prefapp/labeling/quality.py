"""How much the labels can be trusted: per-annotator habits, agreement between annotators, self-consistency.

Everything is computed from the votes' snapshots, in the *sample* frame: a vote for side A of a swapped pair is a
vote for the generate call's 2nd sample. So two annotators who saw the same pair with different sides (or one
annotator who saw a repeat probe with sides swapped) are compared on what they preferred, not where it was.

- position bias: the share of "A" among A/B picks; sides are random, so far from 50% means the side mattered;
- agreement on overlapped pairs (pairs voted by 2+ annotators): percent of agreeing annotator pairs, Fleiss'
  kappa over all such pairs, Cohen's kappa for each two annotators with shared pairs;
- consistency: on repeat probes, how often an annotator gave the same answer to the same pair twice.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Iterable

CATEGORIES = ("first", "second", "tie", "both_bad")  # a vote in the sample frame


@dataclass(frozen=True)
class AnnotatorStats:
    annotator: str
    votes: int
    share_a: float | None  # share of "A" among A/B picks (None: no A/B pick)
    median_s: float | None  # median seconds from the pair being shown to the vote
    tie_rate: float
    both_bad_rate: float
    probes: int  # repeat probes answered
    consistency: float | None  # share of probes answered like the original (None: no probe yet)


@dataclass(frozen=True)
class PairAgreement:
    annotator_1: str
    annotator_2: str
    shared: int  # pairs both voted on
    agreement: float
    cohen_kappa: float | None  # None when undefined (both always gave the same single answer)


@dataclass(frozen=True)
class QualityReport:
    annotators: list[AnnotatorStats]
    votes: int
    overlapped_pairs: int  # pairs with 2+ annotators
    percent_agreement: float | None  # over all annotator pairs on overlapped pairs
    fleiss_kappa: float | None
    pairwise: list[PairAgreement]
    probes: int
    consistency: float | None


def sample_choice(choice: str, swapped: bool) -> str:
    """A vote in the sample frame: which of the generate call's two samples won (or tie / both_bad)."""
    if choice == "A":
        return "second" if swapped else "first"
    if choice == "B":
        return "first" if swapped else "second"
    return choice


def fleiss_kappa(items: list[list[str]], categories: tuple[str, ...] = CATEGORIES) -> float | None:
    """Fleiss' kappa for items rated by 2+ raters each (the rater count may vary per item)."""
    items = [ratings for ratings in items if len(ratings) >= 2]
    if not items:
        return None
    p_items, totals = [], Counter()
    for ratings in items:
        n, counts = len(ratings), Counter(ratings)
        totals.update(counts)
        p_items.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
    n_ratings = sum(totals.values())
    p_bar = sum(p_items) / len(p_items)
    p_e = sum((totals[c] / n_ratings) ** 2 for c in categories)
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def cohen_kappa(pairs: list[tuple[str, str]], categories: tuple[str, ...] = CATEGORIES) -> float | None:
    """Cohen's kappa for two raters' labels on the same items."""
    if not pairs:
        return None
    n = len(pairs)
    p_o = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_e = sum(first[c] * second[c] for c in categories) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def quality_report(votes: Iterable, probe_links: dict[str, str]) -> QualityReport:
    """The Quality view's figures from store votes and the probe -> original pair map."""
    votes = list(votes)
    probe_ids = set(probe_links)
    regular = [v for v in votes if v.pair_id not in probe_ids]
    consistency = _consistency(votes, probe_links)
    stats = [_annotator_stats(name, [v for v in votes if v.annotator == name], consistency.get(name, []))
             for name in sorted({v.annotator for v in votes})]
    by_pair: dict[str, dict[str, str]] = defaultdict(dict)
    for v in regular:
        by_pair[v.pair_id][v.annotator] = sample_choice(v.choice, v.swapped)
    overlapped = [labels for labels in by_pair.values() if len(labels) >= 2]
    agree = [a == b for labels in overlapped for a, b in combinations(labels.values(), 2)]
    all_probe = [same for checks in consistency.values() for same in checks]
    return QualityReport(
        annotators=stats, votes=len(votes), overlapped_pairs=len(overlapped),
        percent_agreement=sum(agree) / len(agree) if agree else None,
        fleiss_kappa=fleiss_kappa([list(labels.values()) for labels in overlapped]),
        pairwise=_pairwise(overlapped), probes=len(all_probe),
        consistency=sum(all_probe) / len(all_probe) if all_probe else None,
    )


def _annotator_stats(name: str, votes: list, checks: list[bool]) -> AnnotatorStats:
    n = len(votes)
    picks = Counter(v.choice for v in votes)
    ab = picks["A"] + picks["B"]
    seconds = [(v.created_at - v.shown_at).total_seconds() for v in votes]
    return AnnotatorStats(
        name, n, picks["A"] / ab if ab else None, statistics.median(seconds) if seconds else None,
        picks["tie"] / n if n else 0.0, picks["both_bad"] / n if n else 0.0, len(checks),
        sum(checks) / len(checks) if checks else None,
    )


def _consistency(votes: list, probe_links: dict[str, str]) -> dict[str, list[bool]]:
    """annotator -> for each answered probe, whether it matched their vote on the original (sample frame)."""
    frame = {(v.pair_id, v.annotator): sample_choice(v.choice, v.swapped) for v in votes}
    checks: dict[str, list[bool]] = defaultdict(list)
    for v in votes:
        original = probe_links.get(v.pair_id)
        if original is not None and (original, v.annotator) in frame:
            checks[v.annotator].append(frame[(original, v.annotator)] == frame[(v.pair_id, v.annotator)])
    return checks


def _pairwise(overlapped: list[dict[str, str]]) -> list[PairAgreement]:
    shared: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for labels in overlapped:
        for a, b in combinations(sorted(labels), 2):
            shared[(a, b)].append((labels[a], labels[b]))
    return [PairAgreement(a, b, len(pairs), sum(x == y for x, y in pairs) / len(pairs), cohen_kappa(pairs))
            for (a, b), pairs in sorted(shared.items())]
