"""Image shards: decode a shard (rule image_shard), and read a shard's rows, ids and subsets for the other stages.

Like :mod:`advxai.stages.image_subsets` and :mod:`advxai.stages.image_segments`, without torch: these
short jobs are the most numerous of a run (one per shard, model and segmentation), and a torch
import would cost each of them several seconds of CPU (benchmarks/job_startup.py). The inputs
they build are the same arrays the model stages turn into tensors (:func:`shard_inputs_at`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from ..data.image_items import locate, read_image_manifest
from ..data.images import load_image, normalized_pixels, preprocess
from ..store import read_h5, read_h5_rows, write_h5
from .settings import ShardSettings


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
        {"ids": [i.id for i in shard], "sources": [i.source for i in shard], "labels": np.array([i.label for i in shard]),
         "images": images},
        stage="image_shard",
        params=settings.as_params(),
    )
