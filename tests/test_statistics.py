"""Known answers for the intervals and paired tests of advxai.statistics."""

import math

import numpy as np
import pytest
from scipy import stats

from advxai.statistics import (
    binomial_one_sided,
    bootstrap_interval,
    fisher_exact,
    holm,
    mcnemar_exact,
    non_inferiority_p,
    paired_bootstrap,
    paired_difference_interval,
    wilson_interval,
)


def test_wilson_matches_hand_computed_values():
    # 2 of 10 at 95 %: z = 1.959964; centre = (0.2 + z²/20) / (1 + z²/10), by hand 0.0567 / 0.5098
    low, high = wilson_interval(2, 10)[1:]
    assert low == pytest.approx(0.056682151, abs=1e-8)
    assert high == pytest.approx(0.509837528, abs=1e-8)
    # 0 of 8: the lower bound is 0 and the upper z² / (n + z²)
    z2 = stats.norm.ppf(0.975) ** 2
    assert wilson_interval(0, 8) == pytest.approx((0.0, 0.0, z2 / (8 + z2)))
    assert wilson_interval(8, 8)[1] == pytest.approx(8 / (8 + z2))


def test_wilson_equals_scipy_and_handles_empty():
    for successes, n in [(3, 8), (17, 40), (1, 1)]:
        reference = stats.binomtest(successes, n).proportion_ci(method="wilson")
        assert wilson_interval(successes, n)[1:] == pytest.approx((reference.low, reference.high))
    assert all(math.isnan(value) for value in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_mcnemar_equals_its_exact_binomial_form():
    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 0], bool)
    b = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0], bool)
    result = mcnemar_exact(a, b)
    assert (result.only_a, result.only_b) == (4, 1)
    # two-sided exact binomial: P(X <= 1) + P(X >= 4) for X ~ Bin(5, 1/2) = 12/32
    assert result.p_value == pytest.approx(12 / 32)
    assert result.difference == pytest.approx(0.3)
    assert not result.significant
    assert mcnemar_exact(a, a).p_value == 1.0
    strong = mcnemar_exact(np.ones(12, bool), np.zeros(12, bool))
    assert strong.p_value == pytest.approx(2 * 0.5**12) and strong.significant


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.arange(20, dtype=float)
    first, second = bootstrap_interval(values, seed=3), bootstrap_interval(values, seed=3)
    assert first == second
    assert first.estimate == pytest.approx(9.5)
    assert first.low < 9.5 < first.high
    # the percentile interval of a mean of 20 values is about ±1.96 · sd / √n = ±2.5
    assert first.high - first.low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(20), rel=0.15)
    assert math.isnan(bootstrap_interval(np.array([])).estimate)


def test_paired_bootstrap_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.random(60)
    assert paired_bootstrap(base + 0.2, base).p_value <= 1 / 2000
    noise = paired_bootstrap(base + rng.normal(0, 0.1, 60), base)
    assert noise.p_value > 0.05
    assert paired_bootstrap(base, base).p_value == 1.0


def test_holm_matches_its_step_down_definition():
    # sorted 0.01, 0.02, 0.04 over m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04), back in input order
    assert holm(np.array([0.04, 0.01, 0.02])) == pytest.approx([0.04, 0.03, 0.04])
    assert holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])
    assert holm(np.array([])).size == 0


def test_fisher_and_binomial_equal_scipy_and_handle_empty_sides():
    result = fisher_exact(8, 10, 2, 10)
    assert result.difference == pytest.approx(0.6)
    assert result.p_value == pytest.approx(stats.fisher_exact([[8, 2], [2, 8]]).pvalue) and result.significant
    assert fisher_exact(0, 0, 3, 4).p_value == 1.0
    below, above = binomial_one_sided(2, 20, 0.5)
    assert below == pytest.approx(sum(math.comb(20, i) for i in range(3)) / 2**20)
    assert above == pytest.approx(sum(math.comb(20, i) for i in range(2, 21)) / 2**20)
    assert binomial_one_sided(0, 0, 0.5) == (1.0, 1.0)


def test_non_inferiority_p_inverts_the_score_interval_by_hand():
    # both rankings flip all 100 items: the bound is -(1 - 100 / (100 + z²)), -0.05 at z² = 5 / 0.95
    ones = np.ones(100, bool)
    assert non_inferiority_p(ones, ones, 0.05) == pytest.approx(stats.norm.sf(math.sqrt(5 / 0.95)), rel=1e-6)
    # four items in agreement prove nothing (z² = 4 · 0.05 / 0.95); a ranking 10 points below the other is not on par
    four = non_inferiority_p(np.ones(4, bool), np.ones(4, bool), 0.05)
    assert four == pytest.approx(stats.norm.sf(math.sqrt(0.2 / 0.95)), rel=1e-6)
    assert non_inferiority_p(np.arange(100) < 40, np.arange(100) < 50, 0.05) == 1.0


def test_paired_bootstrap_is_never_surer_than_the_exact_sign_test():
    assert paired_bootstrap(np.ones(4), np.zeros(4)).p_value == pytest.approx(2 * 0.5**4)
    assert paired_bootstrap(np.array([1.0, 1.0, 0.5, 0.0]), np.zeros(4)).p_value >= 2 * 0.5**3
    assert paired_difference_interval(np.ones(5), np.zeros(5)) == (1.0, 1.0, 1.0)
