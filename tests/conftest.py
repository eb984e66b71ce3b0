"""Shared by the end-to-end tests: Snakemake on presets/test.yaml, and one local run per session
that the workflow tests read and the SLURM tests compare against."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def snakemake_command(workdir: Path, *args: str, overlay: str | None = None) -> list[str]:
    """Snakemake on config.yaml + presets/test.yaml (+ `overlay`) in `workdir`, with `args` appended."""
    configs = [str(ROOT / "config.yaml"), str(ROOT / "presets" / "test.yaml")] + ([overlay] if overlay else [])
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", *configs, *args]


def snakemake(workdir: Path, *args: str, overlay: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(snakemake_command(workdir, "--cores", "2", *args, overlay=overlay), capture_output=True, text=True, timeout=1500)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> Path:
    """The workflow on presets/test.yaml, run locally once per session."""
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir)
    return workdir


def table(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "tables" / f"{name}.csv")
