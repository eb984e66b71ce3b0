"""Seeded evaluation subsets (docs/decisions.md, decision 10).

The paper evaluates a fraction of all images (10 % of 50 000 = 5 000), drawn from the
successful adversaries; the localised experiment draws its own, separately seeded subset.
A draw depends only on the seed, the stage name, the model and the candidates, not on sharding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..seeding import numpy_rng

LABELFLIP_STAGE = "subset-labelflip"
LOCALISED_STAGE = "subset-localised"


def subset_size(fraction: float, n_items: int) -> int:
    """A fraction of all items (10 % of 50 000 = 5 000), at least one."""
    return max(1, int(round(fraction * n_items)))


def draw_subset(candidates: Sequence[str], size: int, seed: int, stage: str, model: str) -> list[str]:
    """A seeded draw without replacement of ``size`` candidates (all if fewer), in candidate order."""
    if not candidates:
        return []
    chosen = numpy_rng(seed, stage, model).choice(len(candidates), size=min(size, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(chosen)]


@dataclass(frozen=True)
class EvaluationSubsets:
    """The ids of the label-flip and localised subsets of one model, in data set order."""

    labelflip: list[str]
    localised: list[str]
    n_items: int
    n_adversaries: int


def evaluation_subsets(
    ids: Sequence[str], success: Sequence[bool], *, fraction: float, localised_fraction: float, seed: int, model: str
) -> EvaluationSubsets:
    """Both subsets, drawn from the successful adversaries and sized by the number of all items."""
    successful = [item for item, ok in zip(ids, success) if ok]
    return EvaluationSubsets(
        labelflip=draw_subset(successful, subset_size(fraction, len(ids)), seed, LABELFLIP_STAGE, model),
        localised=draw_subset(successful, subset_size(localised_fraction, len(ids)), seed, LOCALISED_STAGE, model),
        n_items=len(ids),
        n_adversaries=len(successful),
    )
