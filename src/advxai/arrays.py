"""Tensor → NumPy conversion that works on every device.

``np.asarray`` on a CUDA tensor raises (``can't convert cuda:0 device type tensor to numpy``), so
every function that accepts "a tensor or an array" converts through :func:`to_numpy`.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def to_numpy(values: Any, dtype: Any = None) -> np.ndarray:
    """``values`` (a tensor on any device, an array, a list or a scalar) as a host NumPy array."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; do not import it here
    if torch is not None and isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)
