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
from .aggregate import aggregate
from .gradients import explain_gradient_family
from .lime import lime_coefficients
from .registry import FAMILIES, GRADIENT_METHODS, make_extra_explainer, validate_explainers

Scores = dict[str, dict[str, dict[str, np.ndarray]]]  # explainer -> segmentation -> aggregation -> (N, S)


@dataclass(frozen=True)
class LimeSettings:
    """LIME's sampling, kernel and surrogate (docs/method.md §7 for images, §3 for audio)."""

    n_samples: int = 512
    kernel_width: float = 0.25
    kernel: str = "input_cosine"
    surrogate: str = "ols"
    baseline: float | str = 0.0
    include_unperturbed: bool = False


@dataclass(frozen=True)
class GradientSettings:
    """NoiseTunnel and IG settings (docs/method.md §7)."""

    n_noise: int = 25
    noise_std: float = 1.0
    ig_steps: int = 50
    relu_modules_only: bool = False  # GBP as the authors' captum: only nn.ReLU modules guided


@dataclass(frozen=True)
class ExplainSettings:
    """What :func:`explain_all` runs with.

    ``batch_size`` is the rows per forward+backward pass of the gradient families and extras (the
    image jobs: at least 16 on a GPU, ``advxai.batching.explanation_batch_size``);
    ``lime_batch_size`` the rows per LIME forward (``None``: ``batch_size``): a device may run
    forwards fastest, or fit them, at another size, and the image jobs give LIME captum's 16 rows
    on a CPU, at least 16 on a GPU (``advxai.batching.lime_batch_size``).
    """

    lime: LimeSettings = field(default_factory=LimeSettings)
    gradients: GradientSettings = field(default_factory=GradientSettings)
    seed: int = 0
    batch_size: int = 16
    lime_batch_size: int | None = None


def lime_as_aggregations(coefficients: np.ndarray) -> dict[str, np.ndarray]:
    """LIME's pixel map carries its segment's coefficient everywhere, so its aggregations are exact."""
    absent = coefficients <= ABSENT
    return {
        "mean": coefficients,
        "mean_abs": np.where(absent, ABSENT, np.abs(coefficients)),
        "mean_pos": np.where(absent | (coefficients <= 0), ABSENT, coefficients),
    }


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
        result = explain_gradient_family(
            model, inputs, targets, ids, GRADIENT_METHODS[family],
            explainers=wanted, masks=dict(masks), n_segments=width,
            n_noise=settings.gradients.n_noise, noise_std=settings.gradients.noise_std,
            ig_steps=settings.gradients.ig_steps, seed=settings.seed, batch_size=settings.batch_size,
            keep_attributions=pixel_maps is not None, relu_modules_only=settings.gradients.relu_modules_only,
        )
        scores.update(result.scores)
        if pixel_maps is not None:
            pixel_maps.update(result.attributions)
    if "lime" in requested:
        lime = settings.lime
        scores["lime"] = {
            seg: lime_as_aggregations(
                lime_coefficients(
                    lime_forward or model, inputs, targets, mask, n_segments[seg],
                    n_samples=lime.n_samples, seed=settings.seed, baseline=lime.baseline, kernel=lime.kernel,
                    kernel_width=lime.kernel_width, surrogate=lime.surrogate,
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
