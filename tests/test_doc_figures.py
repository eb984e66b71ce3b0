"""Figures that the docs quote, recomputed: the paper DAG's job count (docs/data.md), its sbatch
submissions with and without the SLURM profile's groups (docs/cluster.md), and the sizes those
pages quote from the profile and the paper preset.

The counts come from one dry run of presets/paper.yaml with the SLURM profile over a fabricated
50 000-row image manifest (the checkpoint's output written directly, so no image tree is listed;
about 40 s of Snakemake's CPU for the 6 729-job DAG).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from count_submissions import count_submissions  # noqa: E402  (found on the sys.path entry just added)

N_IMAGENET_VAL = 50_000
IMAGES_PER_CLASS = 50


def number(text: str) -> int:
    """An integer as the docs write it, thousands apart by a space (``6 729``)."""
    return int(re.sub(r"\s", "", text))


def quoted(doc: str, pattern: str) -> list[int]:
    text = (ROOT / "docs" / doc).read_text()
    found = [number(match) for match in re.findall(pattern, text)]
    assert found, f"docs/{doc} no longer says {pattern!r}"
    return found


def fabricated_manifest(path: Path, n_images: int = N_IMAGENET_VAL) -> None:
    """The image manifest of an ImageNet validation set as the image_manifest job writes it."""
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("id", "path", "label", "bytes"))
        for i in range(n_images):
            label = i // IMAGES_PER_CLASS
            writer.writerow((f"ILSVRC2012_val_{i:08d}", f"n{label:08d}/ILSVRC2012_val_{i:08d}.JPEG", label, 1))


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("paper_dry_run")
    for folder in ("imagenet", "jamendo", "run"):
        (base / folder).mkdir()
    fabricated_manifest(base / "run" / "image" / "data" / "imagenet" / "manifest.csv")
    roots = base / "roots.yaml"
    roots.write_text(f"image:\n  imagenet_root: {base / 'imagenet'}\naudio:\n  jamendo_root: {base / 'jamendo'}\n")
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(base / "run"), "-n",
               "--workflow-profile", str(ROOT / "profiles" / "slurm"),
               "--configfile", str(ROOT / "config.yaml"), str(ROOT / "presets" / "paper.yaml"), str(roots)]
    # Hash seed 2 made Snakemake's scheduler stop ("Out of jobs ready", its issue 823) while the
    # profile packed image shards into group jobs (docs/decisions.md, decision 47).
    environment = {**os.environ, "PYTHONHASHSEED": "2"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=ROOT, check=False, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def dag_total(dry_run: str) -> int:
    """The ``total`` of the last "Job stats" table (after the checkpoint's jobs are known)."""
    return int(re.findall(r"^total\s+(\d+)$", dry_run, flags=re.MULTILINE)[-1])


@pytest.mark.slow
def test_the_paper_dag_job_count_in_the_data_docs(paper_dry_run):
    assert quoted("data.md", r"full DAG \((\d[\d ]*) jobs\)") == [dag_total(paper_dry_run)]


@pytest.mark.slow
def test_the_sbatch_submission_counts_in_the_cluster_docs(paper_dry_run):
    counted = count_submissions(paper_dry_run)
    assert quoted("cluster.md", r"cost (\d[\d ]*) sbatch submissions") == [counted.jobs]
    assert quoted("cluster.md", r"\*\*(\d[\d ]*)\*\* submissions") == [counted.grouped]
    table = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d[\d ]*) \|$", (ROOT / "docs" / "cluster.md").read_text(), flags=re.MULTILINE))
    assert {group: number(count) for group, count in table.items()} == counted.groups


def test_the_sizes_the_cluster_docs_quote():
    """An image shard job's memory, the model jobs' CPUs, the paper preset's shards, models and detectors."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    paper = yaml.safe_load((ROOT / "presets" / "paper.yaml").read_text())
    assert "group-components" not in profile  # decision 47
    memory = re.search(r"an image shard job asks for 1 CPU and ([\d ]+) MB", (ROOT / "docs" / "cluster.md").read_text()).group(1)
    assert number(memory) == profile["set-resources"]["image_shard"]["mem_mb"]
    assert quoted("cluster.md", r"model rules use (\d+) torch threads") == [profile["cores"]]
    assert quoted("cluster.md", r"\((\d[\d ]*) images in shards of") == [N_IMAGENET_VAL]
    assert quoted("cluster.md", r"images in shards of (\d+)") == [paper["image"]["shard_size"]]
    enabled = [m for m, entry in paper["image"]["models"].items() if entry.get("enabled", True)]
    assert "the five paper models" in (ROOT / "docs" / "cluster.md").read_text() and len(enabled) == 5
    assert "five detectors trained and one attacked" in (ROOT / "docs" / "cluster.md").read_text()
    assert len(paper["audio"]["seeds"]) == 5 and len(paper["audio"]["experiment_seeds"]) == 1
