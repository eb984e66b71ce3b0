"""Benchmark: what scoring through ``advxai.evaluate`` costs beside the workflow's image stages.

Both sides score the same images with the same settings (presets/test.yaml's random-weight
ResNet-18 at 64 px on its bundled photos, by default): the stages as the workflow's jobs call them
(clean predictions, PGD, subsets, segments, one explanation job per family, label flips and the
localised experiment per segmentation, each writing its HDF5 file), and the one call, which holds
everything in memory. Decoding the photos is left out of both. The sides alternate round by round,
so that the machine's drift falls on both, and each keeps its fastest round. Times are the
process's CPU seconds (user + system, every torch thread): on a shared machine they are far steadier
than wall time, which another user's load stretches.

Run: ``PYTHONPATH=src python benchmarks/api_overhead.py [--rounds 3] [--explainers lime sal ...]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_api import load, preset_call  # noqa: E402  (the call with the preset's settings)

from advxai.data.image_items import write_image_manifest  # noqa: E402
from advxai.explainers.settings import ExplainerSettings  # noqa: E402
from advxai.runtime import use_device  # noqa: E402
from advxai.stages import image as stages  # noqa: E402
from advxai.stages.image_segments import segment_shard  # noqa: E402
from advxai.stages.image_shards import build_image_shard  # noqa: E402
from advxai.stages.image_subset_reader import ShardFiles  # noqa: E402
from advxai.stages.image_subsets import draw_subsets  # noqa: E402
from advxai.stages.refine import refine_shard  # noqa: E402
from advxai.stages.settings import (  # noqa: E402
    ExplainFamilySettings,
    LabelflipSettings,
    LocalisedSettings,
    ModelSpec,
    PgdSettings,
    RefineSettings,
    SegmentationSettings,
    ShardSettings,
    SubsetSettings,
)


def families(explainers: list[str], segmentations: list[str], extra: list) -> dict[str, list[str]]:
    """The workflow's explanation jobs (workflow/rules/common.smk: explanation_families)."""
    from advxai.names import FAMILIES

    jobs = {f: [e for e in members if e in explainers] for f, members in FAMILIES.items()}
    jobs = {f: members for f, members in jobs.items() if members}
    if "lime" in explainers:
        jobs.update({f"lime_{seg}": ["lime"] for seg in segmentations})
    if extra:
        jobs["extra"] = [e["name"] for e in extra]
    return jobs


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_stages(config: dict, explainers: list[str], folder: Path) -> float:
    """CPU seconds of the workflow's image stages on one shard of the preset's images."""
    image, seed = config["image"], config["seed"]
    ((label, entry),) = [(m, e) for m, e in image["models"].items() if e.get("enabled", True)]
    device = use_device(config["device"])
    manifest, shard = folder / "manifest.csv", folder / "shard.h5"
    write_image_manifest("bundled", None, manifest)
    build_image_shard(
        str(manifest),
        None,
        str(shard),
        ShardSettings(
            dataset="bundled",
            max_images=image["max_images"],
            shard_size=image["shard_size"],
            shard=0,
            resize=entry["resize_size"],
            crop=entry["input_size"],
        ),
    )
    spec = ModelSpec(
        architecture=entry["architecture"],
        weights=entry["weights"],
        resize=entry["resize_size"],
        crop=entry["input_size"],
        arithmetic=image["arithmetic"],
    )
    batch, explain = image["batch_size"], {k: v for k, v in image["explain"].items() if k != "keep_attributions"}
    segmentations = ["rect", "slic"]
    start = cpu_seconds()
    stages.clean_predictions(str(shard), str(folder / "clean.h5"), model=spec, batch_size=batch, device=device)
    pgd = PgdSettings(
        epsilon=entry["epsilon"],
        step_size=entry["step_size"],
        steps=image["pgd"]["steps"],
        early_stop=image["pgd"]["early_stop"],
        seed=seed,
    )
    stages.attack_shard(
        str(shard),
        str(folder / "clean.h5"),
        str(folder / "adv.h5"),
        model=spec,
        pgd=pgd,
        batch_size=batch,
        device=device,
    )
    draw_subsets(
        [str(folder / "adv.h5")],
        str(folder / "subset.h5"),
        subset=SubsetSettings(**image["subset"], seed=seed, model=label),
    )
    files = ShardFiles(images=str(shard), adversaries=str(folder / "adv.h5"), subset=str(folder / "subset.h5"))
    for seg in segmentations:
        settings = SegmentationSettings(method=seg, **image[seg])
        segment_shard(str(shard), files.adversaries, files.subset, str(folder / f"seg_{seg}.h5"), segmentation=settings)
    explained = {}
    for family, members in families(explainers, segmentations, image["extra_explainers"]).items():
        segs = [family.removeprefix("lime_")] if family.startswith("lime_") else segmentations
        job = ExplainFamilySettings(
            family=family,
            explainers=tuple(members),
            seed=seed,
            keep_attributions=False,
            segmentations=tuple(segs),
            explainer=ExplainerSettings(**explain).only(members if family != "extra" else []),
            extra=tuple(image["extra_explainers"]) if family == "extra" else (),
        )
        explained[family] = str(folder / f"explain_{family}.h5")
        stages.explain_shard(
            files,
            {s: str(folder / f"seg_{s}.h5") for s in segs},
            explained[family],
            model=spec,
            explain=job,
            batch_size=batch,
            device=device,
        )
    flip = image["labelflip"]
    for seg in segmentations:
        paths = [p for f, p in explained.items() if not f.startswith("lime_") or f == f"lime_{seg}"]
        ks = sorted({flip["k"], *flip["rect_ks"]})
        stages.labelflip_shard(
            files,
            str(folder / f"seg_{seg}.h5"),
            paths,
            str(folder / f"flips_{seg}.h5"),
            model=spec,
            labelflip=LabelflipSettings(segmentation=seg, k=flip["k"], ks=tuple(ks), fractions=()),
            batch_size=batch,
            device=device,
        )
        localised = LocalisedSettings(
            segmentation=seg,
            ks=tuple(image["localised"]["ks"]),
            explainers=tuple(explainers),
            extra=tuple(image["extra_explainers"]),
            seed=seed,
            explainer=ExplainerSettings(**explain).only(explainers),
        )
        refined = str(folder / f"refined_{seg}.h5")
        refine_shard(files, str(folder / f"seg_{seg}.h5"), refined, model=spec, refine_settings=RefineSettings(seg, localised.ks),
                     batch_size=batch, device=device)
        stages.localised_shard(
            files,
            str(folder / f"seg_{seg}.h5"),
            refined,
            str(folder / f"localised_{seg}.h5"),
            model=spec,
            localised=localised,
            batch_size=batch,
            device=device,
        )
    return cpu_seconds() - start


def run_call(config: dict, explainers: list[str]) -> float:
    """CPU seconds of the one call on the same images and settings (the photos decoded beforehand,
    as the stages' shard is)."""
    from test_api import bundled_items, load_image, preprocess

    image = config["image"]
    ((_, entry),) = [(m, e) for m, e in image["models"].items() if e.get("enabled", True)]
    items = bundled_items()[: image["max_images"]]
    pixels = np.stack([preprocess(load_image(i), entry["resize_size"], entry["input_size"]) for i in items])
    start = cpu_seconds()
    preset_call(
        pixels,
        explainers=[*explainers, *image["extra_explainers"]],
        k=sorted({image["labelflip"]["k"], *image["labelflip"]["rect_ks"]}),
    )
    return cpu_seconds() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explainers", nargs="+", default=None, help="default: the preset's (all 13)")
    args = parser.parse_args()
    config = load("config.yaml", "presets/test.yaml")
    explainers = args.explainers or list(config["image"]["explainers"])
    best = {"stages": np.inf, "call": np.inf}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            best["stages"] = min(best["stages"], run_stages(config, explainers, Path(folder)))
        best["call"] = min(best["call"], run_call(config, explainers))
        print(
            f"round {round_ + 1}: best stages {best['stages']:.2f} CPU s, best call {best['call']:.2f} CPU s",
            flush=True,
        )
    print(
        f"call / stages = {best['call'] / best['stages']:.3f} "
        f"(best of {args.rounds}; {len(explainers)} explainers + extras)"
    )


if __name__ == "__main__":
    main()
