"""Top-k selections of segments and the hybrids they make (docs/method.md §4, §8).

Masks are integer segment-id maps without a channel axis: inputs ``(N, C, *spatial)`` (images) or
``(N, *spatial)`` (log-mel excerpts) have masks ``(N, *spatial)``. Scores are ``(N, S)`` arrays in
which absent segment ids carry :data:`advxai.segments.ABSENT`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..segments import ABSENT

if TYPE_CHECKING:  # tensor functions only: the table jobs use this module without torch
    import torch


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


def selection_width(n_segments: np.ndarray, ks: np.ndarray) -> int:
    """Columns that top-k selects from: the most segments of any item, and at least the largest k.

    An item with fewer segments than k is kept, as the authors' code kept it: its absent segment
    ids score ``ABSENT`` and rank last, so top-k selects every real segment (the hybrid is the
    full adversary) and the item stays in the denominator (docs/fewer-segments.md).
    """
    return max(int(np.max(n_segments, initial=0)), int(np.max(ks, initial=0)))


def pad_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """``(N, S)`` scores widened to ``width`` columns with ``ABSENT`` (unchanged if already as wide)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] >= width:
        return scores
    return np.pad(scores, ((0, 0), (0, width - scores.shape[1])), constant_values=ABSENT)


def segment_mask(masks: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Boolean ``(N, *spatial)`` mask of the selected segments (``selected``: bool ``(N, S)``)."""
    picked = selected.gather(1, masks.flatten(1).long())
    return picked.view(masks.shape)


def hybrid(clean: torch.Tensor, adversarial: torch.Tensor, masks: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Clean input with the selected segments taken from the adversary: ``X + M_S ⊙ (X̃ − X)``.

    The refined adversary of the paper. ``clean`` may have a channel axis after the item axis
    (images) or not (log-mel excerpts); the segment mask is shared by all channels.
    """
    keep = segment_mask(masks, selected).to(clean.dtype)
    if clean.ndim == masks.ndim + 1:
        keep = keep.unsqueeze(1)
    elif clean.ndim != masks.ndim:
        raise ValueError(f"masks {tuple(masks.shape)} fit neither inputs (N, *spatial) nor (N, C, *spatial), got {tuple(clean.shape)}")
    return clean + keep * (adversarial - clean)


def recovered(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """How many of the truly perturbed segments each row's explanation recovered (``|S ∩ Ŝ|``)."""
    return np.logical_and(truth, found).sum(axis=1)
