"""Fast arithmetic of the image models' passes (``image.arithmetic``; docs/exactness.md, "Fast arithmetic").

``exact`` keeps a network as built; ``tf32`` and ``bf16`` wrap it in :class:`FastArithmetic`,
which trades float32 exactness for speed. The CUDA flags that go with them are set per job by
:func:`advxai.runtime.use_device`.
"""

from __future__ import annotations

import torch
from torch import nn

from .constants import ARITHMETICS, check_arithmetic


class _ChannelsLast(torch.autograd.Function):
    """The input in channels_last layout; its gradient back in the default layout, as the caller's input has it."""

    @staticmethod
    def forward(ctx: object, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx: object, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output.contiguous()


class FastArithmetic(nn.Module):
    """A classifier whose passes trade float32 exactness for speed (``image.arithmetic``; docs/exactness.md).

    ``tf32`` and ``bf16`` both run the network in the channels_last memory layout: its weights
    are converted in place, the input on every call, and an input gradient comes back in the
    default layout. ``bf16`` also runs the forward under ``torch.autocast`` in bfloat16
    (convolutions and matmuls in bf16, the rest as autocast decides); the logits come back as
    float32 either way. Input gradients flow to the caller's float32 input through the layout
    change and autocast's casts, so every gradient explainer, Guided Backprop's guided
    activations and PGD work unchanged. TF32 itself is a CUDA flag, set per job by
    :func:`advxai.runtime.use_device`; on a CPU ``tf32`` is channels_last alone.

    Args:
        network: the classifier (normalised NCHW input, logits out).
        arithmetic: ``tf32`` or ``bf16``.
    """

    def __init__(self, network: nn.Module, arithmetic: str) -> None:
        super().__init__()
        if arithmetic == "exact" or arithmetic not in ARITHMETICS:
            raise ValueError(f"FastArithmetic: arithmetic must be 'tf32' or 'bf16', got {arithmetic!r}")
        self.network = network.to(memory_format=torch.channels_last)
        self.arithmetic = arithmetic
        self.train(network.training)  # an eval-mode network stays one (PGD refuses a model in training mode)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 4:
            inputs = _ChannelsLast.apply(inputs)
        if self.arithmetic == "bf16":
            with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
                logits = self.network(inputs)
            return logits.float()
        return self.network(inputs)


def with_arithmetic(network: nn.Module, arithmetic: str) -> nn.Module:
    """``network`` itself for ``exact``, else ``network`` in a :class:`FastArithmetic` (weights made channels_last in place)."""
    return network if check_arithmetic(arithmetic) == "exact" else FastArithmetic(network, arithmetic)
