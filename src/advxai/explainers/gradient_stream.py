"""One gradient method's maps from ONE stream of gradient passes (docs/method.md §7).

A family's copies are the ``N`` plain inputs (if the plain map is asked for) followed by the
``N·J`` noisy inputs ``inputs[i] + noise[i, j]`` (item-major); each copy takes one gradient
position (Saliency, GBP) or ``ig_steps`` (IG, copy-major). :func:`~advxai.batching.run_batched`
evaluates all positions at a fixed batch shape, so every pass but the stream's last is full,
whichever maps are asked for. Reductions never depend on the chunk boundaries: a copy's IG points
and an item's J noisy maps are each summed at a fixed shape once they are complete
(:class:`GroupQueue`), in float64 (docs/exactness.md).

:class:`FamilyStream` holds the stream's state; its methods are the steps of a pass: which copy
and input a position stands for (:meth:`~FamilyStream.copy_inputs`), IG's scaled rows
(:meth:`~FamilyStream.ig_rows`), the pass's gradients (:meth:`~FamilyStream.gradients`), and the
reductions of each chunk as it arrives (:meth:`~FamilyStream.collect`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..batching import ScratchTensors, run_batched
from .guided import guided_gradients
from .stem import find_linear_stem


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


def pass_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, method: str,
                   relu_modules_only: bool = False) -> torch.Tensor:
    """One backward pass: guided for GBP (only ``nn.ReLU`` modules with ``relu_modules_only``), plain for Saliency and IG."""
    if method == "gbp":
        return guided_gradients(model, inputs, targets, relu_modules_only)
    return target_gradients(model, inputs, targets)


class GroupQueue:
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


class FamilyStream:
    """The plain maps and the noise ensembles of one method, from one stream of gradient positions.

    Built once per call of :func:`family_maps`; :meth:`run` evaluates the stream and returns the maps.
    """

    def __init__(self, model: nn.Module, method: str, inputs: torch.Tensor, targets: torch.Tensor, *,
                 plain: bool, noise: torch.Tensor | None, ig_steps: int, ig_baseline: float, batch_size: int | None,
                 relu_modules_only: bool = False) -> None:
        self.model, self.method, self.inputs, self.targets = model, method, inputs, targets
        self.relu_modules_only = relu_modules_only
        self.ig_baseline, self.batch_size = ig_baseline, batch_size
        n_items = inputs.shape[0]
        self.n_plain = n_items if plain else 0
        self.n_noise = 0 if noise is None else noise.shape[1]
        self.n_copies = self.n_plain + n_items * self.n_noise
        self.n_steps = ig_steps if method == "ig" else 1
        # the draws as one (N·J, ...) tensor on the device, made once, before the stream
        self.noise = None if noise is None else noise.to(device=inputs.device, dtype=inputs.dtype).flatten(0, 1)
        self.spread = (-1, *([1] * (inputs.dim() - 1)))  # a per-row value broadcast over a row
        if method == "ig":
            self.alphas, weights = (values.to(inputs.device) for values in integration_points(ig_steps))
            self.weights = weights.view(self.spread)
        # A pass of IG rows spans at most this many consecutive copies (its rows are consecutive positions).
        self.copies_per_pass = -(-(batch_size or max(1, self.n_copies * self.n_steps)) // self.n_steps) + 1
        self.scratch = ScratchTensors(inputs.device)
        self._find_stem()
        self.maps = {"plain": torch.empty_like(inputs)} if plain else {}
        self.sums = torch.zeros(inputs.shape, dtype=torch.float64, device=inputs.device) if noise is not None else None
        self.squares = torch.zeros_like(self.sums) if self.sums is not None else None
        self.points, self.draws = GroupQueue(self.n_steps), GroupQueue(max(1, self.n_noise))

    def _find_stem(self) -> None:
        """IG through the model's linear stem, if it has one worth it (:mod:`advxai.explainers.stem`):
        the points then differ at the stem's output, and the passes' gradients are taken there."""
        inputs = self.inputs
        self.stem = find_linear_stem(self.model, inputs[:1]) if self.method == "ig" and self.n_copies else None
        if self.stem is not None:
            with torch.no_grad():
                baseline = torch.full((1, *inputs.shape[1:]), self.ig_baseline, dtype=inputs.dtype, device=inputs.device)
                self.stem_at_baseline = self.stem.conv(baseline)

    # ------------------------------------------------------------------ what a position stands for
    def copy_items(self, copies: torch.Tensor) -> torch.Tensor:
        """The item each copy is of."""
        if self.noise is None:
            return copies
        return torch.where(copies < self.n_plain, copies, torch.div(copies - self.n_plain, self.n_noise, rounding_mode="floor"))

    def copy_inputs(self, copies: torch.Tensor) -> torch.Tensor:
        """The input of each copy: its item's, plus the copy's noise draw for a noisy copy."""
        originals = self.inputs[self.copy_items(copies)]
        if self.noise is None:
            return originals
        noisy = copies - self.n_plain
        drawn = originals + self.noise[noisy.clamp(min=0)]
        return torch.where((noisy >= 0).view(self.spread), drawn, originals)

    def ig_rows(self, positions: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
        """``b + α (x_copy - b)`` per row, each copy's ``x_copy - b`` computed once for its rows, or with
        a stem, ``L(b) + α L₀(x_copy - b)``, each copy's ``L₀(x_copy - b)`` computed once.

        Built in place in a buffer that every pass reuses (the same elementwise operations on the
        same values as per row, so the same bits); found on the device (no host sync): the pass's
        copies are consecutive from its first.
        """
        first = copies[:1]
        spanned = (first + torch.arange(self.copies_per_pass, device=copies.device)).clamp(max=self.n_copies - 1)
        differences = self.copy_inputs(spanned) - self.ig_baseline
        start: torch.Tensor | float = self.ig_baseline
        if self.stem is not None:
            differences, start = self.stem.linear(differences), self.stem_at_baseline
        scale = self.alphas[positions % self.n_steps].to(differences.dtype).view(self.spread)
        rows = self.scratch("ig_rows", (len(positions), *differences.shape[1:]), differences.dtype)
        return torch.index_select(differences, 0, copies - first, out=rows).mul_(scale).add_(start)

    # ------------------------------------------------------------------ one pass
    def gradients(self, positions: torch.Tensor) -> torch.Tensor:
        """The gradients of one pass's positions (at the stem's output where IG runs through a stem)."""
        copies = torch.div(positions, self.n_steps, rounding_mode="floor")
        explained = self.targets[self.copy_items(copies)]
        if self.stem is None:
            copied = self.ig_rows(positions, copies) if self.method == "ig" else self.copy_inputs(copies)
            return pass_gradients(self.model, copied, explained, self.method, self.relu_modules_only)
        at_stem = self.ig_rows(positions, copies).detach().requires_grad_(True)
        ignored = self.inputs[:1].expand(len(positions), *self.inputs.shape[1:])  # read by the stem only, which returns `at_stem`
        with torch.enable_grad(), self.stem.replaced_by(at_stem):
            selected = self.model(ignored).gather(1, explained.view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(selected, at_stem)
        return gradient

    # ------------------------------------------------------------------ reductions
    def copy_maps(self, first: int, chunk: torch.Tensor) -> tuple[int, torch.Tensor]:
        """(first copy, maps of the copies completed by this chunk): IG integrates each copy's points."""
        if self.method != "ig":
            return first, chunk
        first_copy, groups = self.points.push(chunk)
        if not groups:
            return first_copy, chunk[:0]
        copies = torch.arange(first_copy, first_copy + len(groups), device=self.inputs.device)
        difference = self.copy_inputs(copies).double() - self.ig_baseline
        # `(weights * group.double()).sum(0)` (captum's order), its float64 copy made in one reused
        # buffer and weighted in place: the same values, 7x faster on a CPU than fresh copies
        weighted = self.scratch("weighted", groups[0].shape, torch.float64)
        integrals = torch.stack([weighted.copy_(group).mul_(self.weights).sum(0) for group in groups])
        if self.stem is not None:  # the points' gradients were taken at the stem's output: back to the input
            integrals = self.stem.input_gradient(integrals, difference.shape)
        return first_copy, difference * integrals

    def collect(self, first: int, chunk: torch.Tensor) -> None:
        """Store a chunk's plain maps; add its completed noisy maps to each item's Σa and Σa²."""
        first_copy, copied = self.copy_maps(first, chunk)
        plain_rows = max(0, min(len(copied), self.n_plain - first_copy))
        if plain_rows:
            self.maps["plain"][first_copy : first_copy + plain_rows] = copied[:plain_rows]
        if self.sums is None or plain_rows == len(copied):
            return
        first_item, groups = self.draws.push(copied[plain_rows:])
        for item, group in enumerate(groups, start=first_item):
            # Σa and Σa² in float64, in one reused buffer (squared in place after the first sum)
            draws_64 = self.scratch("draws", (self.n_noise, *self.inputs.shape[1:]), torch.float64).copy_(group)
            self.sums[item] = draws_64.sum(0)
            self.squares[item] = draws_64.square_().sum(0)

    def run(self) -> dict[str, torch.Tensor]:
        """Evaluate the stream; ``"plain"`` and ``"sg"``, ``"sg2"``, ``"vg"`` as asked for."""
        positions = torch.arange(self.n_copies * self.n_steps, device=self.inputs.device)
        run_batched(self.gradients, positions, self.batch_size or max(1, len(positions)), consume=self.collect)
        maps = dict(self.maps)
        if self.sums is not None:
            mean, mean_square = self.sums / self.n_noise, self.squares / self.n_noise
            ensembles = {"sg": mean, "sg2": mean_square, "vg": mean_square - mean.square()}
            maps.update({name: values.to(self.inputs.dtype) for name, values in ensembles.items()})
        return maps


def family_maps(model: nn.Module, method: str, inputs: torch.Tensor, targets: torch.Tensor, *, plain: bool,
                noise: torch.Tensor | None, ig_steps: int, ig_baseline: float, batch_size: int | None,
                relu_modules_only: bool = False) -> dict[str, torch.Tensor]:
    """The plain maps and the noise ensembles of one method from ONE stream of gradient passes
    (GBP guides only ``nn.ReLU`` modules with ``relu_modules_only``: :mod:`advxai.explainers.guided`).

    Returns:
        dict[str, Tensor]: ``"plain"`` (if ``plain``) and ``"sg"``, ``"sg2"``, ``"vg"`` (if
        ``noise`` is given), shaped like ``inputs`` in its dtype.
    """
    return FamilyStream(model, method, inputs, targets, plain=plain, noise=noise, ig_steps=ig_steps,
                        ig_baseline=ig_baseline, batch_size=batch_size, relu_modules_only=relu_modules_only).run()
