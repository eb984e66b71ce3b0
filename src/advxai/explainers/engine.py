"""Run a list of explainers on one batch and return per-segment scores, sharing work.

Gradient families (saliency, IG, GBP) compute each pixel attribution once — the J noisy passes
serve SG, SG² and VarGrad together — and aggregate it for every segmentation and aggregation.
LIME runs per segmentation (its features are the segments). Extra explainers (any captum
attribution class or ``module:function``) give pixel maps aggregated like the gradient ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..batching import run_batched
from ..segments import ABSENT
from ..types import Scores
from .aggregate import aggregate
from .gradients import explain_gradient_family
from .lime import lime_coefficients
from .registry import ENSEMBLES, FAMILIES, GRADIENT_METHODS, make_extra_explainer, validate_explainers
from .settings import IMAGE_LIME, ExplainerSettings, LimeForm


@dataclass(frozen=True)
class ExplainSettings:
    """What :func:`explain_all` runs with.

    ``explainer`` holds the config's ``<domain>.explain`` keys (the paper's by default), ``lime``
    the domain's form of LIME. ``batch_size`` is the rows per forward+backward pass of the gradient
    families and extras (the image jobs: at least 16 on a GPU,
    ``advxai.batching.explanation_batch_size``); ``lime_batch_size`` the rows per LIME forward
    (``None``: ``batch_size``): a device may run forwards fastest, or fit them, at another size, and
    the image jobs give LIME captum's 16 rows on a CPU, at least 16 on a GPU
    (``advxai.batching.lime_batch_size``). ``relu_modules_only``:
    Guided Backprop guides only ``nn.ReLU`` modules, as the authors' captum (``authors_code``).
    """

    explainer: ExplainerSettings = field(default_factory=ExplainerSettings.paper)
    lime: LimeForm = IMAGE_LIME
    seed: int = 0
    batch_size: int = 16
    lime_batch_size: int | None = None
    relu_modules_only: bool = False


def lime_as_aggregations(coefficients: np.ndarray) -> dict[str, np.ndarray]:
    """LIME's pixel map carries its segment's coefficient everywhere, so its aggregations are exact."""
    absent = coefficients <= ABSENT
    return {
        "mean": coefficients,
        "mean_abs": np.where(absent, ABSENT, np.abs(coefficients)),
        "mean_pos": np.where(absent | (coefficients <= 0), ABSENT, coefficients),
    }


def _gradient_keys(explainer: ExplainerSettings, family: str, noisy: bool) -> dict[str, Any]:
    """The settings a gradient family reads: the noise where it runs an ensemble, IG its points."""
    keys: dict[str, Any] = {}
    if noisy:
        keys.update(n_noise=explainer.require("noise_samples"), noise_std=explainer.require("noise_std"))
    if family == "ig":
        keys["ig_steps"] = explainer.require("ig_steps")
    return keys


def explain_all(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    n_segments: Mapping[str, np.ndarray],
    explainers: Sequence[str],
    settings: ExplainSettings,
    *,
    extras: Sequence[Mapping[str, Any]] = (),
    lime_forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pixel_maps: dict[str, np.ndarray] | None = None,
) -> Scores:
    """Scores of every requested explainer for every segmentation in ``masks`` and every aggregation.

    ``n_segments[seg]`` holds each item's segment count; score arrays are as wide as the largest.
    ``lime_forward`` overrides what LIME's surrogate fits (audio: class probabilities).
    ``pixel_maps``, when given, is filled with the float16 pixel attributions of the gradient and
    extra explainers (LIME's map is its segment coefficients, already in the scores).
    """
    requested = set(validate_explainers(explainers))
    width = {seg: int(np.max(counts)) for seg, counts in n_segments.items()}
    scores: Scores = {}
    for family, members in FAMILIES.items():
        wanted = [m for m in members if m in requested]
        if not wanted:
            continue
        noisy = any(name.partition("-")[2] in ENSEMBLES for name in wanted)
        result = explain_gradient_family(
            model, inputs, targets, ids, GRADIENT_METHODS[family],
            explainers=wanted, masks=dict(masks), n_segments=width, **_gradient_keys(settings.explainer, family, noisy),
            seed=settings.seed, batch_size=settings.batch_size,
            keep_attributions=pixel_maps is not None, relu_modules_only=settings.relu_modules_only,
        )
        scores.update(result.scores)
        if pixel_maps is not None:
            pixel_maps.update(result.attributions)
    if "lime" in requested:
        lime, (n_samples, kernel_width) = settings.lime, [settings.explainer.require(key) for key in ("lime_samples", "lime_kernel_width")]
        scores["lime"] = {
            seg: lime_as_aggregations(
                lime_coefficients(
                    lime_forward or model, inputs, targets, mask, n_segments[seg],
                    n_samples=n_samples, seed=settings.seed, baseline=lime.baseline, kernel=lime.kernel,
                    kernel_width=kernel_width, surrogate=lime.surrogate,
                    include_unperturbed=lime.include_unperturbed, batch_size=settings.lime_batch_size or settings.batch_size, ids=ids,
                )
            )
            for seg, mask in masks.items()
        }
    rows = torch.arange(len(inputs), device=inputs.device)
    for spec in extras:
        explainer = make_extra_explainer(spec)
        # At the fixed batch shape, like every other pass: an item's map does not depend on its batch.
        attributions = run_batched(lambda chunk: explainer(model, inputs[chunk], targets[chunk]), rows, settings.batch_size)
        if pixel_maps is not None:
            pixel_maps[spec["name"]] = attributions.detach().cpu().numpy().astype(np.float16)
        scores[spec["name"]] = {seg: aggregate(attributions, mask, width[seg]) for seg, mask in masks.items()}
    return scores


def flatten_scores(scores: Scores, prefix: str = "scores") -> dict[str, np.ndarray]:
    """``{"scores/<explainer>/<seg>/<agg>": array}`` for storage."""
    return {
        f"{prefix}/{explainer}/{seg}/{agg}": values
        for explainer, by_seg in scores.items()
        for seg, by_agg in by_seg.items()
        for agg, values in by_agg.items()
    }


def unflatten_scores(arrays: Mapping[str, np.ndarray], prefix: str = "scores") -> Scores:
    """Inverse of :func:`flatten_scores`."""
    scores: Scores = {}
    for name, values in arrays.items():
        head, _, rest = name.partition("/")
        if head != prefix:
            continue
        explainer, seg, agg = rest.split("/")
        scores.setdefault(explainer, {}).setdefault(seg, {})[agg] = values
    return scores
