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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

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


@dataclass(frozen=True)
class SegmentBins:
    """Where each entry of ``(N, C, *spatial)`` maps falls for one segmentation, and how many fall there.

    Computed once per segmentation and reused for every map aggregated on it (a gradient family
    aggregates up to four maps on each segmentation).
    """

    bins: np.ndarray  # (N·C·pixels,) flat bin item * n_segments + id
    counts: np.ndarray  # (N, n_segments) entries per bin
    mask_shape: tuple[int, ...]  # (N, *spatial)
    n_channels: int

    @classmethod
    def of(cls, masks: ArrayLike, n_channels: int, n_segments: int) -> SegmentBins:
        """The bins of ``(N, *spatial)`` segment ids in ``0..n_segments-1`` for maps of ``n_channels``."""
        if n_segments < 1:
            raise ValueError(f"n_segments must be positive, got {n_segments}")
        ids = to_numpy(masks, np.int64)
        bins = _segment_bins(ids, n_channels, n_segments)
        counts = np.bincount(bins, minlength=ids.shape[0] * n_segments).reshape(ids.shape[0], n_segments)
        return cls(bins, counts, tuple(ids.shape), n_channels)

    def aggregate(self, attributions: ArrayLike) -> dict[str, np.ndarray]:
        """``mean``, ``mean_abs`` and ``mean_pos`` per segment of ``(N, C, *spatial)`` attributions (see :func:`aggregate`)."""
        values = to_numpy(attributions, np.float64)
        if values.ndim < 3 or self.mask_shape != (values.shape[0], *values.shape[2:]) or values.shape[1] != self.n_channels:
            raise ValueError(
                f"masks of shape {self.mask_shape} (for {self.n_channels} channels) do not match attributions of shape "
                f"{tuple(values.shape)}: expected attributions (N, C, *spatial) and masks (N, *spatial)"
            )
        flat = values.ravel()
        positive = flat > 0

        def per_segment(weights: np.ndarray) -> np.ndarray:
            return np.bincount(self.bins, weights=weights, minlength=self.counts.size).reshape(self.counts.shape)

        positive_counts = per_segment(positive.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = {
                "mean": per_segment(flat) / self.counts,
                "mean_abs": per_segment(np.abs(flat)) / self.counts,
                "mean_pos": per_segment(np.where(positive, flat, 0.0)) / positive_counts,
            }
        present = self.counts > 0
        scores["mean_pos"] = np.where(positive_counts > 0, scores["mean_pos"], ABSENT)
        return {name: np.where(present, score, ABSENT) for name, score in scores.items()}


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
    return SegmentBins.of(ids, values.shape[1], n_segments).aggregate(values)


def segment_bins(masks: Mapping[str, ArrayLike], n_segments: Mapping[str, int], n_channels: int) -> dict[str, SegmentBins]:
    """:class:`SegmentBins` of every segmentation, for maps of ``n_channels`` channels."""
    missing = sorted(set(masks) - set(n_segments))
    if missing:
        raise ValueError(f"n_segments lacks the segmentation(s) {missing} given in masks")
    return {name: SegmentBins.of(mask, n_channels, n_segments[name]) for name, mask in masks.items()}


def aggregate_segmentations(
    attributions: ArrayLike,
    masks: Mapping[str, ArrayLike],
    n_segments: Mapping[str, int],
    *,
    bins: Mapping[str, SegmentBins] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``aggregate`` one attribution map for every segmentation: ``scores[segmentation][aggregation]``.

    The map is converted to float64 once and reused for all segmentations; ``bins`` (from
    :func:`segment_bins` for these masks) saves recomputing them when several maps share the masks.
    """
    values = to_numpy(attributions, np.float64)
    bins = bins if bins is not None else segment_bins(masks, n_segments, values.shape[1])
    return {name: bins[name].aggregate(values) for name in masks}
