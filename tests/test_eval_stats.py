"""Evaluation statistics against hand-computed values, an independent algorithm and synthetic tournaments."""

import math

import numpy as np
import pytest

from prefapp.evaluation.stats import (WinRate, bradley_terry, length_controlled_win_rate, verdict, votes_needed,
                                      wilson_interval)


def test_wilson_interval_known_values():
    # statsmodels.stats.proportion.proportion_confint(60, 100, method="wilson") = (0.502002, 0.690599)
    low, high = wilson_interval(60, 100)
    assert low == pytest.approx(0.502002, abs=1e-5) and high == pytest.approx(0.690599, abs=1e-5)
    # 0 of 10: (0, z^2 / (n + z^2)) = (0, 0.277533)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.959964 ** 2 / (10 + 1.959964 ** 2), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_win_rate_counts_only_decided_comparisons():
    win = WinRate(wins=30, losses=10, ties=60)
    assert win.n == 100 and win.decided == 40 and win.rate == 0.75
    assert win.interval == wilson_interval(30, 40)


def _mm_reference(wins: np.ndarray, iterations: int = 20000) -> np.ndarray:
    """Hunter's (2004) MM algorithm, a different method from the Newton fit under test; log-strengths, player 0 = 0."""
    k = len(wins)
    games = wins + wins.T
    p = np.ones(k)
    for _ in range(iterations):
        denom = np.array([sum(games[i, j] / (p[i] + p[j]) for j in range(k) if j != i) for i in range(k)])
        p = wins.sum(axis=1) / denom
        p /= p[0]
    return np.log(p)


def test_bradley_terry_matches_closed_form_and_an_independent_fit():
    two = [("base", "round-1", 0.0)] * 30 + [("base", "round-1", 1.0)] * 10
    fit = {s.policy: s.strength for s in bradley_terry(two, bootstrap=0, ridge=0.0)}
    assert fit["base"] == 0.0 and fit["round-1"] == pytest.approx(math.log(3), abs=1e-9)  # odds 30:10

    wins = np.array([[0, 12, 7], [8, 0, 4], [13, 16, 0]], dtype=float)  # wins[i, j]: i beat j
    names = ["base", "round-1", "round-2"]
    votes = [(names[i], names[j], 1.0) for i in range(3) for j in range(3) for _ in range(int(wins[i, j]))]
    fit = {s.policy: s.strength for s in bradley_terry(votes, bootstrap=0, ridge=0.0)}
    expected = _mm_reference(wins)
    assert [fit[n] for n in names] == pytest.approx(list(expected), abs=1e-6)


def _tournament(strengths: dict[str, float], n_votes: int, rng) -> list[tuple[str, str, float]]:
    names = list(strengths)
    s = np.array([strengths[n] for n in names])
    i = rng.integers(0, len(names), n_votes)
    j = (i + rng.integers(1, len(names), n_votes)) % len(names)
    won = rng.random(n_votes) < 1 / (1 + np.exp(-(s[i] - s[j])))
    return [(names[a], names[b], float(w)) for a, b, w in zip(i, j, won)]


TRUE = {"base": 0.0, "round-1": 0.5, "round-2": 1.0, "round-3": -0.3}


def test_bradley_terry_order_is_right_on_a_synthetic_tournament():
    board = bradley_terry(_tournament(TRUE, 4000, np.random.default_rng(0)), bootstrap=100)
    assert [s.policy for s in board] == ["round-2", "round-1", "base", "round-3"]
    for s in board:
        assert s.ci_low <= s.strength <= s.ci_high and abs(s.strength - TRUE[s.policy]) < 0.15


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    covered = total = 0
    for seed in range(200):
        board = bradley_terry(_tournament(TRUE, 600, np.random.default_rng(seed)), bootstrap=200, seed=seed)
        for s in board:
            if s.policy != "base":  # the anchor is 0 by definition
                covered += s.ci_low <= TRUE[s.policy] <= s.ci_high
                total += 1
    assert 0.88 <= covered / total <= 0.99, covered / total


def test_length_controlled_win_rate_removes_a_pure_length_preference():
    rng = np.random.default_rng(0)
    diff = rng.normal(30, 40, 3000)  # b is usually longer ...
    won = rng.random(3000) < 1 / (1 + np.exp(-2 * np.tanh(diff / diff.std())))  # ... and length alone wins
    raw = won.mean()
    assert raw > 0.62
    assert length_controlled_win_rate(won, diff) == pytest.approx(0.5, abs=0.04)
    # A real advantage with no length effect survives length control.
    won = rng.random(3000) < 0.7
    assert length_controlled_win_rate(won, rng.normal(0, 40, 3000)) == pytest.approx(won.mean(), abs=0.03)
    assert length_controlled_win_rate([], []) == 0.5


def test_verdict_in_words():
    assert verdict(WinRate(70, 30, 10)).key == "working"
    assert verdict(WinRate(54, 46, 0)).key == "undecided"
    assert verdict(WinRate(30, 70, 0)).key == "worse"
    assert verdict(WinRate(5200, 4800, 0)).key == "even"
    undecided = verdict(WinRate(13, 7, 20))  # 65% of 20 decided; half the votes are ties
    assert undecided.key == "undecided"
    assert undecided.words == f"not decided yet: about {undecided.votes_needed} more votes needed"
    # Adding about that many votes at the same rate and tie share decides it, and not many fewer would.
    more = undecided.votes_needed
    decided = WinRate(13 + round(more * 0.5 * 0.65), 7 + round(more * 0.5 * 0.35), 20 + round(more * 0.5))
    assert verdict(decided).key == "working"
    assert votes_needed(WinRate(0, 0, 0)) > 0
