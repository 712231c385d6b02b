"""Quality figures: kappas against hand-computed values, and a report over real votes in a real store."""

from __future__ import annotations

import pytest

from prefapp.labeling.quality import cohen_kappa, fleiss_kappa, quality_report, sample_choice
from prefapp.store import Store
from tests import oracle

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}


def test_sample_choice_undoes_the_side_swap():
    assert sample_choice("A", swapped=False) == "first" and sample_choice("A", swapped=True) == "second"
    assert sample_choice("B", swapped=False) == "second" and sample_choice("B", swapped=True) == "first"
    assert sample_choice("tie", swapped=True) == "tie"


def test_kappas_match_hand_computed_values():
    # Two raters, 4 items: agree on 3. p_o = .75; marginals r1 {first 2, second 2}, r2 {first 3, second 1}
    # p_e = (2*3 + 2*1) / 16 = .5 -> kappa = (.75 - .5) / .5 = .5
    pairs = [("first", "first"), ("first", "first"), ("second", "second"), ("second", "first")]
    assert cohen_kappa(pairs) == pytest.approx(0.5)
    # Fleiss on the same items (2 raters each): P_i = 1,1,1,0 -> P_bar .75; p_j = 5/8, 3/8 -> P_e = 34/64
    assert fleiss_kappa([list(p) for p in pairs]) == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64))
    assert fleiss_kappa([["tie", "tie"], ["tie", "tie"]]) is None  # undefined: no variation at all
    assert cohen_kappa([]) is None and fleiss_kappa([["first"]]) is None


def test_report_over_real_votes(tmp_path):
    with Store(tmp_path / "q.duckdb") as store:
        store.add_prompts(["Q1", "Q2"], source="test")
        p1, p2 = (store.add_pair(store.get_prompt(i), "x", "y", swapped=i == 2, model_id="m", adapter_id=None,
                                 sampling=SAMPLING, served_to="ann") for i in (1, 2))
        store.record_vote(p1.id, "A", "ann")
        store.record_vote(p1.id, "A", "bob")  # agrees with ann
        store.record_vote(p2.id, "B", "ann")
        store.record_vote(p2.id, "A", "bob")  # disagrees
        probe = store.add_probe(p1.id, "ann")  # sides swapped: the same preference is now "B"
        assert (probe.response_a, probe.response_b, probe.swapped) == ("y", "x", True)
        store.record_vote(probe.id, "B", "ann")
        report = quality_report(store)
    assert (report.votes, report.overlapped_pairs, report.percent_agreement) == (5, 2, 0.5)
    assert (report.probes, report.consistency) == (1, 1.0)
    ann, bob = report.annotators
    assert (ann.annotator, ann.votes, ann.probes, ann.consistency) == ("ann", 3, 1, 1.0)
    assert ann.share_a == pytest.approx(1 / 3)
    assert (bob.votes, bob.share_a, bob.tie_rate) == (2, 1.0, 0.0)
    assert ann.median_s is not None and ann.median_s >= 0
    [pair] = report.pairwise
    assert (pair.annotator_1, pair.annotator_2, pair.shared, pair.agreement) == ("ann", "bob", 2, 0.5)


def approx_report(report):
    """A report with its floats wrapped for comparison: DuckDB sums in another order than Python's loop."""
    from dataclasses import asdict

    return {k: pytest.approx(v, rel=1e-12, abs=1e-12) if isinstance(v, float) else v
            for k, v in asdict(report).items() if k not in ("annotators", "pairwise")}


@pytest.mark.parametrize("seed", range(5))
def test_sql_figures_match_the_python_oracle_on_random_stores(tmp_path, seed):
    with Store(tmp_path / "random.duckdb") as store:
        oracle.random_store(store, seed, n_pairs=60)
        got = quality_report(store)
        expected = oracle.quality_report(store.votes(), store.probe_links())
    assert got.overlapped_pairs > 5 and got.probes > 0  # the random store exercises every figure
    assert approx_report(got) == approx_report(expected)
    for mine, theirs in zip(got.annotators, expected.annotators, strict=True):
        assert mine.annotator == theirs.annotator and mine.median_s == pytest.approx(theirs.median_s, abs=1e-6)
        assert (mine.votes, mine.share_a, mine.tie_rate, mine.both_bad_rate, mine.probes, mine.consistency) == (
            theirs.votes, theirs.share_a, theirs.tie_rate, theirs.both_bad_rate, theirs.probes, theirs.consistency)
    assert got.pairwise == expected.pairwise  # integer counts: exactly the same kappas
