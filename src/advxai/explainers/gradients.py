"""Gradient explainers — Saliency, Integrated Gradients, Guided Backprop — and their NoiseTunnel
ensembles, computed as families that share work (docs/method.md §7).

Captum's reference call pattern runs ``NoiseTunnel(X)`` once per ensemble type, so SmoothGrad,
SmoothGrad² and VarGrad cost three sets of J noisy passes, and each result is then aggregated
separately per segmentation. Here a family (e.g. ``sal, sal-sg, sal-sg2, sal-vg``) costs:

* one pass for the plain map (if requested), and
* one set of J noisy passes whose running sums of ``a`` and ``a²`` give SG (mean), SG² (mean of
  squares) and VG (population variance, ``E[a²] - E[a]²``, captum's vargrad) together (if any
  ensemble is requested),

and every resulting map is aggregated for every segmentation and aggregation in one go.

Numerics follow captum: Saliency is the signed gradient of the target logit (``abs=False``); IG
uses captum's Gauss–Legendre points and weights, ``(x - b) · Σ_i w_i ∇f(b + α_i (x - b))``
with baseline ``b = 0`` in normalised space (docs/decisions.md §10.1); GBP uses
``advxai.guided.guided_gradients``, which guides every ReLU-like activation. Noise is drawn per
item from ``advxai.seeding.torch_generator(seed, "noise", id)``, every gradient pass runs at the
fixed batch shape of ``batch_size`` (``advxai.batching``) and all reductions run in a fixed order
per item, so for a given ``batch_size`` results do not depend on which items share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from advxai.explainers.aggregate import aggregate_segmentations
from advxai.explainers.registry import split_gradient_explainer
from advxai.guided import guided_gradients
from advxai.batching import run_batched
from advxai.seeding import torch_generator

METHODS: tuple[str, ...] = ("sal", "ig", "gbp")

Scores = dict[str, dict[str, dict[str, np.ndarray]]]
"""``scores[explainer][segmentation][aggregation] -> (N, S)``."""


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


def integration_points(n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre ``(alphas, weights)`` on ``[0, 1]`` for ``n_steps`` points (float64).

    The nodes and weights of :func:`numpy.polynomial.legendre.leggauss` on ``[-1, 1]``, mapped to
    ``[0, 1]``: the same points and weights as captum's ``IntegratedGradients(method="gausslegendre")``
    (tests compare them).
    """
    if n_steps < 2:
        raise ValueError(f"ig_steps must be at least 2, got {n_steps}")
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return torch.from_numpy(0.5 * (nodes + 1.0)), torch.from_numpy(0.5 * weights)


def target_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gradient of each item's target logit with respect to its input (signed, detached)."""
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        selected = model(inputs).gather(1, targets.view(-1, 1)).sum()
        (gradients,) = torch.autograd.grad(selected, inputs)
    return gradients


def _pass_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, method: str) -> torch.Tensor:
    """One backward pass: guided for GBP, plain for Saliency and IG."""
    if method == "gbp":
        return guided_gradients(model, inputs, targets)
    return target_gradients(model, inputs, targets)


def _stream_attributions(
    model: nn.Module,
    method: str,
    copy_inputs: Callable[[torch.Tensor], torch.Tensor],
    copy_targets: torch.Tensor,
    *,
    ig_steps: int,
    ig_baseline: float,
    batch_size: int | None,
    receive: Callable[[int, torch.Tensor], None],
) -> None:
    """Attributions of ``len(copy_targets)`` inputs, handed to ``receive(copy, map)`` in copy order.

    All gradient passes form one list of positions (one per copy for Saliency and GBP, ``ig_steps``
    per copy for IG, copy-major) that :func:`run_batched` evaluates at a fixed batch shape. Each
    copy's IG sum runs in float64 over its points in order, so neither chunk boundaries nor the
    other copies in a chunk change a copy's map; and positions of different items share passes,
    so the only padding is in the last chunk.

    Args:
        copy_inputs: maps copy indices ``(B,)`` to their inputs ``(B, C, *spatial)``.
        copy_targets: ``(n_copies,)`` explained class per copy.
        receive: called once per copy with its map (Saliency/GBP: the gradient in the inputs'
            dtype; IG: float64).
    """
    n_steps = ig_steps if method == "ig" else 1
    if method == "ig":
        alphas, weights = integration_points(ig_steps)
        alphas = alphas.to(copy_targets.device)
    partial: dict[int, torch.Tensor] = {}

    def gradients(positions: torch.Tensor) -> torch.Tensor:
        copies = positions // n_steps
        inputs = copy_inputs(copies)
        if method == "ig":
            scale = alphas[positions % n_steps].to(inputs.dtype).view(-1, *([1] * (inputs.dim() - 1)))
            inputs = ig_baseline + scale * (inputs - ig_baseline)
        return _pass_gradients(model, inputs, copy_targets[copies], method)

    def collect(first: int, chunk: torch.Tensor) -> None:
        for row, position in enumerate(range(first, first + len(chunk))):
            copy, step = divmod(position, n_steps)
            if method != "ig":
                receive(copy, chunk[row])
                continue
            weighted = float(weights[step]) * chunk[row].double()
            partial[copy] = weighted if step == 0 else partial[copy] + weighted
            if step == n_steps - 1:
                difference = copy_inputs(torch.tensor([copy], device=copy_targets.device))[0].double() - ig_baseline
                receive(copy, difference * partial.pop(copy))

    positions = torch.arange(len(copy_targets) * n_steps, device=copy_targets.device)
    run_batched(gradients, positions, batch_size or max(1, len(positions)), consume=collect)


def gradient_attributions(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    *,
    ig_steps: int = 50,
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
    inputs = inputs.detach()
    maps = torch.empty_like(inputs)

    def keep(item: int, attribution: torch.Tensor) -> None:
        maps[item] = attribution

    _stream_attributions(
        model, method, lambda items: inputs[items], targets,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size, receive=keep,
    )
    return maps


def draw_noise(
    ids: Sequence[str | int], shape: Sequence[int], n_samples: int, std: float, seed: int
) -> torch.Tensor:
    """Gaussian noise ``(N, n_samples, *shape)`` with standard deviation ``std``, on the CPU.

    Item ``i`` draws from ``torch_generator(seed, "noise", ids[i])``, so its noise does not depend on
    which other items share its batch.
    """
    if n_samples < 1:
        raise ValueError(f"n_noise must be positive, got {n_samples}")
    draws = [
        torch.randn((n_samples, *shape), generator=torch_generator(seed, "noise", item_id)) for item_id in ids
    ]
    return torch.stack(draws) * std


def noise_ensemble(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    noise: torch.Tensor,
    *,
    ig_steps: int = 50,
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
    n_noise = noise.shape[1]
    inputs = inputs.detach()
    sums = torch.zeros(inputs.shape, dtype=torch.float64, device=inputs.device)
    squares = torch.zeros_like(sums)

    def noisy(copies: torch.Tensor) -> torch.Tensor:
        items, draws = copies // n_noise, copies % n_noise
        return inputs[items] + noise[items.cpu(), draws.cpu()].to(inputs)

    def accumulate(copy: int, attribution: torch.Tensor) -> None:
        item = copy // n_noise  # copies arrive in order, so each item sums its J maps in order
        attribution = attribution.double()
        sums[item] += attribution
        squares[item] += attribution.square()

    _stream_attributions(
        model, method, noisy, targets.repeat_interleave(n_noise),
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size, receive=accumulate,
    )
    mean = sums / n_noise
    mean_square = squares / n_noise
    ensembles = {"sg": mean, "sg2": mean_square, "vg": mean_square - mean.square()}
    return {name: values.to(inputs.dtype) for name, values in ensembles.items()}


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
    n_noise: int = 25,
    noise_std: float = 1.0,
    ig_steps: int = 50,
    ig_baseline: float = 0.0,
    seed: int = 0,
    batch_size: int | None = None,
    keep_attributions: bool = False,
) -> FamilyResult:
    """Per-segment scores of the requested explainers of one gradient family, sharing all work.

    The plain map is computed once (only if requested); SG, SG² and VG come from one set of
    ``n_noise`` noisy passes (only if any is requested); each map is aggregated for every
    segmentation in ``masks`` and every aggregation.

    Args:
        model (nn.Module): returns logits; should be in eval mode.
        inputs (Tensor): ``(N, C, *spatial)`` inputs being explained.
        targets (Tensor): ``(N,)`` explained class per item.
        ids (sequence): item ids (they seed each item's noise).
        method (str): ``"sal"``, ``"ig"`` or ``"gbp"``.
        explainers (sequence of str): requested members of the family, e.g. ``["sal", "sal-vg"]``.
        masks (Mapping): segmentation name → ``(N, *spatial)`` segment ids.
        n_segments (Mapping): segmentation name → score width ``S``.
        n_noise (int): noisy copies J per item.
        noise_std (float): absolute noise standard deviation (normalised units).
        ig_steps (int): IG Gauss–Legendre points.
        ig_baseline (float): IG baseline value.
        seed (int): global seed (stage ``"noise"``).
        batch_size (int, optional): examples per forward/backward, see ``gradient_attributions``.
        keep_attributions (bool): also return the float16 pixel maps.

    Returns:
        FamilyResult: scores and (optionally) pixel maps, keyed by explainer in request order.
    """
    _check_method(method)
    if len(ids) != inputs.shape[0]:
        raise ValueError(f"ids: expected {inputs.shape[0]} item ids, got {len(ids)}")
    ensembles_wanted = []
    for name in explainers:
        member_of, ensemble = split_gradient_explainer(name)
        if member_of != method:
            raise ValueError(f"explainer '{name}' does not belong to the '{method}' family")
        if ensemble is not None:
            ensembles_wanted.append(ensemble)
    if len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers: {list(explainers)} lists a name twice")
    settings = {"ig_steps": ig_steps, "ig_baseline": ig_baseline, "batch_size": batch_size}
    maps: dict[str, torch.Tensor] = {}
    if method in explainers:
        maps[method] = gradient_attributions(model, inputs, targets, method, **settings)
    if ensembles_wanted:
        noise = draw_noise(ids, inputs.shape[1:], n_noise, noise_std, seed)
        ensembles = noise_ensemble(model, inputs, targets, method, noise, **settings)
        for ensemble in ensembles_wanted:
            maps[f"{method}-{ensemble}"] = ensembles[ensemble]
    result = FamilyResult(scores={})
    for name in explainers:
        result.scores[name] = aggregate_segmentations(maps[name], masks, n_segments)
        if keep_attributions:
            result.attributions[name] = maps[name].detach().cpu().numpy().astype(np.float16)
    return result
