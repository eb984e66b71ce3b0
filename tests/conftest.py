"""Shared test set-up.

- The ``cuda`` marker: skipped, saying why, where torch sees no GPU.
- Under xdist, torch threads per worker: the worker's share of the cores.
- The strict host-conversion check (see strict_host/): ``np.asarray(tensor)`` raises on the CPU as
  it does for a CUDA tensor.
- The end-to-end helpers: Snakemake on presets/test.yaml, and the session runs (the local run
  that the workflow tests read and the SLURM tests compare against, ...), each built once per
  pytest invocation however many workers read it (tests/shared_runs.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from shared_runs import SharedRuns, invocation_folder

from advxai.svds.features import mel_filterbank

ROOT = Path(__file__).resolve().parents[1]
STRICT_HOST = Path(__file__).resolve().parent / "strict_host"


SESSION_RUNS = ("run", "slurm_run", "in_shards_of_two", "parse_time_runs", "cpu_run")
"""Session fixtures that run the workflow once per invocation (tests/shared_runs.py)."""


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group of a test under ``--dist=loadgroup`` (pyproject.toml): a module-scoped
    fixture is built once per worker, so the tests that use one share their module's group; the
    rest go wherever a worker is free. Only an optimisation: pytest 9.2 with xdist 3.8 ignores
    the marks, and the session runs are shared by a file lock instead (tests/shared_runs.py)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(definition.scope == "module" for chain in definitions.values() for definition in chain):
        return item.module.__name__
    return None


def pytest_configure(config):
    """An xdist worker's own torch work gets its share of the cores. With two workers on two cores,
    two torch threads per worker spin-wait at every parallel region for a core that the other
    worker's jobs hold: the C&W test on a trained detector took 351 s in the suite, 31 s alone.
    The jobs that Snakemake starts set their own threads (advxai.runtime)."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


DISPATCH_ORDER = ("slurm", "workflow", "slow")
"""Markers of the tests handed to the xdist workers first, longest kind first; the rest follow."""


def dispatch_rank(item: pytest.Item) -> int:
    return next((rank for rank, marker in enumerate(DISPATCH_ORDER) if item.get_closest_marker(marker)), len(DISPATCH_ORDER))


def dispatch_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Longest kind first (DISPATCH_ORDER), stable within a kind. The first test to read a session
    run builds it, so it goes no later than the ``slow`` tests; the tests that only read a run an
    earlier test builds (not marked ``slow``: no long work of their own) go last, since a worker
    that took one early would wait on the run's lock while other tests wait for a worker."""
    slow = DISPATCH_ORDER.index("slow")
    built: set[str] = set()
    keys = {}
    for item in sorted(items, key=dispatch_rank):
        runs = {name for name in getattr(item, "fixturenames", ()) if name in SESSION_RUNS}
        if runs and runs <= built and item.get_closest_marker("slow") is None:
            keys[item.nodeid] = len(DISPATCH_ORDER) + 1
        else:
            keys[item.nodeid] = min(dispatch_rank(item), slow) if runs - built else dispatch_rank(item)
        built |= runs
    return sorted(items, key=lambda item: keys[item.nodeid])


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Tests join their xdist group; the long ones come first; tests marked ``cuda`` are skipped,
    saying why, where torch sees no GPU.

    xdist (``--no-loadscope-reorder``, pyproject.toml) hands out groups and single tests in the
    order of their first test here. Longest first keeps both workers busy to the end: in
    alphabetical order the SLURM and local runs, the shard-size runs and the long single tests
    (kill and resume, the ImageNet layout, the README example) ended on one worker while the other,
    done, left a core idle for two minutes.
    """
    for item in items:
        if group := xdist_group(item):
            item.add_marker(pytest.mark.xdist_group(group))
    items[:] = dispatch_order(items)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); benchmarks/gpu_check.sh runs them")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def strict_host(monkeypatch):
    """Within the test, ``np.asarray(tensor)`` raises on the CPU as it does for a CUDA tensor."""
    # Recorded first: importing sitecustomize with torch loaded installs the refusal for good, and
    # monkeypatch would then "restore" the refusal, failing later tests of the same process.
    monkeypatch.setattr(torch.Tensor, "__array__", torch.Tensor.__array__)
    from strict_host.sitecustomize import refuse_implicit_conversion

    monkeypatch.setattr(torch.Tensor, "__array__", refuse_implicit_conversion)


@pytest.fixture(scope="session")
def bank() -> np.ndarray:
    """SVDS's mel filterbank (513 bins to 80 bands), read by the audio tests."""
    return mel_filterbank()


@pytest.fixture(scope="session")
def strict_host_env() -> dict[str, str]:
    """Environment for a subprocess (e.g. Snakemake and its jobs) with the same strict check."""
    path = os.pathsep.join(p for p in (str(STRICT_HOST), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def snakemake_command(workdir: Path, *args: str, overlay: str | None = None) -> list[str]:
    """Snakemake on config.yaml + presets/test.yaml (+ `overlay`) in `workdir`.

    `args` (targets and flags) come first: --configfile takes every later word.
    """
    configs = [str(ROOT / "config.yaml"), str(ROOT / "presets" / "test.yaml")] + ([overlay] if overlay else [])
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            *args, "--configfile", *configs]


def snakemake(workdir: Path, *args: str, overlay: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(snakemake_command(workdir, "--cores", "2", *args, overlay=overlay), capture_output=True, text=True,
                            timeout=2400)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def shared_runs(request, tmp_path_factory) -> SharedRuns:
    """Session runs built once per pytest invocation, shared by every xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    folder = invocation_folder(tmp_path_factory.getbasetemp(), worker, os.environ.get("PYTEST_XDIST_TESTRUNUID"))
    return SharedRuns(folder, worker or "main", request.session)


@pytest.fixture(scope="session")
def run(shared_runs) -> Path:
    """The workflow on presets/test.yaml, run locally once per pytest invocation. Tests that run
    Snakemake in it pass --nolock: another worker may be reading it at the same time."""
    return shared_runs.get("test-preset", lambda workdir: snakemake(workdir))


def table(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "tables" / f"{name}.csv")
