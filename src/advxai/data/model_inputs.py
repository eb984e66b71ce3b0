"""Images as the models see them: normalised ``float32`` tensors ``(N, 3, H, W)`` (docs/method.md §5.2).

The torch side of :mod:`advxai.data.images`, kept apart so that the jobs that only decode or
segment images never import torch.
"""

from __future__ import annotations

import numpy as np
import torch

from .images import IMAGENET_MEAN, IMAGENET_STD, normalized_pixels


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """Map ``[0, 1]`` pixels ``(..., 3, H, W)`` to the normalised space ``(x - mean) / std``.

    The arithmetic of torchvision's ``Normalize`` (subtract, then divide, in the input's dtype),
    without importing torchvision in jobs that only read stored images.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=x01.dtype, device=x01.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x01.dtype, device=x01.device).view(-1, 1, 1)
    return (x01 - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: normalised ``(..., 3, H, W)`` back to pixel units."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return x * std + mean


def pixel_bounds() -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel valid range of normalised images, as two ``(3, 1, 1)`` tensors.

    These are the normalised images of pixel values 0 and 1. The authors clamped to the scalar
    min/max of the first validation image instead (docs/decisions.md, decision 2); per-channel bounds keep
    every adversary a valid image.
    """
    lower = normalize(torch.zeros(3, 1, 1))
    upper = normalize(torch.ones(3, 1, 1))
    return lower, upper


def to_model_input(images_uint8: np.ndarray) -> torch.Tensor:
    """Batch of ``uint8`` images ``(N, H, W, 3)`` to a normalised ``float32`` tensor ``(N, 3, H, W)``.

    Identical to torchvision's ``ToTensor`` then ``Normalize`` per image (:func:`normalized_pixels`).
    """
    return torch.from_numpy(normalized_pixels(images_uint8))
