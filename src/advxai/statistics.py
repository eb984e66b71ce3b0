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
    z = stats.norm.ppf(0.5 + confidence / 2)
    rate = successes / n
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return Interval(rate, max(0.0, centre - half), min(1.0, centre + half))


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
    if np.all(differences == differences[0]):
        return PairedTest(observed, 1.0 if observed == 0 else 1.0 / n_resamples, 0, 0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(n_resamples, len(differences)))
    replicates = differences[draws].mean(axis=1)
    tail = min(np.mean(replicates <= 0), np.mean(replicates >= 0))
    p_value = float(min(1.0, max(2 * tail, 1.0 / n_resamples)))
    return PairedTest(observed, p_value, int(np.sum(differences > 0)), int(np.sum(differences < 0)))
