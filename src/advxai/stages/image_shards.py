"""The image stages that run no model: decode a shard, draw the evaluation subsets, segment adversaries.

One function per workflow rule, like :mod:`advxai.stages.image`, but without torch: these
short jobs are the most numerous of a run (one per shard, model and segmentation), and a torch
import would cost each of them several seconds of CPU (benchmarks/job_startup.py). The inputs
they build are the same arrays the model stages turn into tensors (:func:`shard_inputs_at`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from .. import segments
from ..data.image_items import locate, read_image_manifest
from ..data.images import load_image, normalized_pixels, preprocess
from ..evaluation.subsets import LABELFLIP_STAGE, LOCALISED_STAGE, evaluation_subsets
from ..store import dataset_shape, read_h5, read_h5_rows, write_h5
from .settings import SegmentationSettings, ShardSettings, SubsetSettings


# ------------------------------------------------------------------------------------ reading
def shard_ids(images_path: str, adversaries_path: str) -> np.ndarray:
    """The item ids of a shard, in row order, after checking that its adversaries file holds the same images."""
    image_ids = read_h5(images_path, ["ids"])["ids"]
    if not np.array_equal(image_ids, read_h5(adversaries_path, ["ids"])["ids"]):
        raise ValueError(f"{adversaries_path} does not hold the images of {images_path}")
    return image_ids


def rows_of(ids: Sequence[str], stored_ids: Sequence[str], path: str) -> np.ndarray:
    """Rows of ``ids`` among a file's ``stored_ids``, in the order of ``ids``; an error naming ``path`` for any it lacks."""
    position = {item_id: i for i, item_id in enumerate(stored_ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise ValueError(f"{path} holds no item {missing[:3]}")
    return np.array([position[i] for i in ids], dtype=np.int64)


def shard_inputs_at(images_path: str, adversaries_path: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clean, adversarial) normalised float32 inputs of the shard's ``rows``, reading only those rows.

    A job that takes its items a batch at a time this way holds one batch.
    """
    clean = normalized_pixels(read_h5_rows(images_path, ["images"], rows)["images"])
    return clean, clean + read_h5_rows(adversaries_path, ["perturbation"], rows)["perturbation"]


def subset_ids(subset_path: str, ids: Sequence[str], which: str) -> list[str]:
    """The ids of this shard (in shard order) that belong to the ``which`` subset."""
    chosen = set(read_h5(subset_path, [f"{which}_ids"])[f"{which}_ids"])
    return [i for i in ids if i in chosen]


# ------------------------------------------------------------------------------------ stages
def shard_rows(shard: int, shard_size: int, max_images: int | None) -> tuple[int, int]:
    """Manifest rows ``start, stop`` of a shard: items in data set order, the first ``max_images`` only."""
    start = shard * shard_size
    stop = start + shard_size
    return start, stop if max_images is None else min(stop, max_images)


def build_image_shard(manifest: str, root: str | None, output: str, settings: ShardSettings) -> None:
    """Decode, resize and centre-crop one shard of a manifest's items to uint8 (docs/method.md §5.2).

    ``root`` is where the manifest's files lie now (None for bundled photographs); the shard
    stores their paths relative to it, so that it does not depend on where the data lies.
    """
    start, stop = shard_rows(settings.shard, settings.shard_size, settings.max_images)
    shard = read_image_manifest(manifest, start, stop)
    if not shard:
        raise ValueError(f"shard {settings.shard} is empty: {manifest} has no rows {start}..{stop - 1}")
    images = np.stack([preprocess(load_image(locate(item, root)), settings.resize, settings.crop) for item in tqdm(shard, desc="decode")])
    write_h5(
        output,
        {"ids": [i.id for i in shard], "sources": [i.source for i in shard], "labels": np.array([i.label for i in shard]), "images": images},
        stage="image_shard",
        params=settings.as_params(),
    )


def draw_subsets(adversary_paths: Sequence[str], output: str, *, subset: SubsetSettings) -> None:
    """The evaluation subsets of one model: label flip and localised (docs/decisions.md §10.10), from successful adversaries."""
    ids, success = [], []
    for path in adversary_paths:
        shard = read_h5(path, ["ids", "success"])
        ids += list(shard["ids"])
        success += list(shard["success"])
    drawn = evaluation_subsets(ids, success, fraction=subset.fraction, localised_fraction=subset.localised_fraction, seed=subset.seed, model=subset.model)
    write_h5(
        output,
        {"labelflip_ids": np.array(drawn.labelflip, dtype=str), "localised_ids": np.array(drawn.localised, dtype=str),
         "n_images": drawn.n_items, "n_adversaries": drawn.n_adversaries},
        stage="subsets",
        params=subset.as_params(),
        seeds={"seed": subset.seed, "stages": [LABELFLIP_STAGE, LOCALISED_STAGE]},
    )


def segment_shard(images_path: str, adversaries_path: str, subset_path: str, output: str, *, segmentation: SegmentationSettings) -> None:
    """Segment id maps of the shard's subset images, and the segment count of every successful adversary.

    4×4 rectangles, or SLIC on the normalised adversary. The maps feed the explanation and metric
    jobs, which process the subsets only; the counts of all successful adversaries are Table 6, as
    the paper counts the SLIC segments of all adversaries. SLIC runs once per adversary.
    """
    all_ids = shard_ids(images_path, adversaries_path)
    chosen = set(subset_ids(subset_path, all_ids, "labelflip")) | set(subset_ids(subset_path, all_ids, "localised"))
    success = read_h5(adversaries_path, ["success"])["success"]
    adversary_ids = [i for i, ok in zip(all_ids, success) if ok]
    height, width = dataset_shape(images_path, "images")[1:3]
    if segmentation.method == "rect":
        grid = segments.rectangles(height, width, segmentation.grid)
        maps = (grid for _ in adversary_ids)
    else:
        adversarial = shard_inputs_at(images_path, adversaries_path, np.flatnonzero(success))[1]  # the rows of adversary_ids
        maps = (segments.slic(x, n_segments=segmentation.n_segments, compactness=segmentation.compactness, sigma=segmentation.sigma)
                for x in tqdm(adversarial, desc="slic"))
    counts, masks, ids = [], [], []
    for item_id, mask in zip(adversary_ids, maps):
        counts.append(segments.n_segments(mask))
        if item_id in chosen:
            ids.append(item_id)
            masks.append(mask.astype(np.int16))
    counts = np.array(counts, dtype=np.int64)
    write_h5(
        output,
        {"ids": np.array(ids, dtype=str), "masks": np.stack(masks) if masks else np.zeros((0, height, width), np.int16),
         "n_segments": counts[[i in chosen for i in adversary_ids]], "adversary_ids": np.array(adversary_ids, dtype=str), "adversary_n_segments": counts},
        stage="segments",
        params=segmentation.as_params(),
    )
