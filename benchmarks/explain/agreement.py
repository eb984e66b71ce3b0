"""How far the engine's segment scores are from the reference's, and whether the tables would see it.

Three numbers over every (explainer, segmentation, aggregation) array, on every image both sides
explained:

- ``max_rel_diff``: the largest ``|a − b|`` over the array's largest ``|a|`` (``a`` the reference):
  a difference against the array's scale, not against each entry;
- ``elementwise_rel_diff``: the largest ``|a − b| / max(|a|, FLOOR · max|a|)``: against each entry,
  the floor keeping entries near zero (where one changed sign says nothing) from dividing by ~0;
- ``topk_agreement``: the share of (array, image) rankings whose top-k segments (k = 3, the
  paper's tables) are the same set on both sides, as ``evaluation.selection.top_k`` picks them.

Both sides compute in float32 and sum in another order (the engine's batches against captum's),
so the differences are float rounding, amplified where a ReLU sits at its kink; the tolerance of
``elementwise_rel_diff`` is stated per device (:data:`TOLERANCE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

ELEMENT_FLOOR = 1e-3  # of the array's largest |value|
# float32 with another summation order: a few e-6 on a CPU; float32 IG on noisy inputs is 2-4e-3 from
# float64 either way (docs/exactness.md, "IG's linear stem"), and on a GPU the engine's batches of
# 128 and captum's of 1-800 rows pick other kernels (3.9e-3 of the array's scale on an H100).
TOLERANCE = {"cpu": 1e-2, "cuda": 5e-2}


@dataclass
class Agreement:
    """The three numbers, where each is worst, and the rankings whose top-k sets differ."""

    max_rel_diff: float = 0.0
    max_rel_where: str = "-"
    elementwise_rel_diff: float = 0.0
    elementwise_where: str = "-"
    rankings: int = 0
    topk_differs: list[str] = field(default_factory=list)

    @property
    def topk_agreement(self) -> float:
        return 1 - len(self.topk_differs) / self.rankings if self.rankings else float("nan")


def relative_differences(expected: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """(largest |a − b| / max|a|, largest |a − b| / max(|a|, FLOOR · max|a|)) over the present entries."""
    from advxai.segments import ABSENT

    present = (expected > ABSENT) | (ours > ABSENT)
    expected, ours = expected[present].astype(np.float64), ours[present].astype(np.float64)
    scale = np.abs(expected).max(initial=0.0)
    difference = np.abs(ours - expected)
    if scale == 0:
        largest = difference.max(initial=0.0)
        return largest, largest
    per_entry = difference / np.maximum(np.abs(expected), ELEMENT_FLOOR * scale)
    return difference.max(initial=0.0) / scale, per_entry.max(initial=0.0)


def topk_differs(expected: np.ndarray, ours: np.ndarray, k: int) -> np.ndarray:
    """Per image (row): whether the top-``k`` segment sets differ."""
    from advxai.evaluation.selection import top_k

    k = min(k, expected.shape[1])
    return (top_k(expected, k) != top_k(ours, k)).any(axis=1)


def agreement(reference: Mapping, engine: Mapping, k: int, skip: tuple[str, ...] = ()) -> Agreement:
    """Reference against engine scores ``[explainer][seg][agg]`` ((images, segments) arrays; the
    engine's may hold more images and columns: its first rows and columns are compared).
    Explainers starting with a prefix in ``skip`` are left out."""
    found = Agreement()
    for explainer, by_seg in reference.items():
        if explainer.startswith(skip):
            continue
        for seg, by_agg in by_seg.items():
            for agg, expected in by_agg.items():
                ours = engine[explainer][seg][agg][: len(expected), : expected.shape[1]]
                where = f"{explainer}/{seg}/{agg}"
                by_scale, by_entry = relative_differences(expected, ours)
                if by_scale > found.max_rel_diff:
                    found.max_rel_diff, found.max_rel_where = by_scale, where
                if by_entry > found.elementwise_rel_diff:
                    found.elementwise_rel_diff, found.elementwise_where = by_entry, where
                differs = topk_differs(expected, ours, k)
                found.rankings += len(differs)
                found.topk_differs += [f"{where} image {image}" for image in np.flatnonzero(differs)]
    return found


# ------------------------------------------------------------------------------------------------ fast arithmetic
def score_rank_correlations(exact: Mapping, fast: Mapping, counts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Spearman correlations of each image's segment scores, exact against fast, over every
    (explainer, segmentation, aggregation, image), on the image's own segments. NaN where one
    side ranks no segment above another (constant scores)."""
    from scipy.stats import spearmanr

    correlations = []
    for explainer, by_seg in exact.items():
        for seg, by_agg in by_seg.items():
            for agg, values in by_agg.items():
                for item, n_segments in enumerate(counts[seg]):
                    ours, theirs = values[item, :n_segments], fast[explainer][seg][agg][item, :n_segments]
                    constant = np.ptp(ours) == 0 or np.ptp(theirs) == 0
                    correlations.append(np.nan if constant else spearmanr(ours, theirs).statistic)
    return np.array(correlations)


def max_rate_difference(exact: Mapping[str, np.ndarray], fast: Mapping[str, np.ndarray]) -> float:
    """The largest |exact − fast| label-flip rate over every (segmentation, ranking, k setting)."""
    return max(float(np.abs(exact[key] - fast[key]).max()) for key in exact)
