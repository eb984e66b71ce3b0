"""The refine stage of both domains: the refined k-segment perturbations, cached (docs/method.md §4, §8.3).

A refine file holds, per item and k, the ids of the k segments of largest perturbation magnitude,
the prediction on the refined input, whether it still flips and whether the item has fewer
segments than k. The refined perturbation itself is stored compactly, as those segment ids plus a
reference to the adversaries and segments it was cut from (the file's ``refines`` attribute):
:func:`~advxai.evaluation.selection.hybrid` rebuilds it exactly. The localised stage reads the
file instead of refining again, so changing only the localised explainers reruns no refine job.

Layout: ``ids``, ``ks``, ``n_segments``, ``width`` and per k ``k<k>/segment_ids`` ``(N, k)``,
``k<k>/prediction``, ``k<k>/flipped``, ``k<k>/fewer_segments``; the audio file has one such group
per attack direction (``nosing_to_sing/…``, ``sing_to_nosing/…``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..evaluation.flips import ClassChange, ThresholdCrossing
from ..evaluation.localised import Refinement, refine
from ..evaluation.selection import selection_width
from ..names import AUDIO_DIRECTIONS
from ..store import BatchCheckpoint, read_h5, read_provenance, require_params, write_h5
from ..svds.model import load_detector
from .audio import HYBRID_BATCH, ExcerptTensors, detector_threshold, read_excerpts
from .settings import ModelSpec, RefineSettings


def refinement_arrays(
    refinements: Mapping[int, Refinement], n_segments: np.ndarray, prefix: str = ""
) -> dict[str, np.ndarray]:
    """The stored form of the refinements of ``N`` items (the module's layout, under ``prefix``)."""
    arrays: dict[str, np.ndarray] = {}
    for k, refinement in refinements.items():
        arrays[f"{prefix}k{k}/segment_ids"] = (
            refinement.segment_ids().astype(np.int32).reshape(-1, k)
        )  # (0, k) without items
        arrays[f"{prefix}k{k}/prediction"] = refinement.decisions
        arrays[f"{prefix}k{k}/flipped"] = refinement.kept
        arrays[f"{prefix}k{k}/fewer_segments"] = np.asarray(n_segments) < k
    return arrays


def read_refinements(path: str, ks: Sequence[int], ids: Sequence[str], prefix: str = "") -> dict[int, Refinement]:
    """The refinements of ``ids`` at ``ks`` from a refine file; one clear error if it holds others."""
    stored = read_h5(path)
    if not np.array_equal(stored[f"{prefix}ids"], np.asarray(ids, dtype=str)):
        raise ValueError(f"{path} refines other items than the localised subset of its shard; rerun its refine rule")
    missing = [k for k in ks if f"{prefix}k{k}/segment_ids" not in stored]
    if missing:
        raise ValueError(f"{path} holds no refinement for k = {missing}; rerun its refine rule")
    width = int(stored[f"{prefix}width"])
    return {
        k: Refinement.from_segment_ids(
            stored[f"{prefix}k{k}/segment_ids"],
            width,
            stored[f"{prefix}k{k}/prediction"],
            stored[f"{prefix}k{k}/flipped"],
        )
        for k in ks
    }


def refined_sources(path: str) -> dict[str, str]:
    """The files a refine file's perturbations are cut from (its ``refines`` attribute)."""
    return json.loads(read_provenance(path)["refines"])


# ------------------------------------------------------------------------------------ images
def refine_shard(
    shard,
    segments_file: str,
    output: str,
    *,
    model: ModelSpec,
    refine_settings: RefineSettings,
    batch_size: int | str,
    device: torch.device,
) -> None:
    """Refine every adversary of the shard's localised subset at every k (docs/method.md §8.3).

    ``shard``: the shard's :class:`~advxai.stages.image.ShardFiles`. The ground truth has the
    shard's selection width in every slice, so that resumed slices and the localised stage agree.
    """
    from .image import job_batch_size, model_attrs, model_from_spec, open_subset  # the image stages import this module's reader

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


def require_refined(path: str, model: ModelSpec, segmentation: str, ks: Sequence[int]) -> None:
    """A refine file must come from ``model`` and this segmentation and ks (a stale one fails here)."""
    require_params(path, {"model": model.as_params(), "refine": RefineSettings(segmentation, tuple(ks)).as_params()})


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
