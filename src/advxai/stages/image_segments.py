"""Rule image_segments: segment maps of a shard's subset images, and the SLIC counts of Table 6 (no torch)."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .. import segments
from ..store import dataset_shape, read_h5, write_h5
from .image_shards import shard_ids, shard_inputs_at, subset_ids
from .settings import SegmentationSettings


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
         "n_segments": counts[[i in chosen for i in adversary_ids]], "adversary_ids": np.array(adversary_ids, dtype=str),
         "adversary_n_segments": counts},
        stage="segments",
        params=segmentation.as_params(),
    )
