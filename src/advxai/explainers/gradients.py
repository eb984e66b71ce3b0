"""Gradient explainers — Saliency, Integrated Gradients, Guided Backprop — and their NoiseTunnel
ensembles, computed as families that share work (docs/method.md §7).

Captum's reference call pattern runs ``NoiseTunnel(X)`` once per ensemble type, so SmoothGrad,
SmoothGrad² and VarGrad cost three sets of J noisy passes, and each result is then aggregated
separately per segmentation. Here a family (e.g. ``sal, sal-sg, sal-sg2, sal-vg``) costs:

* one pass for the plain map (if requested), and
* one set of J noisy passes whose sums of ``a`` and ``a²`` give SG (mean), SG² (mean of
  squares) and VG (population variance, ``E[a²] - E[a]²``, captum's vargrad) together (if any
  ensemble is requested),

all in ONE stream of gradient positions (item × plain-or-noise-draw × IG point) cut into full
batches, so every pass but the last is full (:mod:`advxai.explainers.gradient_stream`); and every
resulting map is aggregated for every segmentation and aggregation in one go.

Numerics follow captum: Saliency is the signed gradient of the target logit (``abs=False``); IG
uses captum's Gauss–Legendre points and weights, ``(x - b) · Σ_i w_i ∇f(b + α_i (x - b))``
with baseline ``b = 0`` in normalised space (docs/decisions.md, decision 1); GBP uses
``advxai.explainers.guided.guided_gradients``, which guides every ReLU-like activation. Noise is drawn per
item from ``advxai.seeding.torch_generator(seed, "noise", id)``, every gradient pass runs at the
fixed batch shape of ``batch_size`` (``advxai.batching``) and every reduction (a copy's IG points,
an item's J noisy maps) runs at a fixed shape once its rows are complete, so for a given
``batch_size`` results do not depend on which items share a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..constants import IG_STEPS, NOISE_SAMPLES, NOISE_STD
from ..seeding import torch_generator
from ..types import Scores
from .aggregate import aggregate_segmentations, segment_bins
from .gradient_stream import family_maps
from .registry import split_gradient_explainer

METHODS: tuple[str, ...] = ("sal", "ig", "gbp")



@dataclass
class FamilyResult:
    """What one gradient family computed for a batch.

    Attributes:
        scores (dict): ``scores[explainer][segmentation][aggregation]`` float64 ``(N, S)`` arrays.
        attributions (dict): ``explainer -> (N, C, *spatial)`` float16 pixel maps, only when
            ``keep_attributions`` was requested (else empty).
    """

    scores: Scores
    attributions: dict[str, np.ndarray] = field(default_factory=dict)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got '{method}'")


def _check_batch(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if inputs.dim() < 2:
        raise ValueError(f"inputs must be a batch (N, C, *spatial), got shape {tuple(inputs.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.long, device=inputs.device)
    if targets.shape != (inputs.shape[0],):
        raise ValueError(f"targets must have shape ({inputs.shape[0]},), got {tuple(targets.shape)}")
    return targets


def gradient_attributions(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    *,
    ig_steps: int = IG_STEPS,
    ig_baseline: float = 0.0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Pixel attributions of one gradient method, batched.

    Args:
        model (nn.Module): returns logits ``(N, n_classes)``; should be in eval mode.
        inputs (Tensor): ``(N, C, *spatial)`` (normalised) inputs.
        targets (Tensor): ``(N,)`` explained class per item.
        method (str): ``"sal"`` (signed gradient), ``"ig"`` or ``"gbp"``.
        ig_steps (int): Gauss–Legendre points for IG.
        ig_baseline (float): IG baseline value (0 = the mean colour in normalised space).
        batch_size (int, optional): rows per forward/backward (IG counts each of an item's
            ``ig_steps`` scaled copies); every pass has exactly this many rows (the last one is
            padded), halved on out-of-memory. ``None``: all rows in one pass.

    Returns:
        Tensor: attributions shaped like ``inputs``, detached.
    """
    _check_method(method)
    targets = _check_batch(inputs, targets)
    return family_maps(
        model, method, inputs.detach(), targets, plain=True, noise=None,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size,
    )["plain"]


def draw_noise(
    ids: Sequence[str | int], shape: Sequence[int], n_samples: int, std: float, seed: int
) -> torch.Tensor:
    """Gaussian noise ``(N, n_samples, *shape)`` with standard deviation ``std``, on the CPU.

    Item ``i`` draws from ``torch_generator(seed, "noise", ids[i])``, so its noise does not depend on
    which other items share its batch.
    """
    if n_samples < 1:
        raise ValueError(f"n_noise must be positive, got {n_samples}")
    # Each item's draws written in place (the values of stacking fresh draws, without the copies)
    noise = torch.empty((len(ids), n_samples, *shape))
    for drawn, item_id in zip(noise, ids):
        torch.randn(drawn.shape, generator=torch_generator(seed, "noise", item_id), out=drawn)
    return noise if std == 1.0 else noise.mul_(std)


def noise_ensemble(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    noise: torch.Tensor,
    *,
    ig_steps: int = IG_STEPS,
    ig_baseline: float = 0.0,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """SmoothGrad, SmoothGrad² and VarGrad from ONE set of J noisy attributions per item.

    The attributions of ``inputs[i] + noise[i, j]`` (IG keeps its baseline; only its input is
    noisy) are summed, as ``a`` and ``a²``, in float64 per item; then ``sg = Σa/J``,
    ``sg2 = Σa²/J`` and ``vg = sg2 - sg²``.

    Args:
        noise (Tensor): ``(N, J, *inputs.shape[1:])`` additive noise (see ``draw_noise``).
        Other arguments as for ``gradient_attributions``.

    Returns:
        dict[str, Tensor]: ``{"sg", "sg2", "vg"}`` maps shaped like ``inputs`` (inputs' dtype).
    """
    _check_method(method)
    targets = _check_batch(inputs, targets)
    if noise.dim() != inputs.dim() + 1 or noise.shape[0] != inputs.shape[0] or noise.shape[2:] != inputs.shape[1:]:
        raise ValueError(
            f"noise must have shape (N, J, *inputs.shape[1:]) = ({inputs.shape[0]}, J, "
            f"{', '.join(map(str, inputs.shape[1:]))}), got {tuple(noise.shape)}"
        )
    maps = family_maps(
        model, method, inputs.detach(), targets, plain=False, noise=noise,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size,
    )
    return {name: maps[name] for name in ("sg", "sg2", "vg")}


def _requested_ensembles(method: str, explainers: Sequence[str]) -> list[str]:
    """The ensembles (``sg``, ``sg2``, ``vg``) among ``explainers``, after checking they are all of ``method``'s family."""
    ensembles = []
    for name in explainers:
        member_of, ensemble = split_gradient_explainer(name)
        if member_of != method:
            raise ValueError(f"explainer '{name}' does not belong to the '{method}' family")
        if ensemble is not None:
            ensembles.append(ensemble)
    if len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers: {list(explainers)} lists a name twice")
    return ensembles


def explain_gradient_family(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str | int],
    method: str,
    *,
    explainers: Sequence[str],
    masks: Mapping[str, torch.Tensor | np.ndarray],
    n_segments: Mapping[str, int],
    n_noise: int = NOISE_SAMPLES,
    noise_std: float = NOISE_STD,
    ig_steps: int = IG_STEPS,
    ig_baseline: float = 0.0,
    seed: int = 0,
    batch_size: int | None = None,
    keep_attributions: bool = False,
    relu_modules_only: bool = False,
) -> FamilyResult:
    """Per-segment scores of the requested explainers of one gradient family, sharing all work.

    The plain map is computed once (only if requested); SG, SG² and VG come from one set of
    ``n_noise`` noisy passes (only if any is requested); each map is aggregated for every
    segmentation in ``masks`` and every aggregation.

    Args:
        model, inputs, targets: as for ``gradient_attributions``.
        ids (sequence): item ids (they seed each item's noise).
        method (str): ``"sal"``, ``"ig"`` or ``"gbp"``.
        explainers (sequence of str): requested members of the family, e.g. ``["sal", "sal-vg"]``.
        masks (Mapping): segmentation name → ``(N, *spatial)`` segment ids.
        n_segments (Mapping): segmentation name → score width ``S``.
        n_noise, noise_std: noisy copies J per item; their absolute standard deviation (normalised units).
        ig_steps, ig_baseline: IG's Gauss–Legendre points and baseline value.
        seed (int): global seed (stage ``"noise"``).
        batch_size, keep_attributions: rows per pass (see ``gradient_attributions``); also return float16 pixel maps.
        relu_modules_only (bool): GBP guides only ``nn.ReLU`` modules, as the authors' captum.

    Returns:
        FamilyResult: scores and (optionally) pixel maps, keyed by explainer in request order.
    """
    _check_method(method)
    if len(ids) != inputs.shape[0]:
        raise ValueError(f"ids: expected {inputs.shape[0]} item ids, got {len(ids)}")
    ensembles_wanted = _requested_ensembles(method, explainers)
    targets = _check_batch(inputs, targets)
    noise = draw_noise(ids, inputs.shape[1:], n_noise, noise_std, seed) if ensembles_wanted else None
    streamed = family_maps(
        model, method, inputs.detach(), targets, plain=method in explainers, noise=noise,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size, relu_modules_only=relu_modules_only,
    )
    maps = {method: streamed["plain"]} if "plain" in streamed else {}
    maps.update({f"{method}-{ensemble}": streamed[ensemble] for ensemble in ensembles_wanted})
    result = FamilyResult(scores={})
    bins = segment_bins(masks, n_segments, inputs.shape[1])  # once for all of the family's maps
    for name in explainers:
        result.scores[name] = aggregate_segmentations(maps[name], masks, n_segments, bins=bins)
        if keep_attributions:
            result.attributions[name] = maps[name].detach().cpu().numpy().astype(np.float16)
    return result
