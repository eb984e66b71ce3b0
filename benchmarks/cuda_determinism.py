"""Probe: is a row's arithmetic on this device independent of reruns, batch size and batch position?

The exactness promises (docs/exactness.md) rest on three facts about a device's kernels:

* ``rerun``: the same batch twice gives bitwise the same logits and input gradients;
* ``position``: a row gives the same values at another position of a batch of the same shape
  (the engine pads every pass to a fixed shape, so only the position may change with the shard);
* ``batch``: a row alone (batch 1) gives the same values as inside a batch of ``--batch`` rows.

For each model and for cuDNN's default and deterministic kernels it prints, per fact, the largest
absolute difference of the logits and of the input gradient of the top logit, relative to their
largest magnitude (0 means bitwise equal). TF32 is off, as in the exactness tests.

Run: ``PYTHONPATH=src python benchmarks/cuda_determinism.py [--device cuda] [--models resnet50]``
"""

from __future__ import annotations

import argparse

import torch

from advxai.models import load_model


def logits_and_gradients(module: torch.nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.clone().requires_grad_(True)
    logits = module(inputs)
    (gradients,) = torch.autograd.grad(logits.max(dim=1).values.sum(), inputs)
    return logits.detach(), gradients


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def probe(module: torch.nn.Module, images: torch.Tensor) -> dict[str, tuple[float, float]]:
    """The three facts for row 0 of ``images``, as (logits, gradients) relative differences."""
    first = logits_and_gradients(module, images)
    again = logits_and_gradients(module, images)
    shifted = logits_and_gradients(module, images.roll(3, dims=0))  # row 0 moves to position 3
    alone = logits_and_gradients(module, images[:1])
    return {
        "rerun": tuple(relative_difference(a, b) for a, b in zip(again, first)),
        "position": tuple(relative_difference(a[3], b[0]) for a, b in zip(shifted, first)),
        "batch": tuple(relative_difference(a[0], b[0]) for a, b in zip(alone, first)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="efficientnet_lite0,alexnet,resnet50")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    images = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(args.device)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"device {args.device} ({name}), torch {torch.__version__}, batch {args.batch}")
    print(f"{'model':<20}{'cudnn':<15}" + "".join(f"{fact + ' logits/grad':>26}" for fact in ("rerun", "position", "batch")))
    for name in args.models.split(","):
        module = load_model(name, weights="DEFAULT" if name == "efficientnet_lite0" else None, device=args.device).module
        for deterministic in (False, True):
            torch.backends.cudnn.deterministic = deterministic
            facts = probe(module, images)
            cells = "".join(f"{logits:>13.2e}/{gradients:<12.2e}" for logits, gradients in facts.values())
            print(f"{name:<20}{'deterministic' if deterministic else 'default':<15}{cells}")


if __name__ == "__main__":
    main()
