"""The numbers behind a verdict: win rate over decided comparisons with a 95% Wilson interval, a
length-controlled win rate, Bradley-Terry strengths with bootstrap intervals, and the verdict in words.

Ties and both-bad carry no preference, so win rates are over decided comparisons only. The length-controlled win
rate follows AlpacaEval's length-controlled win rate and Chatbot Arena's style control: fit
P(b wins) = sigmoid(theta0 + theta1 * tanh(dlen / sd)) on the decided comparisons and report sigmoid(theta0), the
win rate the model would get if its answers were as long as the other's (DPO is known to inflate length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile
WORKING_RATE = 0.55  # the method's bar: above 55% (interval above 50%) means the training is working
EVEN_BAND = 0.05  # an interval inside 50% +- this is "about even": more votes will not make it working
MAX_VOTES_NEEDED = 100_000  # beyond this the answer is "far more votes"; a CPU eval never gets there


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of successes/trials ((0, 1) when there are no trials)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class WinRate:
    wins: int  # b judged better
    losses: int  # a judged better
    ties: int  # tie or both bad: no preference either way

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def rate(self) -> float:
        """Wins among decided comparisons (0.5 when none is decided)."""
        return self.wins / self.decided if self.decided else 0.5

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson score interval of `rate`."""
        return wilson_interval(self.wins, self.decided)

    def summary(self, a: str = "base", b: str = "aligned") -> str:
        low, high = self.interval
        return (f"{b} vs {a}: {self.wins} wins, {self.losses} losses, {self.ties} ties of {self.n}; "
                f"win rate {self.rate:.1%} (95% CI {low:.1%}-{high:.1%})")


def tally(choices: Iterable[str]) -> WinRate:
    """Count 'b', 'a' and anything else (tie, both bad) from winners already mapped to the compared policies."""
    wins = losses = ties = 0
    for c in choices:
        wins += c == "b"
        losses += c == "a"
        ties += c not in ("a", "b")
    return WinRate(wins, losses, ties)


# --- length control -------------------------------------------------------------------------------------------


def length_controlled_win_rate(b_won: Sequence[bool], length_diff: Sequence[float], ridge: float = 1e-3) -> float:
    """Win rate of b with the length difference (len b - len a) regressed out: sigmoid(theta0) of a logistic
    regression of b_won on tanh(diff / sd(diff)). Decided comparisons only; 0.5 when there are none."""
    y = np.asarray(b_won, dtype=float)
    if y.size == 0:
        return 0.5
    d = np.asarray(length_diff, dtype=float)
    scale = d.std() or 1.0
    x = np.column_stack([np.ones_like(d), np.tanh(d / scale)])
    theta = _logistic_fit(x, y, ridge)
    return float(_sigmoid(theta[0]))


def _logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float, iterations: int = 50) -> np.ndarray:
    """Newton-Raphson for logistic regression with a small ridge (keeps all-wins data finite)."""
    theta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = _sigmoid(x @ theta)
        grad = x.T @ (y - p) - ridge * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --- Bradley-Terry --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strength:
    policy: str
    strength: float  # log-odds vs the anchor (base = 0): P(i beats j) = sigmoid(s_i - s_j)
    ci_low: float
    ci_high: float
    comparisons: int  # votes involving this policy (ties included)


def bradley_terry(outcomes: Sequence[tuple[str, str, float]], anchor: str = "base", bootstrap: int = 500,
                  seed: int = 0, ridge: float = 1e-2) -> list[Strength]:
    """Strengths from (winner-side policy i, other policy j, score of i: 1 win, 0 loss, 0.5 tie) with percentile
    bootstrap 95% intervals (votes resampled with replacement); sorted strongest first. The anchor (or the first
    policy when the anchor never played) is fixed at 0."""
    if not outcomes:
        return []
    names = sorted({i for i, _, _ in outcomes} | {j for _, j, _ in outcomes})
    names.sort(key=lambda n: (n != anchor, n))  # anchor first
    index = {n: k for k, n in enumerate(names)}
    k = len(names)
    cells: dict[tuple[int, int], list[float]] = {}  # (i<j) -> [score of i over j per vote...]
    for i, j, s in outcomes:
        a, b = index[i], index[j]
        if a == b:
            continue
        key, score = ((a, b), s) if a < b else ((b, a), 1.0 - s)
        cells.setdefault(key, []).append(score)
    pairs = list(cells)
    wins = np.zeros((1, k, k))
    games = np.zeros((1, k, k))
    for (a, b), scores in cells.items():
        wins[0, a, b], wins[0, b, a] = sum(scores), len(scores) - sum(scores)
        games[0, a, b] = games[0, b, a] = len(scores)
    fit = _bt_fit(wins, games, ridge)[0]
    low, high = fit.copy(), fit.copy()
    if bootstrap > 0 and pairs:
        low, high = _bt_bootstrap(cells, pairs, k, bootstrap, seed, ridge)
    played = games[0].sum(axis=1)
    rows = [Strength(n, float(fit[index[n]]), float(low[index[n]]), float(high[index[n]]), int(played[index[n]]))
            for n in names]
    return sorted(rows, key=lambda r: -r.strength)


def _bt_bootstrap(cells: dict, pairs: list, k: int, n_boot: int, seed: int, ridge: float):
    """Resample every vote with replacement (a multinomial over all votes' outcomes), refit, take percentiles."""
    rng = np.random.default_rng(seed)
    flat = [(a, b, s) for (a, b) in pairs for s in cells[(a, b)]]
    a_idx = np.array([a for a, _, _ in flat])
    b_idx = np.array([b for _, b, _ in flat])
    score = np.array([s for _, _, s in flat])
    counts = rng.multinomial(len(flat), np.full(len(flat), 1.0 / len(flat)), size=n_boot)  # (B, votes)
    wins = np.zeros((n_boot, k, k))
    games = np.zeros((n_boot, k, k))
    for v in range(len(flat)):  # votes are few thousand at most: a loop over votes, vectorized over replicates
        a, b, s, c = a_idx[v], b_idx[v], score[v], counts[:, v]
        wins[:, a, b] += c * s
        wins[:, b, a] += c * (1 - s)
        games[:, a, b] += c
        games[:, b, a] += c
    fits = _bt_fit(wins, games, ridge)
    return np.percentile(fits, 2.5, axis=0), np.percentile(fits, 97.5, axis=0)


def _bt_fit(wins: np.ndarray, games: np.ndarray, ridge: float, iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood strengths for a batch of tournaments (B, k, k), player 0 fixed at 0; a small ridge
    keeps a player who never lost (or never won) finite. Newton steps, all replicates at once."""
    n_batch, k, _ = wins.shape
    s = np.zeros((n_batch, k))
    if k == 1:
        return s
    for _ in range(iterations):
        p = _sigmoid(s[:, :, None] - s[:, None, :])  # P(i beats j)
        grad = (wins - games * p).sum(axis=2) - ridge * s
        w = games * p * (1 - p)
        hess = w.copy()
        hess[:, np.arange(k), np.arange(k)] = -w.sum(axis=2)
        hess -= ridge * np.eye(k)
        step = np.linalg.solve(hess[:, 1:, 1:], grad[:, 1:, None])[:, :, 0]
        s[:, 1:] -= step
        if np.abs(step).max() < 1e-9:
            break
    return s


# --- the verdict --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    key: str  # "working", "worse", "even" or "undecided"
    words: str  # what a team reads
    votes_needed: int | None  # for "undecided": about how many more votes (ties included) would decide it


def verdict(win: WinRate) -> Verdict:
    """Working (above 55%, interval above 50%), worse (below 50%, interval below 50%), about even (the interval sits
    inside 45-55%: more votes will not make it working), else not decided yet with about how many votes to go."""
    low, high = win.interval
    rate = win.rate
    if rate > WORKING_RATE and low > 0.5:
        return Verdict("working", f"working: wins {rate:.0%} of decided comparisons (95% CI {low:.0%}-{high:.0%})",
                       None)
    if rate < 0.5 and high < 0.5:
        return Verdict("worse", f"worse: wins only {rate:.0%} (95% CI {low:.0%}-{high:.0%}); check the data and "
                       "beta before using this round", None)
    if low > 0.5 - EVEN_BAND and high < WORKING_RATE:
        return Verdict("even", f"about even: {rate:.0%} (95% CI {low:.0%}-{high:.0%}) is below the 55% bar; more "
                       "votes will not change that, so train on more or better data", None)
    needed = votes_needed(win)
    return Verdict("undecided", f"not decided yet: about {needed} more votes needed", needed)


def votes_needed(win: WinRate) -> int:
    """About how many more votes (ties included, at the observed tie share) until the verdict is decided if the
    observed win rate holds; with no decided vote yet, assumes a 60% win rate."""
    rate = win.rate if win.decided else 0.6
    if rate > WORKING_RATE:
        done = lambda n: wilson_interval(round(rate * n), n)[0] > 0.5  # noqa: E731
    elif rate < 0.5:
        done = lambda n: wilson_interval(round(rate * n), n)[1] < 0.5  # noqa: E731
    else:  # between 50 and 55%: decided once the interval fits inside the even band
        done = lambda n: (wilson_interval(round(rate * n), n)[0] > 0.5 - EVEN_BAND  # noqa: E731
                          and wilson_interval(round(rate * n), n)[1] < WORKING_RATE)
    lo, hi = max(win.decided, 1), max(win.decided, 1)
    while not done(hi) and hi < MAX_VOTES_NEEDED:
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_VOTES_NEEDED)
    while lo < hi:  # smallest n that decides (near enough: `done` is close to monotone in n)
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if not done(mid) else (lo, mid)
    decided_share = max(win.decided / win.n, 0.1) if win.n else 0.6
    return max(1, math.ceil((hi - win.decided) / decided_share))
