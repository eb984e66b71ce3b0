"""The perturbation-magnitude baselines (docs/method.md §4, §8; docs/decisions.md, decision 6).

``magnitude`` ranks segments by the sum of the squared perturbation over their pixels (and
channels), ``magnitude-mean`` by its mean. The audio domain's norm baseline, ``Σ Δ²`` per
time–frequency segment, is ``magnitude``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..arrays import to_numpy
from ..segments import ABSENT

MAGNITUDE = "magnitude"
MAGNITUDE_MEAN = "magnitude-mean"


def segment_reduce(values: Any, masks: Any, n_segments: int, reduce: str) -> np.ndarray:
    """Per-segment ``sum`` or ``mean`` of ``values`` over each segment's entries.

    Args:
        values: ``(N, C, *spatial)`` or ``(N, *spatial)``; a channel axis is reduced too.
        masks: ``(N, *spatial)`` segment ids.
        n_segments: columns of the result; ids without entries score ``ABSENT``.
        reduce: ``"sum"`` or ``"mean"``.

    Returns:
        np.ndarray: float64 ``(N, n_segments)``.
    """
    values = to_numpy(values).astype(np.float64, copy=False)
    masks = to_numpy(masks)
    if values.ndim == masks.ndim + 1:
        masks = masks[:, None]
    n_items, per_item = values.shape[0], int(np.prod(values.shape[1:]))
    flat_ids = np.broadcast_to(masks, values.shape).reshape(n_items, per_item)
    flat = values.reshape(n_items, per_item)
    bins = (flat_ids + (np.arange(n_items) * n_segments)[:, None]).ravel()
    sums = np.bincount(bins, weights=flat.ravel(), minlength=n_items * n_segments).reshape(n_items, n_segments)
    counts = np.bincount(bins, minlength=n_items * n_segments).reshape(n_items, n_segments)
    if reduce == "sum":
        out = sums
    elif reduce == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = sums / counts
    else:
        raise ValueError(f"unknown reduction '{reduce}' (sum, mean)")
    return np.where(counts > 0, out, ABSENT)


def squared_perturbation(clean: Any, adversarial: Any) -> np.ndarray:
    """``(X̃ − X)²`` in float64 (the difference of the stored float32 inputs, exact)."""
    return (to_numpy(adversarial).astype(np.float64) - to_numpy(clean).astype(np.float64)) ** 2


def magnitude_scores(clean: Any, adversarial: Any, masks: Any, n_segments: int) -> dict[str, np.ndarray]:
    """Both baselines, ``{"magnitude": sum, "magnitude-mean": mean}`` of the squared perturbation per segment."""
    squared = squared_perturbation(clean, adversarial)
    return {
        MAGNITUDE: segment_reduce(squared, masks, n_segments, "sum"),
        MAGNITUDE_MEAN: segment_reduce(squared, masks, n_segments, "mean"),
    }


def magnitude(clean: Any, adversarial: Any, masks: Any, n_segments: int) -> np.ndarray:
    """The ``magnitude`` baseline alone: ``(N, n_segments)`` sums of the squared perturbation."""
    return segment_reduce(squared_perturbation(clean, adversarial), masks, n_segments, "sum")
