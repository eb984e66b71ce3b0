"""The localised-perturbation experiment: can explainers find the k segments that carry the perturbation? (docs/method.md §4, §8.3)

For each k, the refined adversary keeps the perturbation only in the k segments of largest
magnitude (the ground truth ``S``). Refined adversaries that still flip are explained for the
class they are now assigned, and each explainer's recovered count is ``|S ∩ top-k(scores)|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..batching import run_batched
from .baselines import magnitude
from .flips import FlipTest
from ..types import Forward
from .selection import hybrid, pad_scores, recovered, selection_width, top_k

NOT_KEPT = -1
"""Recovered count of an item whose refined adversary no longer flips (it is not explained)."""

Explain = Callable[[torch.Tensor, torch.Tensor, Sequence[str], torch.Tensor, np.ndarray], dict[str, np.ndarray]]
"""``(inputs, classes, ids, masks, n_segments) -> {explainer: (n, S) scores}``, largest = most important."""


def localised_id(item_id: str, k: int) -> str:
    """The id a refined adversary is explained under: a distinct item for the seeded explainers."""
    return f"{item_id}#localised-k{k}"


@dataclass(frozen=True)
class LocalisedResult:
    """One k of the experiment.

    Attributes:
        truth: bool ``(N, S)``, the k segments of largest magnitude.
        decisions: ``(N,)`` the flip test's decisions on the refined adversaries.
        kept: bool ``(N,)``, whether the refined adversary still flips.
        recovered: explainer → ``(N,)`` recovered counts in ``0..k``, ``NOT_KEPT`` where not kept.
    """

    truth: np.ndarray
    decisions: np.ndarray
    kept: np.ndarray
    recovered: dict[str, np.ndarray]


@torch.no_grad()
def _decisions(forward: Forward, flip_test: FlipTest, inputs: torch.Tensor, batch_size: int) -> np.ndarray:
    return run_batched(lambda chunk: flip_test.decide(forward(chunk)), inputs, batch_size).cpu().numpy()


def localised_experiment(
    forward: Forward, flip_test: FlipTest, clean: torch.Tensor, adversarial: torch.Tensor, masks: torch.Tensor,
    n_segments: np.ndarray, ids: Sequence[str], ks: Sequence[int], explain: Explain, explainers: Sequence[str], batch_size: int,
) -> dict[int, LocalisedResult]:
    """Run the experiment for every k.

    Args:
        forward: the model.
        flip_test: the domain's flip test for these ``N`` items.
        clean, adversarial: ``(N, C, *spatial)`` or ``(N, *spatial)`` inputs on the model's device.
        masks: ``(N, *spatial)`` segment ids on the same device.
        n_segments: ``(N,)`` segments per item; at k above an item's count its refined
            adversary is the full adversary, and it is kept, explained and counted.
        ids: ``N`` item ids; item ``i`` is explained at ``k`` as :func:`localised_id` ``(ids[i], k)``.
        ks: numbers of perturbed segments.
        explain: the domain's explain function; called only when some item is kept.
        explainers: the names ``explain`` returns scores for.
        batch_size: refined adversaries per forward pass.
    """
    n_segments = np.asarray(n_segments)
    width = selection_width(n_segments, np.asarray(ks))
    magnitudes = magnitude(clean, adversarial, masks, width)
    results: dict[int, LocalisedResult] = {}
    for k in ks:
        truth = top_k(magnitudes, k)
        refined = hybrid(clean, adversarial, masks, torch.from_numpy(truth).to(clean.device))
        decisions = _decisions(forward, flip_test, refined, batch_size)
        kept = flip_test.flipped(decisions)
        found = {name: np.full(len(kept), NOT_KEPT) for name in explainers}
        if kept.any():
            rows = np.flatnonzero(kept)
            index = torch.from_numpy(rows).to(clean.device)
            scores = explain(
                refined[index], torch.as_tensor(flip_test.explained_class(decisions)[rows], device=clean.device),
                [localised_id(ids[i], k) for i in rows], masks[index], n_segments[rows],
            )
            for name in explainers:
                found[name][rows] = recovered(truth[rows], top_k(pad_scores(scores[name], width), k))
        results[k] = LocalisedResult(truth=truth, decisions=decisions, kept=kept, recovered=found)
    return results
