"""Read one model's evaluation subset of a shard as tensors, a batch of items at a time.

The explain, label-flip, refine and localised stages all read their items through
:func:`open_subset`. Unlike :mod:`advxai.stages.image_shards`, whose short jobs avoid torch, this
module hands out tensors: only the model stages import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..store import read_h5, read_h5_rows, require_params
from .image_shards import rows_of, shard_ids, shard_inputs_at, subset_ids
from .settings import ModelSpec


@dataclass(frozen=True)
class ShardFiles:
    """The files of one shard that every evaluation stage reads."""

    images: str  # decoded uint8 images of the shard
    adversaries: str  # the model's PGD adversaries of the shard
    subset: str  # the model's evaluation subsets

    @property
    def paths(self) -> list[str]:
        return [self.images, self.adversaries, self.subset]


@dataclass
class SubsetReader:
    """One evaluation subset of a shard, read a batch of items at a time.

    Ids, predictions and segment counts are held for the whole subset; the model inputs and the
    segment maps (about 2 MB per 224 px image) are read per batch, so a job's memory does not
    grow with its shard (benchmarks/shard_memory.py).
    """

    shard: ShardFiles
    segment_files: Mapping[str, str]
    ids: list[str]
    rows: np.ndarray  # the items' rows in the shard's images and adversaries files
    mask_rows: dict[str, np.ndarray]  # and in each segmentation's file
    counts: dict[str, np.ndarray]
    clean_prediction: np.ndarray
    adversarial_prediction: np.ndarray

    def inputs(self, batch: slice) -> dict[str, torch.Tensor]:
        """The clean and adversarial model inputs of the items in ``batch``."""
        clean, adversarial = shard_inputs_at(self.shard.images, self.shard.adversaries, self.rows[batch])
        return {"clean": torch.from_numpy(clean), "adversarial": torch.from_numpy(adversarial)}

    def masks(self, batch: slice) -> dict[str, torch.Tensor]:
        """Segment id maps of the items in ``batch``, per segmentation."""
        return {
            segmentation: torch.from_numpy(read_h5_rows(path, ["masks"], self.mask_rows[segmentation][batch])["masks"].astype(np.int64))
            for segmentation, path in self.segment_files.items()
        }


def _mask_rows(path: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``ids`` in a segments file, and their segment counts."""
    stored = read_h5(path, ["ids", "n_segments"])
    rows = rows_of(ids, stored["ids"], path)
    return rows, stored["n_segments"][rows]


def open_subset(shard: ShardFiles, which: str, model: ModelSpec, segment_files: Mapping[str, str]) -> SubsetReader:
    """The shard's ``which`` subset (``labelflip`` or ``localised``), its inputs and segment maps left on disk.

    The adversaries must come from ``model``: a stale file written for other weights fails here.
    """
    require_params(shard.adversaries, {"model": model.as_params()})
    item_ids = shard_ids(shard.images, shard.adversaries)
    ids = subset_ids(shard.subset, item_ids, which)
    rows = rows_of(ids, item_ids, shard.images)
    predictions = read_h5_rows(shard.adversaries, ["clean_prediction", "final_prediction"], rows)
    mask_rows, counts = {}, {}
    for segmentation, path in segment_files.items():
        mask_rows[segmentation], counts[segmentation] = _mask_rows(path, ids)
    return SubsetReader(shard, dict(segment_files), ids, rows, mask_rows, counts,
                        predictions["clean_prediction"], predictions["final_prediction"])
