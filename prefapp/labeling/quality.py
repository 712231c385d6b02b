"""How much the labels can be trusted: per-annotator habits, agreement between annotators, self-consistency.

Everything is computed from the votes' snapshots (DuckDB aggregates them: prefapp.store.counting), in the *sample* frame: a vote for side A of a swapped pair is a
vote for the generate call's 2nd sample. So two annotators who saw the same pair with different sides (or one
annotator who saw a repeat probe with sides swapped) are compared on what they preferred, not where it was.

- position bias: the share of "A" among A/B picks; sides are random, so far from 50% means the side mattered;
- agreement on overlapped pairs (pairs voted by 2+ annotators): percent of agreeing annotator pairs, Fleiss'
  kappa over all such pairs, Cohen's kappa for each two annotators with shared pairs;
- consistency: on repeat probes, how often an annotator gave the same answer to the same pair twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

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


def quality_report(store) -> QualityReport:
    """The Quality view's figures, from a few aggregate rows DuckDB computes over all votes (prefapp.store.counting)."""
    figures = store.quality_figures()
    checks = figures["probe_checks"]
    stats = []
    for name, n, a, ab, median_s, ties, both_bad in figures["annotators"]:
        probes, same = checks.get(name, (0, 0))
        stats.append(AnnotatorStats(name, n, a / ab if ab else None, median_s, ties / n if n else 0.0,
                                    both_bad / n if n else 0.0, probes, same / probes if probes else None))
    stats.sort(key=lambda s: s.annotator)  # Python's order, whatever the database's collation
    items = figures["items"]
    probes = sum(n for n, _ in checks.values())
    return QualityReport(
        annotators=stats, votes=sum(s.votes for s in stats), overlapped_pairs=items["items"],
        percent_agreement=items["agreeing"] / items["rater_pairs"] if items["rater_pairs"] else None,
        fleiss_kappa=_fleiss_from_totals(items), pairwise=_pairwise(figures["pairwise"]), probes=probes,
        consistency=sum(same for _, same in checks.values()) / probes if probes else None,
    )


def _fleiss_from_totals(items: dict) -> float | None:
    """fleiss_kappa's formula from its sums: items, the sum of per-item agreement, and category totals."""
    if not items["items"]:
        return None
    n_ratings = sum(items[c] for c in CATEGORIES)
    p_bar = items["p_sum"] / items["items"]
    p_e = sum((items[c] / n_ratings) ** 2 for c in CATEGORIES)
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def _pairwise(rows: list[tuple]) -> list[PairAgreement]:
    """Agreement and Cohen's kappa per two annotators from counts of (answer of one, answer of the other)."""
    shared: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for a, b, x, y, n in rows:
        shared[(a, b)][(x, y)] = n
    result = []
    for (a, b), table in sorted(shared.items()):
        n = sum(table.values())
        agree = sum(k for (x, y), k in table.items() if x == y)
        first, second = Counter(), Counter()
        for (x, y), k in table.items():
            first[x] += k
            second[y] += k
        p_e = sum(first[c] * second[c] for c in CATEGORIES) / (n * n)
        kappa = None if p_e == 1 else (agree / n - p_e) / (1 - p_e)
        result.append(PairAgreement(a, b, n, agree / n, kappa))
    return result
