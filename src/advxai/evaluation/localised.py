"""The localised-perturbation experiment: can explainers find the k segments that carry the perturbation?
(docs/method.md §4, §8.3)

Two steps, two cached stages. :func:`refine` keeps, for each k, the perturbation only in the k
segments of largest magnitude (the ground truth ``S``) and tests whether the refined adversary
still flips. :func:`localised_experiment` explains the refined adversaries that still flip, for the
class they are now assigned, and counts each explainer's recovered segments ``|S ∩ top-k(scores)|``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import run_batched
from ..types import Forward
from .baselines import magnitude
from .flips import FlipTest
from .selection import hybrid, pad_scores, recovered, selection_width, top_k

NOT_KEPT = -1
"""Recovered count of an item whose refined adversary no longer flips (it is not explained)."""

Explain = Callable[[torch.Tensor, torch.Tensor, Sequence[str], torch.Tensor, np.ndarray], dict[str, np.ndarray]]
"""``(inputs, classes, ids, masks, n_segments) -> {explainer: (n, S) scores}``, largest = most important."""


def localised_id(item_id: str, k: int) -> str:
    """The id a refined adversary is explained under: a distinct item for the seeded explainers."""
    return f"{item_id}#localised-k{k}"


@dataclass(frozen=True)
class Refinement:
    """One k of the refine step.

    Attributes:
        truth: bool ``(N, W)``, the k segments of largest magnitude (``W``: :func:`selection_width`).
        decisions: ``(N,)`` the flip test's decisions on the refined adversaries.
        kept: bool ``(N,)``, whether the refined adversary still flips.
    """

    truth: np.ndarray
    decisions: np.ndarray
    kept: np.ndarray

    def segment_ids(self) -> np.ndarray:
        """``(N, k)`` the selected segment ids per item, ascending (ids ≥ an item's count: it has fewer than k)."""
        k = int(self.truth[0].sum()) if len(self.truth) else 0  # every row selects the same k
        return np.sort(np.nonzero(self.truth)[1].reshape(len(self.truth), k), axis=1)

    def rows(self, index: slice | np.ndarray) -> Refinement:
        """The refinement of some of the items."""
        return Refinement(truth=self.truth[index], decisions=self.decisions[index], kept=self.kept[index])

    @classmethod
    def from_segment_ids(
        cls, segment_ids: np.ndarray, width: int, decisions: np.ndarray, kept: np.ndarray
    ) -> Refinement:
        """The refinement back from its stored form (:meth:`segment_ids`, the width, decisions, kept)."""
        truth = np.zeros((len(segment_ids), width), dtype=bool)
        np.put_along_axis(truth, np.asarray(segment_ids, dtype=np.int64), True, axis=1)
        return cls(truth=truth, decisions=np.asarray(decisions), kept=np.asarray(kept, dtype=bool))


@dataclass(frozen=True)
class LocalisedResult:
    """One k of the experiment: its refinement and each explainer's recovered counts.

    Attributes:
        truth, decisions, kept: as in :class:`Refinement`.
        recovered: explainer → ``(N,)`` recovered counts in ``0..k``, ``NOT_KEPT`` where not kept.
    """

    truth: np.ndarray
    decisions: np.ndarray
    kept: np.ndarray
    recovered: dict[str, np.ndarray]

    def arrays(self, k: int, n_segments: np.ndarray) -> dict[str, np.ndarray]:
        """What an image localised file stores of this k: the refinement's fields again (the tables read this file
        only) and the recovered counts."""
        return {
            f"k{k}/prediction": self.decisions,
            f"k{k}/kept": self.kept,
            f"k{k}/fewer_segments": np.asarray(n_segments) < k,
            **{f"k{k}/recovered/{name}": values for name, values in self.recovered.items()},
        }


@torch.no_grad()
def _decisions(forward: Forward, flip_test: FlipTest, inputs: torch.Tensor, batch_size: int) -> np.ndarray:
    return run_batched(lambda chunk: flip_test.decide(forward(chunk)), inputs, batch_size).cpu().numpy()


def refine(
    forward: Forward,
    flip_test: FlipTest,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: torch.Tensor,
    n_segments: np.ndarray,
    ks: Sequence[int],
    batch_size: int,
    width: int | None = None,
) -> dict[int, Refinement]:
    """The refined adversaries for every k and whether they still flip.

    Args:
        forward: the model.
        flip_test: the domain's flip test for these ``N`` items.
        clean, adversarial: ``(N, C, *spatial)`` or ``(N, *spatial)`` inputs on the model's device.
        masks: ``(N, *spatial)`` segment ids on the same device.
        n_segments: ``(N,)`` segments per item; at k above an item's count its refined
            adversary is the full adversary (docs/fewer-segments.md).
        ks: numbers of perturbed segments.
        batch_size: refined adversaries per forward pass.
        width: the columns of the ground truth, at least :func:`selection_width` of these items (a
            stage that refines a shard in slices passes the shard's, so that every slice has one).
    """
    n_segments = np.asarray(n_segments)
    width = max(selection_width(n_segments, np.asarray(ks)), width or 0)
    magnitudes = magnitude(clean, adversarial, masks, width)
    refinements: dict[int, Refinement] = {}
    for k in ks:
        truth = top_k(magnitudes, k)
        refined = hybrid(clean, adversarial, masks, torch.from_numpy(truth).to(clean.device))
        decisions = _decisions(forward, flip_test, refined, batch_size)
        refinements[k] = Refinement(truth=truth, decisions=decisions, kept=flip_test.flipped(decisions))
    return refinements


def explain_refined(
    flip_test: FlipTest,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: torch.Tensor,
    n_segments: np.ndarray,
    ids: Sequence[str],
    refinements: Mapping[int, Refinement],
    explain: Explain,
    explainers: Sequence[str],
) -> dict[int, LocalisedResult]:
    """Explain the refined adversaries of :func:`refine` that still flip and count recovered segments.

    Args:
        flip_test: the flip test the refinements were decided with (it names the explained class).
        clean, adversarial, masks, n_segments: as for :func:`refine`; the refined inputs are rebuilt
            from them and each k's ground truth (the same arithmetic as in :func:`refine`).
        ids: ``N`` item ids; item ``i`` is explained at ``k`` as :func:`localised_id` ``(ids[i], k)``.
        refinements: k → the item's :class:`Refinement`.
        explain: the domain's explain function; called only when some item is kept.
        explainers: the names ``explain`` returns scores for.
    """
    n_segments = np.asarray(n_segments)
    results: dict[int, LocalisedResult] = {}
    for k, refinement in refinements.items():
        truth, kept = refinement.truth, refinement.kept
        found = {name: np.full(len(kept), NOT_KEPT) for name in explainers}
        if kept.any():
            rows = np.flatnonzero(kept)
            index = torch.from_numpy(rows).to(clean.device)
            refined = hybrid(
                clean[index], adversarial[index], masks[index], torch.from_numpy(truth[rows]).to(clean.device)
            )
            scores = explain(
                refined,
                torch.as_tensor(flip_test.explained_class(refinement.decisions)[rows], device=clean.device),
                [localised_id(ids[i], k) for i in rows],
                masks[index],
                n_segments[rows],
            )
            for name in explainers:
                found[name][rows] = recovered(truth[rows], top_k(pad_scores(scores[name], truth.shape[1]), k))
        results[k] = LocalisedResult(truth=truth, decisions=refinement.decisions, kept=kept, recovered=found)
    return results


def localised_experiment(
    forward: Forward,
    flip_test: FlipTest,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: torch.Tensor,
    n_segments: np.ndarray,
    ids: Sequence[str],
    ks: Sequence[int],
    explain: Explain,
    explainers: Sequence[str],
    batch_size: int,
) -> dict[int, LocalisedResult]:
    """Both steps in one call, :func:`refine` then :func:`explain_refined` (the workflow caches the first)."""
    refinements = refine(forward, flip_test, clean, adversarial, masks, n_segments, ks, batch_size)
    return explain_refined(flip_test, clean, adversarial, masks, n_segments, ids, refinements, explain, explainers)
