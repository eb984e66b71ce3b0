"""Type aliases that several layers share, each defined once. No torch import at run time."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

Scores = dict[str, dict[str, dict[str, np.ndarray]]]
"""Segment scores: explainer → segmentation → aggregation → ``(N, S)`` (largest = most important)."""

Forward = Callable[["torch.Tensor"], "torch.Tensor"]
"""A model: a batch of inputs → its outputs (logits, or LIME's regressed outputs)."""
