"""Slow reference implementations, kept as oracles: the Python that resolved votes and computed the quality figures
one vote object at a time, before DuckDB did it (prefapp.store.counting). The tests compare both on randomized
stores, so the SQL must give the same rows in the same order and the same figures."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from itertools import combinations
from typing import Iterable

from prefapp.labeling.quality import AnnotatorStats, PairAgreement, QualityReport, cohen_kappa, fleiss_kappa, sample_choice
from prefapp.preferences.resolve import ExportOptions, ResolveCounts
from prefapp.store import Store

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}
CHOICES = ("A", "B", "tie", "both_bad")


def random_store(store: Store, seed: int, n_pairs: int = 40, annotators: int = 5) -> None:
    """Votes as a busy team leaves them: overlaps (often disagreeing), repeat probes, ties, both-bad, notes."""
    rng = random.Random(seed)
    names = [f"ann{i}" for i in range(annotators)] + ["Zoë"]
    store.add_prompts([f"Question {i}?" for i in range(n_pairs // 2 + 1)], source="test")
    pairs = []
    for i in range(n_pairs):
        prompt = store.get_prompt(rng.randint(1, n_pairs // 2 + 1))
        pairs.append(store.add_pair(prompt, f"answer {i} one", f"answer {i} two", swapped=rng.random() < 0.5,
                                    model_id="m", adapter_id=rng.choice([None, "round-1"]), sampling=SAMPLING,
                                    served_to=rng.choice(names)))
    for pair in pairs:
        for name in rng.sample(names, rng.choice([1, 1, 2, 2, 3, 4])):
            choice = rng.choice(CHOICES)
            note = rng.random()
            written = f"written by {name}" if note < 0.3 and choice != "tie" else None
            store.record_vote(pair.id, choice, name, reason="because" if note > 0.8 else None, written=written)
            if rng.random() < 0.2:
                probe = store.add_probe(pair.id, name)
                if rng.random() < 0.8:
                    store.record_vote(probe.id, rng.choice(CHOICES), name)


def resolve_rows(votes: Iterable, probe_links: dict[str, str], notes: dict[int, tuple[str | None, str | None]],
            options: ExportOptions = ExportOptions()) -> tuple[list[dict], ResolveCounts]:
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
    return rows, counts


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


def labelling_progress(store: Store, overlap: int) -> tuple[int, int, int]:
    """The progress line as it was computed before the tallies: grouping every vote."""
    cur = store._cur()
    (prompts,) = cur.execute("SELECT count(*) FROM prompts").fetchone()
    (labelled,) = cur.execute("SELECT count(DISTINCT prompt_id) FROM votes").fetchone()
    (short,) = cur.execute(
        "SELECT count(*) FROM (SELECT v.pair_id FROM votes v JOIN pairs p ON p.id = v.pair_id "
        "WHERE p.probe_of IS NULL GROUP BY v.pair_id HAVING count(*) < ?)", [overlap]).fetchone()
    return prompts, labelled, short


def vote_counts(store: Store) -> tuple[dict, dict]:
    cur = store._cur()
    by_choice = dict.fromkeys(CHOICES, 0)
    by_choice.update(cur.execute("SELECT choice, count(*) FROM votes GROUP BY choice").fetchall())
    by_annotator = dict(cur.execute(
        "SELECT annotator, count(*) AS n FROM votes GROUP BY annotator ORDER BY n DESC, annotator").fetchall())
    return by_choice, by_annotator


def pair_for_overlap(store: Store, annotator: str, overlap: int) -> str | None:
    row = store._cur().execute(
        "SELECT p.id FROM pairs p JOIN votes v ON v.pair_id = p.id WHERE p.probe_of IS NULL "
        "AND p.served_to IS DISTINCT FROM ? GROUP BY p.id, p.created_at HAVING count(*) < ? "
        "AND count(*) FILTER (WHERE v.annotator = ?) = 0 ORDER BY p.created_at, p.id LIMIT 1",
        [annotator, overlap, annotator]).fetchone()
    return None if row is None else row[0]
