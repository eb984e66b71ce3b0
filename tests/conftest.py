"""Shared test set-up: the ``cuda`` marker and the strict host-conversion check (see strict_host/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

STRICT_HOST = Path(__file__).resolve().parent / "strict_host"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a GPU: skipped, saying why, where torch sees none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); benchmarks/gpu_check.sh runs them")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def strict_host(monkeypatch):
    """Within the test, ``np.asarray(tensor)`` raises on the CPU as it does for a CUDA tensor."""
    from strict_host.sitecustomize import refuse_implicit_conversion

    monkeypatch.setattr(torch.Tensor, "__array__", refuse_implicit_conversion)


@pytest.fixture(scope="session")
def strict_host_env() -> dict[str, str]:
    """Environment for a subprocess (e.g. Snakemake and its jobs) with the same strict check."""
    path = os.pathsep.join(p for p in (str(STRICT_HOST), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
