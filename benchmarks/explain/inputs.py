"""The benchmark's inputs: the model, the bundled photos, attack targets and both segmentations."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def load(name: str, device: torch.device, arithmetic: str = "exact") -> nn.Module:
    """EfficientNet-Lite0 with its bundled weights; torchvision's models with random weights (nothing to download)."""
    from advxai.models import load_model

    weights = "DEFAULT" if name == "efficientnet_lite0" else None
    return load_model(name, weights=weights, device=str(device), arithmetic=arithmetic).module


def attack_targets(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A target class other than the clean prediction for every image, spread over the classes."""
    with torch.no_grad():
        clean_predictions = model(images).argmax(1)
    return (clean_predictions + 1 + torch.arange(len(images), device=images.device) * 97) % 1000


def bundled_inputs(n_images: int, side: int, device: torch.device) -> tuple[list[str], torch.Tensor]:
    """The first ``n_images`` bundled photos (repeated if more are asked for), normalised."""
    from advxai.data.image_items import bundled_items
    from advxai.data.images import load_image, preprocess
    from advxai.data.model_inputs import to_model_input

    items = bundled_items()
    chosen = [items[i % len(items)] for i in range(n_images)]
    pixels = np.stack([preprocess(load_image(item), 256, side) for item in chosen])
    return [f"{item.id}-{i}" for i, item in enumerate(chosen)], to_model_input(pixels).to(device)


def segmentations(images: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """rect 4×4 and SLIC 16 (on the normalised image) segment ids and counts per image."""
    from advxai import segments

    side = images.shape[-1]
    rect = torch.from_numpy(segments.rectangles(side, side, 4)).expand(len(images), side, side).clone()
    slic = torch.from_numpy(np.stack([segments.slic(image) for image in images.cpu().numpy()]))
    masks = {"rect": rect, "slic": slic}
    counts = {name: np.array([int(mask.max()) + 1 for mask in value]) for name, value in masks.items()}
    return {name: mask.to(images.device) for name, mask in masks.items()}, counts
