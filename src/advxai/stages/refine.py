"""The refine stage of both domains: the refined k-segment perturbations, cached (docs/method.md §4, §8.3).

The localised stage reads the refine file instead of refining again, so changing only the
localised explainers reruns no refine job. The file's layout, and its readers:
:mod:`advxai.stages.refined_files`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..batching import job_batch_size
from ..evaluation.flips import ClassChange, ThresholdCrossing
from ..evaluation.localised import refine
from ..evaluation.selection import selection_width
from ..names import AUDIO_DIRECTIONS
from ..store import BatchCheckpoint, write_h5
from ..svds.model import load_detector
from .audio import HYBRID_BATCH, ExcerptTensors, detector_threshold, read_excerpts
from .image_models import model_attrs, model_from_spec
from .image_subset_reader import ShardFiles, open_subset
from .refined_files import refinement_arrays
from .settings import ModelSpec, RefineSettings


# ------------------------------------------------------------------------------------ images
def refine_shard(
    shard: ShardFiles,
    segments_file: str,
    output: str,
    *,
    model: ModelSpec,
    refine_settings: RefineSettings,
    batch_size: int | str,
    device: torch.device,
) -> None:
    """Refine every adversary of the shard's localised subset at every k (docs/method.md §8.3).

    The ground truth has the shard's selection width in every slice, so that resumed slices and the
    localised stage agree.
    """
    bundle = model_from_spec(model, device)
    segmentation = refine_settings.segmentation
    subset = open_subset(shard, "localised", model, {segmentation: segments_file})
    ids, counts = subset.ids, subset.counts[segmentation]
    width = selection_width(counts, np.asarray(refine_settings.ks))
    params = {"model": model.as_params(), "refine": refine_settings.as_params()}
    checkpoint = BatchCheckpoint(output, params, inputs=[*shard.paths, segments_file])
    forward_batch = job_batch_size(batch_size, bundle, device, backward=False, checkpoint=checkpoint)

    def run(batch: slice) -> dict[str, np.ndarray]:
        inputs = subset.inputs(batch)
        refinements = refine(
            bundle.module,
            ClassChange(subset.clean_prediction[batch]),
            inputs["clean"].to(device),
            inputs["adversarial"].to(device),
            subset.masks(batch)[segmentation].to(device),
            counts[batch],
            refine_settings.ks,
            forward_batch,
            width=width,
        )
        return refinement_arrays(refinements, counts[batch])

    arrays = checkpoint.run(len(ids), forward_batch, run) if len(ids) else _empty(refine_settings.ks)
    write_h5(
        output,
        {
            "ids": np.array(ids, dtype=str),
            "ks": np.array(refine_settings.ks),
            "n_segments": counts,
            "width": width,
            **arrays,
        },
        stage="refine",
        params=params,
        attrs=model_attrs(bundle, device, batch_size=forward_batch,
                          refines={"adversaries": shard.adversaries, "segments": segments_file}),
    )
    checkpoint.remove()


def _empty(ks: Sequence[int]) -> dict[str, np.ndarray]:
    """The layout of a refine file with no items (a shard whose localised subset is empty)."""
    arrays: dict[str, np.ndarray] = {}
    for k in ks:
        arrays.update(
            {
                f"k{k}/segment_ids": np.zeros((0, k), np.int32),
                f"k{k}/prediction": np.zeros(0, np.int64),
                f"k{k}/flipped": np.zeros(0, bool),
                f"k{k}/fewer_segments": np.zeros(0, bool),
            }
        )
    return arrays


# ------------------------------------------------------------------------------------ audio
def refine_excerpts(
    detector: str, evaluation: str, excerpts: str, output: str, *, ks: Sequence[int], device: torch.device
) -> None:
    """Refine every adversarial excerpt of both directions at every k, on its time-frequency tiles (method.md §4)."""
    model = load_detector(detector, device=device)
    threshold = detector_threshold(evaluation)
    arrays: dict[str, np.ndarray] = {"ks": np.array(ks)}
    for target, data in read_excerpts(excerpts).items():
        name = AUDIO_DIRECTIONS[target]
        x = ExcerptTensors.of(data, device)
        width = selection_width(x.n_segments, np.asarray(ks))
        refinements = refine(
            model,
            ThresholdCrossing(np.full(len(x.clean), target), threshold),
            x.clean,
            x.adversarial,
            x.masks,
            x.n_segments,
            ks,
            HYBRID_BATCH,
        )
        arrays.update({f"{name}/ids": data["ids"], f"{name}/n_segments": x.n_segments, f"{name}/width": width})
        arrays.update(refinement_arrays(refinements, x.n_segments, f"{name}/"))
    write_h5(
        output,
        arrays,
        stage="audio_refine",
        params={"ks": list(ks), "threshold": threshold},
        attrs={"refines": {"excerpts": excerpts}},
    )
