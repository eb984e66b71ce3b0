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
batches, so every pass but the last is full; and every resulting map is aggregated for every
segmentation and aggregation in one go.

Numerics follow captum: Saliency is the signed gradient of the target logit (``abs=False``); IG
uses captum's Gauss–Legendre points and weights, ``(x - b) · Σ_i w_i ∇f(b + α_i (x - b))``
with baseline ``b = 0`` in normalised space (docs/decisions.md §10.1); GBP uses
``advxai.guided.guided_gradients``, which guides every ReLU-like activation. Noise is drawn per
item from ``advxai.seeding.torch_generator(seed, "noise", id)``, every gradient pass runs at the
fixed batch shape of ``batch_size`` (``advxai.batching``) and every reduction (a copy's IG points,
an item's J noisy maps) runs at a fixed shape once its rows are complete, so for a given
``batch_size`` results do not depend on which items share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from advxai.explainers.aggregate import aggregate_segmentations, segment_bins
from advxai.explainers.registry import split_gradient_explainer
from advxai.explainers.stem import find_linear_stem
from advxai.guided import guided_gradients
from advxai.batching import ScratchTensors, run_batched
from advxai.constants import IG_STEPS, NOISE_SAMPLES, NOISE_STD
from advxai.seeding import torch_generator
from advxai.types import Scores

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


class _GroupQueue:
    """Rows arriving in order, handed out in complete groups of ``size`` consecutive rows.

    Each group is reduced on its own at the fixed shape ``(size, ...)``, so its result does not
    depend on where the chunk boundaries of the stream fell (docs/exactness.md).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.done = 0  # groups handed out so far
        self.pending: torch.Tensor | None = None  # a group being filled across pushes
        self.filled = 0  # its rows so far

    def push(self, rows: torch.Tensor) -> tuple[int, list[torch.Tensor]]:
        """(index of the first completed group, the completed groups, each ``(size, ...)``; maybe none).

        Groups inside ``rows`` are views of it; a group spanning pushes is filled row by row in a
        buffer of its own, so no row is copied twice (``rows`` may be a buffer its caller reuses).
        """
        groups, start = [], 0
        if self.filled:
            start = min(self.size - self.filled, len(rows))
            self.pending[self.filled : self.filled + start] = rows[:start]
            self.filled += start
            if self.filled == self.size:
                groups.append(self.pending)
                self.pending, self.filled = None, 0  # handed out: the next spanning group gets a new buffer
        whole = (len(rows) - start) // self.size
        groups += [rows[start + k * self.size : start + (k + 1) * self.size] for k in range(whole)]
        rest = rows[start + whole * self.size :]
        if len(rest):
            if self.pending is None:
                self.pending = rows.new_empty((self.size, *rows.shape[1:]))
            self.pending[: len(rest)] = rest
            self.filled = len(rest)
        first = self.done
        self.done += len(groups)
        return first, groups


def _family_stream(
    model: nn.Module,
    method: str,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    plain: bool,
    noise: torch.Tensor | None,
    ig_steps: int,
    ig_baseline: float,
    batch_size: int | None,
) -> dict[str, torch.Tensor]:
    """The plain maps and the noise ensembles of one method from ONE stream of gradient passes.

    The stream's copies are the ``N`` plain inputs (if ``plain``) followed by the ``N·J`` noisy
    inputs ``inputs[i] + noise[i, j]`` (item-major); each copy takes one gradient position
    (Saliency, GBP) or ``ig_steps`` (IG, copy-major). :func:`run_batched` evaluates all positions
    at a fixed batch shape, so every pass but the stream's last is full, whichever maps are asked
    for. Reductions never depend on the chunk boundaries: a copy's IG points and an item's J noisy
    maps are each summed at a fixed shape once they are complete (:class:`_GroupQueue`), in float64.

    Returns:
        dict[str, Tensor]: ``"plain"`` (if ``plain``) and ``"sg"``, ``"sg2"``, ``"vg"`` (if
        ``noise`` is given), shaped like ``inputs`` in its dtype.
    """
    n_items = inputs.shape[0]
    n_plain = n_items if plain else 0
    n_noise = 0 if noise is None else noise.shape[1]
    n_copies = n_plain + n_items * n_noise
    n_steps = ig_steps if method == "ig" else 1
    if noise is not None:
        noise = noise.to(device=inputs.device, dtype=inputs.dtype).flatten(0, 1)  # one copy, before the loop
    if method == "ig":
        alphas, weights = (values.to(inputs.device) for values in integration_points(ig_steps))
        weights = weights.view(-1, *([1] * (inputs.dim() - 1)))
    spread = (-1, *([1] * (inputs.dim() - 1)))

    def copy_items(copies: torch.Tensor) -> torch.Tensor:
        if noise is None:
            return copies
        return torch.where(copies < n_plain, copies, torch.div(copies - n_plain, n_noise, rounding_mode="floor"))

    def copy_inputs(copies: torch.Tensor) -> torch.Tensor:
        originals = inputs[copy_items(copies)]
        if noise is None:
            return originals
        noisy = copies - n_plain
        drawn = originals + noise[noisy.clamp(min=0)]
        return torch.where((noisy >= 0).view(spread), drawn, originals)

    # A pass of IG rows spans at most this many consecutive copies (its rows are consecutive positions).
    copies_per_pass = -(-(batch_size or max(1, n_copies * n_steps)) // n_steps) + 1
    scratch = ScratchTensors(inputs.device)

    # IG through the model's linear stem, if it has one worth it (advxai.explainers.stem): the points
    # then differ at the stem's output, and the passes' gradients are taken there.
    stem = find_linear_stem(model, inputs[:1]) if method == "ig" and n_copies else None
    if stem is not None:
        with torch.no_grad():
            stem_at_baseline = stem.conv(torch.full((1, *inputs.shape[1:]), ig_baseline, dtype=inputs.dtype, device=inputs.device))

    def ig_rows(positions: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
        """``b + α (x_copy - b)`` per row, each copy's ``x_copy - b`` computed once for its rows, or with
        a stem, ``L(b) + α L₀(x_copy - b)``, each copy's ``L₀(x_copy - b)`` computed once.

        Built in place in a buffer that every pass reuses (the same elementwise operations on the
        same values as per row, so the same bits); found on the device (no host sync): the pass's
        copies are consecutive from its first.
        """
        first = copies[:1]
        spanned = (first + torch.arange(copies_per_pass, device=copies.device)).clamp(max=n_copies - 1)
        differences = copy_inputs(spanned) - ig_baseline
        start: torch.Tensor | float = ig_baseline
        if stem is not None:
            differences, start = stem.linear(differences), stem_at_baseline
        scale = alphas[positions % n_steps].to(differences.dtype).view(spread)
        rows = scratch("ig_rows", (len(positions), *differences.shape[1:]), differences.dtype)
        return torch.index_select(differences, 0, copies - first, out=rows).mul_(scale).add_(start)

    def gradients(positions: torch.Tensor) -> torch.Tensor:
        copies = torch.div(positions, n_steps, rounding_mode="floor")
        explained = targets[copy_items(copies)]
        if stem is None:
            copied = ig_rows(positions, copies) if method == "ig" else copy_inputs(copies)
            return _pass_gradients(model, copied, explained, method)
        at_stem = ig_rows(positions, copies).detach().requires_grad_(True)
        ignored = inputs[:1].expand(len(positions), *inputs.shape[1:])  # read by the stem only, which returns `at_stem`
        with torch.enable_grad(), stem.replaced_by(at_stem):
            selected = model(ignored).gather(1, explained.view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(selected, at_stem)
        return gradient

    maps = {"plain": torch.empty_like(inputs)} if plain else {}
    sums = torch.zeros(inputs.shape, dtype=torch.float64, device=inputs.device) if noise is not None else None
    squares = torch.zeros_like(sums) if sums is not None else None
    points, draws = _GroupQueue(n_steps), _GroupQueue(max(1, n_noise))

    def copy_maps(first: int, chunk: torch.Tensor) -> tuple[int, torch.Tensor]:
        """(first copy, maps of the copies completed by this chunk)."""
        if method != "ig":
            return first, chunk
        first_copy, groups = points.push(chunk)
        if not groups:
            return first_copy, chunk[:0]
        copies = torch.arange(first_copy, first_copy + len(groups), device=inputs.device)
        difference = copy_inputs(copies).double() - ig_baseline
        # `(weights * group.double()).sum(0)` (captum's order), its float64 copy made in one reused
        # buffer and weighted in place: the same values, 7x faster on a CPU than fresh copies
        weighted = scratch("weighted", groups[0].shape, torch.float64)
        integrals = torch.stack([weighted.copy_(group).mul_(weights).sum(0) for group in groups])
        if stem is not None:  # the points' gradients were taken at the stem's output: back to the input
            integrals = stem.input_gradient(integrals, difference.shape)
        return first_copy, difference * integrals

    def collect(first: int, chunk: torch.Tensor) -> None:
        first_copy, copied = copy_maps(first, chunk)
        plain_rows = max(0, min(len(copied), n_plain - first_copy))
        if plain_rows:
            maps["plain"][first_copy : first_copy + plain_rows] = copied[:plain_rows]
        if sums is None or plain_rows == len(copied):
            return
        first_item, groups = draws.push(copied[plain_rows:])
        for item, group in enumerate(groups, start=first_item):
            # Σa and Σa² in float64, in one reused buffer (squared in place after the first sum)
            draws_64 = scratch("draws", (n_noise, *inputs.shape[1:]), torch.float64).copy_(group)
            sums[item] = draws_64.sum(0)
            squares[item] = draws_64.square_().sum(0)

    positions = torch.arange(n_copies * n_steps, device=inputs.device)
    run_batched(gradients, positions, batch_size or max(1, len(positions)), consume=collect)
    if sums is not None:
        mean, mean_square = sums / n_noise, squares / n_noise
        ensembles = {"sg": mean, "sg2": mean_square, "vg": mean_square - mean.square()}
        maps.update({name: values.to(inputs.dtype) for name, values in ensembles.items()})
    return maps


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
    return _family_stream(
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
    maps = _family_stream(
        model, method, inputs.detach(), targets, plain=False, noise=noise,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size,
    )
    return {name: maps[name] for name in ("sg", "sg2", "vg")}


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
    targets = _check_batch(inputs, targets)
    noise = draw_noise(ids, inputs.shape[1:], n_noise, noise_std, seed) if ensembles_wanted else None
    streamed = _family_stream(
        model, method, inputs.detach(), targets, plain=method in explainers, noise=noise,
        ig_steps=ig_steps, ig_baseline=ig_baseline, batch_size=batch_size,
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
