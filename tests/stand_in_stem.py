"""A model with a linear stem worth IG's shortcut (advxai.explainers.stem), for the stem and stream tests."""

from __future__ import annotations

import torch
from torch import nn


def stem_model(kernel: int = 11, dtype: torch.dtype = torch.float32, dilation: int = 1, groups: int = 1) -> nn.Module:
    """AlexNet's shape in small: a large strided first convolution, then an in-place ReLU."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, kernel, stride=4, padding=2, dilation=dilation, groups=groups), nn.ReLU(inplace=True),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5),
    ).to(dtype).eval()
