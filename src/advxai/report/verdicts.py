"""Claims, tests and verdicts: the logic that decides whether a finding holds at a run's N.

A finding is made of parts (e.g. "LIME is best with SLIC" and "standard gradient explainers beat
their ensembles"); a part is a set of claims, each one comparison with its test. A claim carries
two p-values: evidence *for* it and evidence *against* it. Within a part both sets are adjusted
with Holm–Bonferroni, so the verdict controls the family-wise error at ALPHA however many models,
segmentations and explainers the run has:

- a part quantified over **all** claims holds when every claim is significant in its favour and
  is contradicted when any claim is significant against it;
- a part quantified over **most** claims ("usually", "rarely") holds when more than half are
  significant in its favour and is contradicted when at least half are significant against it;
- anything else is *undecided at this N*; a part whose models or domain the run lacks is *not in
  this run*. A finding is contradicted if any part is, holds if every part in the run holds.

Pure functions over per-item outcomes (NumPy arrays); no file is read here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..statistics import (
    ALPHA,
    binomial_one_sided,
    fisher_exact,
    holm,
    mcnemar_exact,
    non_inferiority_p,
    paired_bootstrap,
    paired_difference_interval,
    wilson_interval,
)

HOLDS, CONTRADICTED, UNDECIDED, NOT_IN_RUN = "holds", "contradicted", "undecided at this N", "not in this run"
ALL, MOST = "all", "most"

NON_INFERIORITY_MARGIN = 0.05
""""At least on par" is tested as non-inferiority: the paired difference in label-flip rate is
significantly above -5 percentage points (docs/decisions.md, "Findings checked on every run")."""


@dataclass(frozen=True)
class Claim:
    """One comparison: what is compared, its numbers, its test, and the p-values for and against."""

    subject: str
    numbers: str
    test: str
    p_support: float
    p_against: float


@dataclass(frozen=True)
class Part:
    """A part of a finding: its statement, its quantifier and its claims, or why it is not in this run."""

    statement: str
    quantifier: str
    claims: tuple[Claim, ...] = ()
    missing: str | None = None


@dataclass(frozen=True)
class Decision:
    """A part decided: its verdict, and per claim the Holm-adjusted p-values and the outcome."""

    part: Part
    verdict: str
    holm_support: np.ndarray
    holm_against: np.ndarray

    @property
    def supported(self) -> np.ndarray:
        return self.holm_support < ALPHA

    @property
    def against(self) -> np.ndarray:
        return self.holm_against < ALPHA

    def status(self, i: int) -> str:
        return "in favour" if self.supported[i] else "against" if self.against[i] else "not significant"


def _percent(values: np.ndarray) -> str:
    return f"{100 * float(np.mean(values)):.1f} %" if len(values) else "–"


def _rate_with_interval(successes: int, n: int) -> str:
    estimate, low, high = wilson_interval(successes, n)
    return "–" if n == 0 else f"{100 * estimate:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def _signed(p_value: float, difference: float) -> tuple[float, float]:
    """A two-sided p-value as (for, against) a claim that the difference is positive."""
    return (p_value, 1.0) if difference > 0 else (1.0, p_value) if difference < 0 else (1.0, 1.0)


def flips_greater(subject: str, a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> Claim:
    """Claim: ranking ``a`` flips more of the same items than ``b`` (exact McNemar, two-sided)."""
    result = mcnemar_exact(a, b)
    numbers = (
        f"{names[0]} {_rate_with_interval(int(np.sum(a)), len(a))} "
        f"vs {names[1]} {_rate_with_interval(int(np.sum(b)), len(b))}, "
        f"n = {len(a)}, discordant {result.only_a} : {result.only_b}, p = {result.p_value:.3g}"
    )
    return Claim(subject, numbers, "exact McNemar", *_signed(result.p_value, result.difference))


def flips_on_par(
    subject: str, a: np.ndarray, b: np.ndarray, names: tuple[str, str], margin: float = NON_INFERIORITY_MARGIN
) -> Claim:
    """Claim: ranking ``a`` flips at least as many items as ``b``, up to ``margin`` (non-inferiority by
    Newcombe's score interval of the difference); against it: ``a`` flips significantly fewer (exact McNemar)."""
    result = mcnemar_exact(a, b)
    difference = paired_difference_interval(a, b)
    numbers = (
        f"{names[0]} {_percent(a)} vs {names[1]} {_percent(b)}, n = {len(a)}, difference "
        f"{100 * difference.estimate:+.1f} points [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}], "
        f"McNemar p = {result.p_value:.3g}"
    )
    against = result.p_value if result.difference < 0 else 1.0
    return Claim(
        subject,
        numbers,
        f"score-interval non-inferiority (margin {100 * margin:.0f} points); exact McNemar",
        non_inferiority_p(a, b, margin),
        against,
    )


def fractions_greater(subject: str, a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> Claim:
    """Claim: per-item fractions ``a`` are larger on average than ``b`` on the same items (paired bootstrap)."""
    result = paired_bootstrap(a, b)
    numbers = f"{names[0]} {_percent(a)} vs {names[1]} {_percent(b)} recovered, n = {len(a)}, p = {result.p_value:.3g}"
    return Claim(subject, numbers, "paired bootstrap", *_signed(result.p_value, result.difference))


def rate_greater(subject: str, a: tuple[int, int], b: tuple[int, int], names: tuple[str, str]) -> Claim:
    """Claim: the rate ``a = (successes, n)`` exceeds ``b`` on different items (Fisher's exact test)."""
    result = fisher_exact(*a, *b)
    numbers = (
        f"{names[0]} {_rate_with_interval(*a)} (n = {a[1]}) vs {names[1]} {_rate_with_interval(*b)} (n = {b[1]}), "
        f"p = {result.p_value:.3g}"
    )
    return Claim(subject, numbers, "Fisher's exact", *_signed(result.p_value, result.difference))


def rate_below(subject: str, successes: int, n: int, threshold: float) -> Claim:
    """Claim: a rate lies below ``threshold`` (exact one-sided binomial tests both ways)."""
    below, above = binomial_one_sided(successes, n, threshold)
    numbers = f"{successes} of {n}: {_rate_with_interval(successes, n)}"
    return Claim(subject, numbers, f"exact binomial against {100 * threshold:.0f} %", below, above)


def decide(part: Part) -> Decision:
    """The verdict of one part (module docstring)."""
    support = holm(np.array([c.p_support for c in part.claims], float))
    against = holm(np.array([c.p_against for c in part.claims], float))
    decision = Decision(part, UNDECIDED, support, against)
    if part.missing is not None:
        return Decision(part, NOT_IN_RUN, support, against)
    n, n_for, n_against = len(part.claims), int(decision.supported.sum()), int(decision.against.sum())
    if n == 0:
        return decision
    if part.quantifier == ALL:
        verdict = CONTRADICTED if n_against else HOLDS if n_for == n else UNDECIDED
    elif part.quantifier == MOST:
        verdict = HOLDS if 2 * n_for > n else CONTRADICTED if 2 * n_against >= n else UNDECIDED
    else:
        raise ValueError(f"unknown quantifier {part.quantifier!r} ({ALL}, {MOST})")
    return Decision(part, verdict, support, against)


def combine(verdicts: list[str]) -> str:
    """A finding's verdict from its parts' verdicts."""
    in_run = [v for v in verdicts if v != NOT_IN_RUN]
    if not in_run:
        return NOT_IN_RUN
    if CONTRADICTED in in_run:
        return CONTRADICTED
    return HOLDS if all(v == HOLDS for v in in_run) else UNDECIDED
