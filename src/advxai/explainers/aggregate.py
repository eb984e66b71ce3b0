"""Aggregation of pixel attributions to per-segment scores (docs/method.md §7).

An attribution map ``A`` of shape ``(N, C, *spatial)`` and a segment-id map ``(N, *spatial)``
(broadcast over the channel axis) give, per item and segment ``s``, averages over the channels
*and* pixels of ``s`` together:

* ``mean``: the average of ``A``;
* ``mean_abs``: the average of ``|A|``;
* ``mean_pos``: the average of ``A`` over the entries with ``A > 0`` (``ABSENT`` if there are none,
  as the authors' NaN → −1e5).

Segment ids that an item does not have score ``advxai.segments.ABSENT``. All sums run through one
``np.bincount`` per quantity over item-offset segment ids (no loop over segments or items) in
float64, so results do not depend on how items were batched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from advxai.arrays import to_numpy
from advxai.names import AGGREGATIONS  # noqa: F401  (re-exported: the aggregations computed here)
from advxai.segments import ABSENT

if TYPE_CHECKING:  # torch is needed only by whoever passes a tensor
    import torch

    ArrayLike = np.ndarray | torch.Tensor


def _segment_bins(masks: np.ndarray, n_channels: int, n_segments: int) -> np.ndarray:
    """Flat bin index ``item * n_segments + id`` for every entry of ``(N, C, *spatial)``."""
    n_items = masks.shape[0]
    if masks.size and (masks.min() < 0 or masks.max() >= n_segments):
        raise ValueError(f"masks: segment ids must lie in 0..{n_segments - 1}, got {masks.min()}..{masks.max()}")
    ids = np.broadcast_to(masks[:, None], (n_items, n_channels, *masks.shape[1:])).reshape(n_items, -1)
    return (ids + (np.arange(n_items, dtype=np.int64) * n_segments)[:, None]).ravel()


def aggregate(attributions: ArrayLike, masks: ArrayLike, n_segments: int) -> dict[str, np.ndarray]:
    """Per-segment ``mean``, ``mean_abs`` and ``mean_pos`` of pixel attributions.

    Args:
        attributions (Tensor or ndarray): ``(N, C, *spatial)`` pixel attributions.
        masks (Tensor or ndarray): ``(N, *spatial)`` integer segment ids in ``0..n_segments-1``.
        n_segments (int): the number of score columns ``S``.

    Returns:
        dict[str, ndarray]: for each name in ``AGGREGATIONS`` a float64 ``(N, S)`` array, with
        ``ABSENT`` for ids an item lacks and, for ``mean_pos``, for segments without a positive entry.
    """
    values = to_numpy(attributions, np.float64)
    ids = to_numpy(masks, np.int64)
    if values.ndim < 3 or ids.shape != (values.shape[0], *values.shape[2:]):
        raise ValueError(
            f"masks of shape {tuple(ids.shape)} do not match attributions of shape {tuple(values.shape)}: "
            "expected attributions (N, C, *spatial) and masks (N, *spatial)"
        )
    if n_segments < 1:
        raise ValueError(f"n_segments must be positive, got {n_segments}")
    bins = _segment_bins(ids, values.shape[1], n_segments)
    flat = values.ravel()
    size = values.shape[0] * n_segments
    positive = flat > 0

    def per_segment(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(bins, weights=weights, minlength=size).reshape(values.shape[0], n_segments)

    counts = per_segment(None)
    positive_counts = per_segment(positive.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {
            "mean": per_segment(flat) / counts,
            "mean_abs": per_segment(np.abs(flat)) / counts,
            "mean_pos": per_segment(np.where(positive, flat, 0.0)) / positive_counts,
        }
    present = counts > 0
    scores["mean_pos"] = np.where(positive_counts > 0, scores["mean_pos"], ABSENT)
    return {name: np.where(present, score, ABSENT) for name, score in scores.items()}


def aggregate_segmentations(
    attributions: ArrayLike,
    masks: Mapping[str, ArrayLike],
    n_segments: Mapping[str, int],
) -> dict[str, dict[str, np.ndarray]]:
    """``aggregate`` one attribution map for every segmentation: ``scores[segmentation][aggregation]``.

    The map is converted to float64 once and reused for all segmentations.
    """
    missing = sorted(set(masks) - set(n_segments))
    if missing:
        raise ValueError(f"n_segments lacks the segmentation(s) {missing} given in masks")
    values = to_numpy(attributions, np.float64)
    return {name: aggregate(values, mask, n_segments[name]) for name, mask in masks.items()}
