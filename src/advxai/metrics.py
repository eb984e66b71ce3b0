"""Segment-level metrics shared by both domains (docs/method.md §4, §8).

Masks are integer segment-id maps broadcast over the channel axis: an input of shape
``(N, C, *spatial)`` has masks of shape ``(N, *spatial)``. Scores are ``(N, S)`` arrays where
absent segments carry ``ABSENT`` so they are never selected while real segments remain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tensor methods only: the table jobs use this module without torch
    import torch

ABSENT = -1e5  # score of a segment id that an item does not have (docs/method.md §7)


def top_k(scores: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Boolean ``(N, S)`` selection of the ``k`` highest-scoring segments per row.

    ``k`` may be one number or one per row. Ties are broken by a stable argsort (the later id
    wins, as the authors' ascending argsort does). NaN scores count as ``ABSENT``.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=ABSENT)
    n_items, n_segments = scores.shape
    ks = np.broadcast_to(np.asarray(k), (n_items,))
    if np.any(ks > n_segments) or np.any(ks < 0):
        raise ValueError(f"k={k} is outside 0..{n_segments} segments")
    order = np.argsort(scores, axis=1, kind="stable")  # ascending; the last k are the top k
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_segments)[None, :].repeat(n_items, 0), axis=1)
    return rank >= (n_segments - ks)[:, None]


def segment_mask(masks: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Pixel mask ``(N, 1, *spatial)`` of the selected segments (``selected``: bool ``(N, S)``)."""
    picked = selected.gather(1, masks.flatten(1).long())
    return picked.view(masks.shape).unsqueeze(1)


def hybrid(clean: torch.Tensor, adversarial: torch.Tensor, masks: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Clean input with the selected segments taken from the adversary (the refined adversary)."""
    keep = segment_mask(masks, selected).to(clean.dtype)
    return clean + keep * (adversarial - clean)


def segment_reduce(values: np.ndarray, masks: np.ndarray, n_segments: int, reduce: str) -> np.ndarray:
    """Per-segment ``sum`` or ``mean`` of ``values`` ``(N, C, *spatial)`` over channels and pixels."""
    values = np.asarray(values, dtype=np.float64)
    n_items, per_item = values.shape[0], int(np.prod(values.shape[1:]))
    flat_ids = np.broadcast_to(masks[:, None], values.shape).reshape(n_items, per_item)
    flat = values.reshape(n_items, per_item)
    offsets = (np.arange(n_items) * n_segments)[:, None]
    bins = (flat_ids + offsets).ravel()
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


def magnitude_scores(clean: np.ndarray, adversarial: np.ndarray, masks: np.ndarray, n_segments: int) -> dict[str, np.ndarray]:
    """The baselines: per-segment sum (``magnitude``) and mean (``magnitude-mean``) of the squared perturbation."""
    squared = (np.asarray(adversarial, np.float64) - np.asarray(clean, np.float64)) ** 2
    return {
        "magnitude": segment_reduce(squared, masks, n_segments, "sum"),
        "magnitude-mean": segment_reduce(squared, masks, n_segments, "mean"),
    }


def recovered(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """How many of the truly perturbed segments each row's explanation recovered (``|S ∩ Ŝ|``)."""
    return np.logical_and(truth, found).sum(axis=1)
