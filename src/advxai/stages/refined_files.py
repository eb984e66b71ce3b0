"""The refine stage's files: how refinements are stored, and reading them back (docs/method.md §4, §8.3).

A refine file holds, per item and k, the ids of the k segments of largest perturbation magnitude,
the prediction on the refined input, whether it still flips and whether the item has fewer
segments than k. The refined perturbation itself is stored compactly, as those segment ids plus a
reference to the adversaries and segments it was cut from (the file's ``refines`` attribute):
:func:`~advxai.evaluation.selection.hybrid` rebuilds it exactly.

Layout: ``ids``, ``ks``, ``n_segments``, ``width`` and per k ``k<k>/segment_ids`` ``(N, k)``,
``k<k>/prediction``, ``k<k>/flipped``, ``k<k>/fewer_segments``; the audio file has one such group
per attack direction (``nosing_to_sing/…``, ``sing_to_nosing/…``).

The refine stage (:mod:`advxai.stages.refine`) writes this layout with :func:`refinement_arrays`;
the localised stages of both domains and the example figures read it here, without importing the
stage that computes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from ..evaluation.localised import Refinement
from ..store import read_h5, read_provenance, require_params
from .settings import ModelSpec, RefineSettings


def refinement_arrays(
    refinements: Mapping[int, Refinement], n_segments: np.ndarray, prefix: str = ""
) -> dict[str, np.ndarray]:
    """The stored form of the refinements of ``N`` items (this module's layout, under ``prefix``)."""
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


def require_refined(path: str, model: ModelSpec, segmentation: str, ks: Sequence[int]) -> None:
    """A refine file must come from ``model`` and this segmentation and ks (a stale one fails here)."""
    require_params(path, {"model": model.as_params(), "refine": RefineSettings(segmentation, tuple(ks)).as_params()})
