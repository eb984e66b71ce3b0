"""Test helper: make implicit tensor → NumPy conversion fail on the CPU as it fails on CUDA.

``np.asarray(t)``, ``np.array(t)``, an h5py write or a pandas column of a CUDA tensor raises
(``can't convert cuda:0 device type tensor to numpy``), but the same code passes on the CPU. With
this folder first on ``PYTHONPATH``, every Python process (the workflow's jobs included) refuses
such implicit conversions as soon as it imports torch, so the CPU test suite catches them.
Explicit ``.cpu().numpy()`` and ``advxai.arrays.to_numpy`` keep working.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

MESSAGE = (
    "implicit tensor -> NumPy conversion (np.asarray/np.array/h5py/pandas of a tensor) fails for CUDA tensors; "
    "convert with advxai.arrays.to_numpy or .cpu().numpy()"
)


def refuse_implicit_conversion(self, *args, **kwargs):
    raise TypeError(MESSAGE)


def install(torch_module) -> None:
    torch_module.Tensor.__array__ = refuse_implicit_conversion


class _InstallAfterTorch(importlib.abc.MetaPathFinder):
    """Patches ``torch.Tensor`` right after torch is imported, so processes that never import it pay nothing."""

    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            install(module)

        spec.loader.exec_module = exec_module
        return spec


if "torch" in sys.modules:
    install(sys.modules["torch"])
else:
    sys.meta_path.insert(0, _InstallAfterTorch())
