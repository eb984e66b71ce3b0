"""The flip tests of the two domains: when has a (refined) adversary changed the model's decision?

A flip test turns model outputs into one decision per input (:meth:`FlipTest.decide`), says which
decisions count as a flip (:meth:`FlipTest.flipped`), and which class a flipped input is explained
for (:meth:`FlipTest.explained_class`). The label-flip and localised experiments take one.

* Images (docs/decisions.md, decision 11): any change of the argmax from the clean prediction.
* Audio (docs/method.md §4): P(sing) on the target's side of the threshold τ, ``P > τ`` for
  target 1 ("no sing → sing") and ``P < τ`` for target 0 ("sing → no sing").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..arrays import to_numpy

if TYPE_CHECKING:
    import torch


class FlipTest(Protocol):
    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs of a batch → one decision per row."""

    def flipped(self, decisions: np.ndarray) -> np.ndarray:
        """Decisions ``(N, *rest)`` of the test's ``N`` items → bool ``(N, *rest)``."""

    def explained_class(self, decisions: np.ndarray) -> np.ndarray:
        """The class each decision assigns, the one a flipped input is explained for."""


def _per_item(values: np.ndarray, decisions: np.ndarray) -> np.ndarray:
    """``values`` ``(N,)`` reshaped to broadcast against ``decisions`` ``(N, *rest)``."""
    if decisions.shape[:1] != values.shape:
        raise ValueError(f"decisions of shape {decisions.shape} do not belong to the test's {len(values)} items")
    return values.reshape(values.shape + (1,) * (decisions.ndim - 1))


@dataclass(frozen=True)
class ClassChange:
    """Image flip test: the argmax differs from the clean prediction of the item."""

    clean_prediction: np.ndarray  # (N,) clean top-1 class per item

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(1)

    def flipped(self, decisions: np.ndarray) -> np.ndarray:
        decisions = np.asarray(decisions)
        return decisions != _per_item(np.asarray(self.clean_prediction), decisions)

    def explained_class(self, decisions: np.ndarray) -> np.ndarray:
        return np.asarray(decisions)


def reaches_target(probabilities: Any, targets: Any, threshold: float) -> np.ndarray:
    """Whether each ``P(sing)`` lies on its target's side of ``threshold`` (``>`` for 1, ``<`` for 0)."""
    probabilities = to_numpy(probabilities)
    targets = to_numpy(targets)
    if not np.isin(targets, (0, 1)).all():
        raise ValueError(f"targets must be 0 or 1, got values {np.unique(targets)}")
    return np.where(targets == 1, probabilities > threshold, probabilities < threshold)


@dataclass(frozen=True)
class ThresholdCrossing:
    """Audio flip test: P(sing) of the detector's single logit reaches the item's target across τ."""

    targets: np.ndarray  # (N,) 1: no sing → sing, 0: sing → no sing
    threshold: float

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sigmoid(outputs[:, 0]).double()

    def flipped(self, decisions: np.ndarray) -> np.ndarray:
        decisions = np.asarray(decisions)
        return reaches_target(decisions, np.broadcast_to(_per_item(to_numpy(self.targets), decisions), decisions.shape), self.threshold)

    def explained_class(self, decisions: np.ndarray) -> np.ndarray:
        return (np.asarray(decisions) > self.threshold).astype(np.int64)
