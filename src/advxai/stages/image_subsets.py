"""Rule image_subsets: draw one model's evaluation subsets from its successful adversaries (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..evaluation.subsets import LABELFLIP_STAGE, LOCALISED_STAGE, evaluation_subsets
from ..store import read_h5, write_h5
from .settings import SubsetSettings


def draw_subsets(adversary_paths: Sequence[str], output: str, *, subset: SubsetSettings) -> None:
    """The evaluation subsets of one model: label flip and localised (docs/decisions.md, decision 10), from successful adversaries."""
    ids, success = [], []
    for path in adversary_paths:
        shard = read_h5(path, ["ids", "success"])
        ids += list(shard["ids"])
        success += list(shard["success"])
    drawn = evaluation_subsets(ids, success, fraction=subset.fraction, localised_fraction=subset.localised_fraction, seed=subset.seed,
                               model=subset.model)
    write_h5(
        output,
        {"labelflip_ids": np.array(drawn.labelflip, dtype=str), "localised_ids": np.array(drawn.localised, dtype=str),
         "n_images": drawn.n_items, "n_adversaries": drawn.n_adversaries},
        stage="subsets",
        params=subset.as_params(),
        seeds={"seed": subset.seed, "stages": [LABELFLIP_STAGE, LOCALISED_STAGE]},
    )
