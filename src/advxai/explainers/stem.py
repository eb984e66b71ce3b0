"""A model's linear stem, which Integrated Gradients can evaluate once per input instead of once per point.

IG evaluates the model at ``z_k = b + α_k (x - b)`` for its points ``α_k``. When the model's first
layer ``L`` is a convolution that alone reads the input, ``L(z_k) = L(b) + α_k L₀(x - b)`` (``L₀``:
``L`` without its bias) and ``∂f/∂z_k = L₀ᵀ ∂f/∂L(z_k)``, so

    IG(x) = (x - b) ⊙ Σ_k w_k ∂f/∂z_k = (x - b) ⊙ L₀ᵀ (Σ_k w_k ∂f/∂L(z_k)):

the convolution runs once per input and its transpose once per input, not once per point each.
The same sums in another order, so the attributions agree with the point-by-point ones up to
float rounding (docs/exactness.md, "IG's linear stem"). Worth it only where the stem costs much per
output value: AlexNet's 11×11 convolution over 3 channels (363 products per value) was 21 % of its
forward+backward pass on a CPU; ResNet-50's 7×7 (147) and EfficientNet-Lite0's 3×3 (27) stems are
cheap against the float64 sums over their larger outputs, so they are left alone
(:data:`MIN_KERNEL_VOLUME`).

How the passes skip the stem: :meth:`LinearStem.replaced_by` sets the convolution's ``forward``
on the instance, for the duration of a ``with`` block, to return the precomputed stem outputs
(Python finds an instance attribute before the class's method; the block restores the module on
exit, error or not). This is the only place advxai replaces a module's behaviour at run time. A
forward hook could replace the output too, but only after the convolution has run on the
ignored input, which is the cost the stem saves; nothing else in PyTorch skips a module's
forward while the rest of the model runs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MIN_KERNEL_VOLUME = 256
"""Fewest products per stem output value (input channels per group × kernel area) for IG to use the stem."""


@dataclass(frozen=True)
class LinearStem:
    """A model's first layer, a zero-padded ``nn.Conv2d`` that alone reads the model's input."""

    conv: nn.Conv2d

    def linear(self, inputs: torch.Tensor) -> torch.Tensor:
        """``L₀(inputs)``: the convolution without its bias."""
        conv = self.conv
        return F.conv2d(inputs, conv.weight.detach(), None, conv.stride, conv.padding, conv.dilation, conv.groups)

    def input_gradient(self, output_gradient: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """``L₀ᵀ(output_gradient)``: the gradient with respect to the input, in ``output_gradient``'s dtype."""
        conv = self.conv
        weight = conv.weight.detach().to(output_gradient.dtype)
        return torch.nn.grad.conv2d_input(input_shape, weight, output_gradient, conv.stride, conv.padding, conv.dilation, conv.groups)

    @contextmanager
    def replaced_by(self, outputs: torch.Tensor) -> Iterator[None]:
        """Within the block, the stem returns a copy of ``outputs`` instead of computing them (the
        model's input is then ignored; the module docstring says how and why). A copy, because the
        next layer may work in place (AlexNet's ``ReLU(inplace=True)``); gradients still reach
        ``outputs`` through it."""
        conv = self.conv
        own = conv.__dict__.get("forward")
        conv.forward = lambda *_: outputs.clone()
        try:
            yield
        finally:
            if own is None:
                del conv.forward
            else:
                conv.forward = own


def find_linear_stem(model: nn.Module, example: torch.Tensor) -> LinearStem | None:
    """The model's linear stem, if its first layer is one that IG gains from, else ``None``.

    The stem is the first module called with the model's input tensor itself; it must be a
    zero-padded ``nn.Conv2d`` of at least :data:`MIN_KERNEL_VOLUME` products per output value, and
    the model must read its input only through it: the logits of ``example`` must be the same, bit
    for bit, when the model is given another input and the stem returns ``example``'s stem output.
    """
    if not any(_qualifies(module) for module in model.modules()):
        return None  # nothing to gain: no need to run the model
    called: list[nn.Module] = []

    def record(module: nn.Module, args: tuple) -> None:
        if not called and args and args[0] is example:
            called.append(module)

    hooks = [module.register_forward_pre_hook(record) for module in model.modules() if not list(module.children())]
    try:
        with torch.no_grad():
            expected = model(example)
    finally:
        for hook in hooks:
            hook.remove()
    if not called or not _qualifies(called[0]):
        return None
    conv = called[0]
    stem = LinearStem(conv)
    # another input from a generator of its own: the check must not move the caller's global RNG
    other = torch.randn(example.shape, generator=torch.Generator(example.device).manual_seed(0), dtype=example.dtype,
                        device=example.device)
    with torch.no_grad():
        stem_outputs = conv(example)
        with stem.replaced_by(stem_outputs):
            elsewhere = model(other)
    return stem if torch.equal(elsewhere, expected) else None


def _qualifies(module: nn.Module) -> bool:
    """A zero-padded ``nn.Conv2d`` of at least :data:`MIN_KERNEL_VOLUME` products per output value."""
    return (isinstance(module, nn.Conv2d) and module.padding_mode == "zeros"
            and module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1] >= MIN_KERNEL_VOLUME)
