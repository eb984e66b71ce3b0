"""Uncertainty of the evaluation's rates: intervals and paired tests on the same items.

Label-flip and recovery rates are proportions over a few hundred items (a handful in the embedded
default), so every rate advxai reports carries a 95 % interval, and differences between two
explainers scored on the same items are tested as paired data. NumPy and SciPy only: the table
and report jobs that use this import no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
"""Coverage of every interval advxai reports."""

ALPHA = 1 - CONFIDENCE
"""Significance level of the paired tests."""


class Interval(NamedTuple):
    """A point estimate with its confidence interval."""

    estimate: float
    low: float
    high: float


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of a proportion ``successes / n``; all NaN where ``n == 0``.

    Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its coverage at
    rates near 0 or 1 and at small ``n``, where the tables' rates often lie.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n]; got {successes} of {n}")
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    return Interval(successes / n, *_wilson_bounds_at(successes, n, float(stats.norm.ppf(0.5 + confidence / 2))))


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = CONFIDENCE,
) -> Interval:
    """A percentile bootstrap interval of ``statistic`` over items (the first axis of ``values``).

    For statistics that are not a plain proportion (mean recovered fractions, means of per-item
    fractions). Seeded, so a table is the same on every run; all NaN for no items.
    """
    values = np.asarray(values)
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(n_resamples, len(values)))
    replicates = np.array([statistic(values[rows]) for rows in draws])
    low, high = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(statistic(values)), float(low), float(high))


class PairedTest(NamedTuple):
    """The outcome of a paired test of ``a`` against ``b`` on the same items."""

    difference: float
    """mean(a) - mean(b)."""
    p_value: float
    only_a: int
    """Items where ``a`` holds and ``b`` does not (McNemar's discordant pairs)."""
    only_b: int

    @property
    def significant(self) -> bool:
        return bool(self.p_value < ALPHA)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """The exact (binomial) McNemar test of two boolean outcomes on the same items.

    Under the null hypothesis each discordant pair is ``a``-only with probability 1/2, so the
    two-sided p-value is that of a binomial test of ``only_a`` successes in ``only_a + only_b``
    trials; 1.0 where no pair is discordant.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same items; got shapes {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    difference = float(a.mean() - b.mean()) if a.size else float("nan")
    return PairedTest(difference, p_value, only_a, only_b)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0, n_resamples: int = 2000) -> PairedTest:
    """A two-sided paired bootstrap test of mean(a) - mean(b) over the same items.

    For paired outcomes that are not boolean (recovered fractions): the p-value is twice the
    smaller share of resampled mean differences on either side of zero (at least 1 / n_resamples).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same items; got shapes {a.shape} and {b.shape}")
    differences = a - b
    if differences.size == 0:
        return PairedTest(float("nan"), 1.0, 0, 0)
    observed = float(differences.mean())
    # No paired test of n non-zero differences can be surer than the exact sign test's most extreme
    # outcome, 2 · 0.5^n: the floor keeps a tiny or constant sample from a bootstrap p of 1 / n_resamples.
    floor = min(1.0, 2 * 0.5 ** int(np.count_nonzero(differences)))
    if np.all(differences == differences[0]):
        return PairedTest(observed, 1.0 if observed == 0 else max(floor, 1.0 / n_resamples), 0, 0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(n_resamples, len(differences)))
    replicates = differences[draws].mean(axis=1)
    tail = min(np.mean(replicates <= 0), np.mean(replicates >= 0))
    p_value = float(min(1.0, max(2 * tail, 1.0 / n_resamples, floor)))
    return PairedTest(observed, p_value, int(np.sum(differences > 0)), int(np.sum(differences < 0)))


def paired_difference_interval(a: np.ndarray, b: np.ndarray, seed: int = 0, n_resamples: int = 2000) -> Interval:
    """A percentile bootstrap interval of mean(a) - mean(b) over the same items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same items; got shapes {a.shape} and {b.shape}")
    return bootstrap_interval(a - b, seed=seed, n_resamples=n_resamples)


def _wilson_bounds_at(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score bounds of ``successes / n`` at normal quantile ``z`` (n > 0)."""
    rate = successes / n
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def _difference_lower_bound(a: np.ndarray, b: np.ndarray, z: float) -> float:
    """Newcombe's score lower bound of mean(a) - mean(b) at quantile ``z``, without the correlation term."""
    n, successes_a, successes_b = len(a), int(a.sum()), int(b.sum())
    low_a, _ = _wilson_bounds_at(successes_a, n, z)
    _, high_b = _wilson_bounds_at(successes_b, n, z)
    return (successes_a - successes_b) / n - float(np.hypot(successes_a / n - low_a, high_b - successes_b / n))


def non_inferiority_p(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """One-sided p-value of the null hypothesis rate(a) - rate(b) <= -margin for boolean outcomes.

    Small where ``a`` is at least on par with ``b`` up to ``margin``. The test inverts Newcombe's
    hybrid score interval of a difference of proportions (Wilson bounds of each rate) without its
    correlation term: exact enough at small N, never degenerate where the outcomes agree on every
    item (a bootstrap of identical outcomes has no spread), and conservative for outcomes that are
    positively correlated, as two rankings' flips of the same items are. 1.0 for no items.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same items; got shapes {a.shape} and {b.shape}")
    if a.size == 0 or a.mean() - b.mean() <= -margin:
        return 1.0
    low, high = 0.0, 40.0  # the lower bound falls as z grows: find the z where it reaches -margin
    if _difference_lower_bound(a, b, high) > -margin:
        return float(stats.norm.sf(high))
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _difference_lower_bound(a, b, middle) > -margin else (low, middle)
    return float(stats.norm.sf(low))


class UnpairedTest(NamedTuple):
    """The outcome of an exact test of two proportions on different items."""

    difference: float
    """rate(a) - rate(b)."""
    p_value: float

    @property
    def significant(self) -> bool:
        return bool(self.p_value < ALPHA)


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> UnpairedTest:
    """Fisher's exact two-sided test of ``successes_a / n_a`` against ``successes_b / n_b``
    (different items, e.g. two models' subsets); NaN difference and p = 1 where a side is empty."""
    for successes, n in ((successes_a, n_a), (successes_b, n_b)):
        if not 0 <= successes <= n:
            raise ValueError(f"successes must lie in [0, n]; got {successes} of {n}")
    if n_a == 0 or n_b == 0:
        return UnpairedTest(float("nan"), 1.0)
    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return UnpairedTest(successes_a / n_a - successes_b / n_b, float(stats.fisher_exact(table).pvalue))


def binomial_one_sided(successes: int, n: int, threshold: float) -> tuple[float, float]:
    """Exact one-sided binomial p-values of a rate against ``threshold``: (p that it lies below,
    p that it lies above); (1, 1) for no items."""
    if n == 0:
        return 1.0, 1.0
    return (float(stats.binomtest(successes, n, threshold, alternative="less").pvalue),
            float(stats.binomtest(successes, n, threshold, alternative="greater").pvalue))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error over the given tests), in input order."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * (len(p_values) - np.arange(len(p_values)))
    adjusted = np.empty_like(p_values)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled)) if len(p_values) else scaled
    return adjusted
