"""Moving the data folders reruns nothing; their content decides what reruns (docs/data.md).

A fabricated ImageNet tree and a synthetic corpus in Jamendo's layout are the configured data
roots; the data stages (manifests, image shards, audio features) run, the folders move, and a
dry run must find nothing to do. A forced re-listing of unchanged images rebuilds no shard; an
added image rebuilds them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fabricate import imagenet_tree, write_random_jpeg

from advxai.data.synthetic_audio import write_synthetic_corpus

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

DATA_TARGETS = ["image/data/imagenet/72-64/shard0.h5"] + [f"audio/features/{split}.h5" for split in ("train", "valid", "test")]


def snakemake(workdir: Path, overlay: Path, *args: str) -> str:
    command = [sys.executable, "-m", "snakemake", *args, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
               "--configfile", str(ROOT / "config.yaml"), str(ROOT / "presets" / "test.yaml"), str(overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def overlay_for(path: Path, imagenet: Path, jamendo: Path) -> Path:
    path.write_text(f"image:\n  dataset: imagenet\n  imagenet_root: {imagenet}\naudio:\n  corpus: jamendo\n  jamendo_root: {jamendo}\n")
    return path


def executed_rules(log: str) -> set[str]:
    starts = ("rule ", "localrule ", "checkpoint ", "localcheckpoint ")
    return {line.split()[-1].rstrip(":") for line in log.splitlines() if line.startswith(starts)}


def test_moving_the_data_reruns_nothing_and_content_decides(tmp_path):
    imagenet = imagenet_tree(tmp_path / "first" / "imagenet")
    jamendo = tmp_path / "first" / "jamendo"
    write_synthetic_corpus(jamendo, n_songs={"train": 2, "valid": 1, "test": 1}, song_seconds=6.0, seed=7)
    workdir = tmp_path / "run"
    workdir.mkdir()
    log = snakemake(workdir, overlay_for(tmp_path / "first.yaml", imagenet, jamendo), *DATA_TARGETS)
    assert {"image_manifest", "image_shard", "audio_manifest", "audio_features"} <= executed_rules(log)
    assert (workdir / "data" / "imagenet").resolve() == imagenet.resolve()

    (tmp_path / "second").mkdir()
    moved_imagenet = imagenet.rename(tmp_path / "second" / "imagenet")
    moved_jamendo = jamendo.rename(tmp_path / "second" / "jamendo")
    moved = overlay_for(tmp_path / "second.yaml", moved_imagenet, moved_jamendo)
    dry = snakemake(workdir, moved, "-n", *DATA_TARGETS)
    assert "Nothing to be done" in dry, dry[-3000:]
    assert (workdir / "data" / "imagenet").resolve() == moved_imagenet.resolve()
    assert (workdir / "data" / "jamendo").resolve() == moved_jamendo.resolve()

    # Re-listing unchanged images leaves every shard alone (the manifest's content is the same) ...
    log = snakemake(workdir, moved, *DATA_TARGETS, "--forcerun", "image_manifest")
    assert executed_rules(log) == {"image_manifest"}
    # ... an added image changes the manifest, and the shards are rebuilt from it.
    write_random_jpeg(moved_imagenet / "n00000000" / "ILSVRC2012_val_99999.JPEG", np.random.default_rng(1))
    log = snakemake(workdir, moved, *DATA_TARGETS, "--forcerun", "image_manifest")
    assert executed_rules(log) == {"image_manifest", "image_shard"}
