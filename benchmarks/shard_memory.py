"""Benchmark: peak memory and time of an image job against its shard size.

The explanation, label-flip and localised jobs read their subset a batch at a time (the clean and
adversarial model inputs, the segment maps). This fabricates shards of random 224 px images with
small perturbations and 4 × 4 rectangle segments, and runs three real stage functions on each,
every run in a fresh interpreter: ``explain_shard`` for the saliency family (Sal, SG, SG²,
VarGrad), ``labelflip_shard`` on its rankings at k = 3, and ``localised_shard`` (Saliency at
k = 3) on the same images. It prints each job's peak
resident memory (``ru_maxrss``) and seconds per image, and the memory per image beyond the
smallest shard, from which ``mem_mb`` for a shard size can be set (profiles/slurm).

Run: ``PYTHONPATH=src python benchmarks/shard_memory.py [--sizes 8,64,256] [--model resnet18]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

GRID = 4

_JOB = """
import json, resource, sys, time
import torch
from advxai.stages.image import explain_shard, labelflip_shard, localised_shard
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.refine import refine_shard
from advxai.stages.settings import ExplainFamilySettings, LabelflipSettings, LocalisedSettings, ModelSpec, RefineSettings
torch.set_num_threads({threads})
folder, stage = {folder!r}, {stage!r}
shard = ShardFiles(images=folder + "/images.h5", adversaries=folder + "/adversaries.h5", subset=folder + "/subset.h5")
model = ModelSpec(architecture={model!r}, weights=None, resize=256, crop=224, arithmetic="exact")
start = time.perf_counter()
if stage == "explain":
    family = ExplainFamilySettings.from_params({{"family": "saliency", "explainers": ["sal", "sal-sg", "sal-sg2", "sal-vg"], "seed": 0,
        "segmentations": ["rect"], "noise_samples": {noise}, "noise_std": 1.0, "keep_attributions": False}})
    explain_shard(shard, {{"rect": folder + "/segments.h5"}}, folder + "/explain.h5", model=model, explain=family,
                  batch_size={batch}, device=torch.device("cpu"))
elif stage == "labelflip":
    settings = LabelflipSettings(segmentation="rect", k=3, ks=(), fractions=())  # memory hardly depends on the k sweep
    labelflip_shard(shard, folder + "/segments.h5", [folder + "/explain.h5"], folder + "/labelflip.h5", model=model,
                    labelflip=settings, batch_size={batch}, device=torch.device("cpu"))
else:
    settings = LocalisedSettings.from_params({{"segmentation": "rect", "ks": [3], "explainers": ["sal"], "extra": [], "seed": 0}})
    refine_shard(shard, folder + "/segments.h5", folder + "/refined.h5", model=model, refine_settings=RefineSettings("rect", (3,)),
                 batch_size={batch}, device=torch.device("cpu"))
    localised_shard(shard, folder + "/segments.h5", folder + "/refined.h5", folder + "/localised.h5", model=model, localised=settings,
                    batch_size={batch}, device=torch.device("cpu"))
print(json.dumps({{"seconds": time.perf_counter() - start, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def fabricate_shard(folder: Path, n_images: int, model: str, side: int = 224) -> None:
    """A shard of ``n_images`` random photos whose adversaries succeeded, all in the label-flip subset."""
    from advxai.segments import rectangles
    from advxai.stages.settings import ModelSpec
    from advxai.store import write_h5

    rng = np.random.default_rng(n_images)
    ids = [f"img{i:05d}" for i in range(n_images)]
    write_h5(folder / "images.h5", {"ids": ids, "labels": np.zeros(n_images, int),
                                    "images": rng.integers(0, 256, (n_images, side, side, 3), dtype=np.uint8)},
             stage="image_shard", params={})
    perturbation = rng.uniform(-0.05, 0.05, (n_images, 3, side, side)).astype(np.float32)
    write_h5(folder / "adversaries.h5", {"ids": ids, "perturbation": perturbation, "clean_prediction": np.zeros(n_images, int),
                                         "final_prediction": np.ones(n_images, int), "success": np.ones(n_images, bool)},
             stage="attack",
             params={"model": ModelSpec(architecture=model, weights=None, resize=256, crop=side, arithmetic="exact").as_params()})
    write_h5(folder / "subset.h5", {"labelflip_ids": ids, "localised_ids": ids}, stage="subsets", params={})
    masks = np.broadcast_to(rectangles(side, side, GRID).astype(np.int16), (n_images, side, side))
    write_h5(folder / "segments.h5", {"ids": ids, "masks": masks, "n_segments": np.full(n_images, GRID * GRID)}, stage="segments",
             params={})


def run_job(folder: Path, stage: str, args: argparse.Namespace) -> dict[str, float]:
    code = _JOB.format(threads=args.threads, folder=str(folder), stage=stage, model=args.model, noise=args.noise, batch=args.batch_size)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{stage} on {folder} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,64,256", help="shard sizes (images per shard job)")
    parser.add_argument("--model", default="resnet18", help="torchvision model, random weights")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--noise", type=int, default=2, help="noise samples J of the saliency family")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.model} (random weights) at 224 px, batch {args.batch_size}, saliency family J = {args.noise}, {args.threads} threads")
    print(f"{'shard size':>10} {'job':>10} {'peak MB':>9} {'s/image':>8}")
    peaks: dict[str, list[tuple[int, float]]] = {"explain": [], "labelflip": [], "localised": []}
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fabricate_shard(folder, size, args.model)
            for stage in peaks:
                measured = run_job(folder, stage, args)
                peaks[stage].append((size, measured["max_rss_mb"]))
                print(f"{size:>10} {stage:>10} {measured['max_rss_mb']:>9.0f} {measured['seconds'] / size:>8.3f}")
    for stage, points in peaks.items():
        (small, small_mb), (large, large_mb) = points[0], points[-1]
        if large > small:
            print(f"{stage}: {(large_mb - small_mb) / (large - small):.2f} MB per image of the shard beyond {small}")


if __name__ == "__main__":
    main()
