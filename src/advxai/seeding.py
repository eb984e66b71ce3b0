"""Per-item seeds: every random draw is a function of (global seed, stage, item id).

Results therefore never depend on shard size, batch size, job order or resumption.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a torch generator is made, not by the jobs that draw with NumPy only
    import torch


def item_seed(seed: int, stage: str, item_id: str | int) -> int:
    """A 63-bit seed derived from ``(seed, stage, item_id)`` by SHA-256."""
    digest = hashlib.sha256(f"{int(seed)}\x1f{stage}\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def numpy_rng(seed: int, stage: str, item_id: str | int) -> np.random.Generator:
    """A NumPy generator for one item of one stage."""
    return np.random.default_rng(item_seed(seed, stage, item_id))


def torch_generator(seed: int, stage: str, item_id: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator for one item of one stage (on ``device``)."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(item_seed(seed, stage, item_id))
    return generator
