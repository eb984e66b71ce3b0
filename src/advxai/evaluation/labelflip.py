"""Label flips: does adding back only the top-k segments of a ranking flip the decision? (docs/method.md §4, §8.1–8.2)

For every ranking (an explainer's segment scores, or a baseline) and every k setting, the hybrid
``X + M_S ⊙ (X̃ − X)`` of the top-k segments ``S`` is predicted and judged by the domain's flip
test. Rankings often agree (at k = S every ranking selects everything), so each item's distinct
hybrids are predicted once, and the hybrids of all items share fixed-shape forward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import run_batched
from ..types import Forward
from .flips import FlipTest
from .selection import hybrid, pad_scores, selection_width, top_k


@dataclass(frozen=True)
class KSettings:
    """The k settings of a label-flip run, one column each.

    Attributes:
        k: ``(n,)`` the fixed k of each setting, 0 for a fraction setting.
        fraction: ``(n,)`` the fraction of each fraction setting, NaN for a fixed k.
        per_item: ``(N, n)`` the k each item gets in each setting.
    """

    k: np.ndarray
    fraction: np.ndarray
    per_item: np.ndarray


def k_settings(fixed: Sequence[int], fractions: Sequence[float], n_segments: np.ndarray, *,
               empty_fraction_selects_all: bool = False) -> KSettings:
    """Fixed k values, then fractions of each item's segment count (``⌊p · n⌋``; the SLIC sweep of Fig. 7).

    Where ``⌊p · n⌋ = 0`` the hybrid adds back no segment; with ``empty_fraction_selects_all`` it adds
    back every segment (k = n), as the authors' ``seg[-0:]`` did (docs/decisions.md, decision 35).
    """
    n_segments = np.asarray(n_segments)
    fraction_ks = [np.floor(p * n_segments + 1e-9).astype(int) for p in fractions]
    if empty_fraction_selects_all:
        fraction_ks = [np.where(k == 0, n_segments, k) for k in fraction_ks]
    per_item = [np.full(len(n_segments), k) for k in fixed] + fraction_ks
    return KSettings(
        k=np.array([*fixed, *[0] * len(fractions)]),
        fraction=np.array([np.nan] * len(fixed) + list(fractions), dtype=float),
        per_item=np.stack(per_item, axis=1) if per_item else np.zeros((len(n_segments), 0), int),
    )


@torch.no_grad()
def predict_hybrids(
    forward: Forward, decide: Callable[[torch.Tensor], torch.Tensor], clean: torch.Tensor, adversarial: torch.Tensor,
    masks: torch.Tensor, selections: np.ndarray, batch_size: int,
) -> np.ndarray:
    """Decisions ``(N, R)`` on the hybrids of boolean ``selections`` ``(N, R, S)``.

    Each item's identical hybrids are predicted once, and the hybrids of all items share the
    fixed-shape forward passes of :func:`run_batched` (only the last one is padded).

    Args:
        forward: the model.
        decide: model outputs → one decision per row (a flip test's :meth:`~.flips.FlipTest.decide`).
        clean, adversarial: ``(N, C, *spatial)`` or ``(N, *spatial)`` inputs on the model's device.
        masks: ``(N, *spatial)`` segment ids on the same device.
        selections: ``(N, R, S)`` selected segments per item and row.
        batch_size: hybrids per forward pass.
    """
    n_items, n_rows, _ = selections.shape
    if n_items == 0:
        return np.empty((0, n_rows), dtype=np.int64)
    uniques, inverses = zip(*(np.unique(selections[i], axis=0, return_inverse=True) for i in range(n_items)))
    counts = [len(unique) for unique in uniques]
    owner = torch.from_numpy(np.repeat(np.arange(n_items), counts)).to(clean.device)
    selected = torch.from_numpy(np.concatenate(uniques)).to(clean.device)

    def hybrid_decisions(rows: torch.Tensor) -> torch.Tensor:
        items = owner[rows]
        return decide(forward(hybrid(clean[items], adversarial[items], masks[items], selected[rows])))

    unique_decisions = run_batched(hybrid_decisions, torch.arange(len(owner), device=clean.device), batch_size).cpu().numpy()
    starts = np.cumsum([0, *counts])
    return np.stack([unique_decisions[starts[i] : starts[i + 1]][inverses[i].ravel()] for i in range(n_items)])


def label_flips(
    forward: Forward, flip_test: FlipTest, clean: torch.Tensor, adversarial: torch.Tensor, masks: torch.Tensor,
    n_segments: np.ndarray, rankings: Mapping[str, np.ndarray], per_item_k: np.ndarray, batch_size: int,
) -> dict[str, np.ndarray]:
    """Whether the top-k hybrid of each ranking flips the decision, for every k setting.

    Args:
        forward: the model.
        flip_test: the domain's flip test for these ``N`` items.
        clean, adversarial: ``(N, C, *spatial)`` or ``(N, *spatial)`` inputs on the model's device.
        masks: ``(N, *spatial)`` segment ids on the same device.
        n_segments: ``(N,)`` segments per item; items with fewer than k get every segment back.
        rankings: name → ``(N, S)`` segment scores, the k largest are selected; narrower arrays
            are widened with ``ABSENT``. They may be wider than these items need (scores padded
            to a whole shard's widest segmentation, of which these items are a slice).
        per_item_k: ``(N, n_settings)`` the k of each item in each setting (:func:`k_settings`).
        batch_size: hybrids per forward pass.

    Returns:
        dict: name → bool ``(N, n_settings)``, in the order of ``rankings``.
    """
    per_item_k = np.asarray(per_item_k)
    n_items, n_settings = per_item_k.shape
    for name, values in rankings.items():
        if np.shape(values)[0] != n_items:
            raise ValueError(f"ranking '{name}' scores {np.shape(values)[0]} items, expected {n_items}")
    if n_items == 0:
        return {name: np.zeros((0, n_settings), dtype=bool) for name in rankings}
    width = max([selection_width(n_segments, per_item_k), *(np.shape(values)[1] for values in rankings.values())])
    selections = np.stack(
        [np.stack([top_k(pad_scores(values, width), per_item_k[:, j]) for j in range(n_settings)], axis=1) for values in rankings.values()],
        axis=1,
    )  # (N, rankings, settings, S)
    decisions = predict_hybrids(forward, flip_test.decide, clean, adversarial, masks, selections.reshape(n_items, -1, width), batch_size)
    flips = flip_test.flipped(decisions).reshape(n_items, len(rankings), n_settings)
    return {name: flips[:, j] for j, name in enumerate(rankings)}
