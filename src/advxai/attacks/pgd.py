"""Targeted L-infinity PGD on images, step for step as ``captum.robust.PGD`` (docs/method.md §5.3).

Differences from captum, all deliberate: clamp bounds may be per-channel tensors (captum takes
scalars; docs/decisions.md, decision 2), the attack is batched with each example's own gradient at a fixed
batch shape (so an adversary does not depend on its batch), and it reports per-example success
and the first step that reached the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advxai.arrays import to_numpy
from advxai.batching import run_batched
from advxai.constants import PGD_STEPS
from advxai.seeding import numpy_rng

TARGET_STAGE = "pgd-target"
# captum's FGSM leaves elements whose gradient is at most this in magnitude unchanged.
ZERO_GRADIENT_THRESHOLD = 1e-6


def draw_targets(seed: int, ids: Sequence[str], clean_predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """One target class per item, uniform over the ``n_classes - 1`` classes other than its clean prediction.

    Each draw uses its own generator seeded by ``(seed, "pgd-target", id)``, so an item's target
    does not depend on which batch or shard it is in (the authors used one running RNG).

    Returns:
        np.ndarray: ``int64`` targets of shape ``(len(ids),)``.
    """
    clean_predictions = to_numpy(clean_predictions)
    if clean_predictions.shape != (len(ids),):
        raise ValueError(f"clean_predictions has shape {clean_predictions.shape}, expected ({len(ids)},) like ids")
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}: a targeted attack needs at least 2 classes")
    if len(ids) and (clean_predictions.min() < 0 or clean_predictions.max() >= n_classes):
        raise ValueError(f"clean_predictions must lie in 0..{n_classes - 1}")
    targets = np.empty(len(ids), dtype=np.int64)
    for index, (item_id, clean) in enumerate(zip(ids, clean_predictions)):
        other = int(numpy_rng(seed, TARGET_STAGE, item_id).integers(n_classes - 1))
        targets[index] = other + (other >= clean)  # skip the clean prediction
    return targets


@dataclass
class PGDResult:
    """Outcome of :func:`targeted_pgd` for a batch.

    Args:
        adversaries (Tensor): adversarial inputs, normalised, same shape as the inputs.
        success (np.ndarray): bool, the final prediction equals the target.
        first_success_step (np.ndarray): int, the first step after which the prediction was the
            target (0 = already the clean input), ``-1`` if never.
        final_predictions (np.ndarray): int, argmax of the model on the adversaries.
    """

    adversaries: torch.Tensor
    success: np.ndarray
    first_success_step: np.ndarray
    final_predictions: np.ndarray


def _pgd_step(
    inputs: torch.Tensor,
    current: torch.Tensor,
    gradient: torch.Tensor,
    epsilon: float,
    step_size: float,
    lower: torch.Tensor,
    upper: torch.Tensor,
) -> torch.Tensor:
    """One targeted step, in captum's order of operations (so results match it bit for bit).

    Descend along the gradient sign where the gradient is not (almost) zero, project onto the
    epsilon ball around ``inputs``, clamp into ``[lower, upper]``.
    """
    descended = current + -1 * step_size * torch.sign(gradient)
    moved = torch.where(gradient.abs() > ZERO_GRADIENT_THRESHOLD, descended, current)
    projected = inputs + torch.clamp(moved - inputs, -epsilon, epsilon)
    return torch.clamp(projected, min=lower, max=upper)


def _loss_gradient(model: nn.Module, current: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at ``current`` and the gradient of each example's own cross-entropy to its target."""
    with torch.enable_grad():
        current = current.detach().requires_grad_(True)
        logits = model(current)
        # Examples do not interact, so the gradient of the summed loss is each example's own.
        losses = F.cross_entropy(logits, targets, reduction="none")
        (gradient,) = torch.autograd.grad(losses.sum(), current)
    return logits.detach(), gradient


def _check_settings(model: nn.Module, n_steps: int, epsilon: float, step_size: float) -> None:
    if isinstance(model, nn.Module) and model.training:
        raise ValueError(
            "targeted_pgd needs the model in eval mode (call model.eval()): batch norm or dropout "
            "in training mode would make each adversary depend on its batch"
        )
    if n_steps < 0 or epsilon < 0 or step_size <= 0:
        raise ValueError(f"need n_steps >= 0, epsilon >= 0, step_size > 0; got {n_steps}, {epsilon}, {step_size}")


def _checked_targets(targets: np.ndarray | Sequence[int] | torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``targets`` as a long tensor on the inputs' device, one per input."""
    if not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(np.asarray(targets))
    targets = targets.to(device=inputs.device, dtype=torch.long)
    if targets.shape != (inputs.shape[0],):
        raise ValueError(f"targets has shape {tuple(targets.shape)}, expected ({inputs.shape[0]},) like inputs")
    return targets


def targeted_pgd(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: np.ndarray | Sequence[int] | torch.Tensor,
    epsilon: float,
    step_size: float,
    n_steps: int = PGD_STEPS,
    *,
    lower: torch.Tensor,
    upper: torch.Tensor,
    early_stop: bool = False,
    batch_size: int | None = None,
) -> PGDResult:
    """Targeted L-infinity projected gradient descent on the cross-entropy of logits.

    Per step: ``x~ <- clamp(x + clip_eps(x~ - step_size * sign(grad CE(f(x~), t)) - x), lower, upper)``
    with elements of (near) zero gradient left in place, exactly as ``captum.robust.PGD`` with
    ``CrossEntropyLoss(reduction='none')`` and ``targeted=True``. Like the authors, all
    ``n_steps`` steps are taken (docs/decisions.md, decision 3) unless ``early_stop``, which freezes each
    example at the first step where it reaches its target.

    Args:
        model (nn.Module): classifier in eval mode returning logits ``(N, n_classes)``.
        inputs (Tensor): normalised batch ``(N, C, H, W)``.
        targets: target class per example, shape ``(N,)``.
        epsilon (float): L-infinity radius, in normalised units.
        step_size (float): step size, in normalised units.
        n_steps (int): number of steps.
        lower (Tensor): lower clamp bound broadcastable to one input, e.g. ``(C, 1, 1)``.
        upper (Tensor): upper clamp bound, like ``lower``.
        early_stop (bool): stop moving an example once it is classified as its target.
        batch_size (int, optional): examples attacked together, every forward/backward at exactly
            this batch shape (the last chunk is padded, :func:`advxai.batching.run_batched`), so an
            example's adversary does not depend on how many examples are attacked with it.
            ``None``: all ``N`` at once.

    Returns:
        PGDResult: adversaries (normalised, detached), success flags, first success steps and
        final predictions.
    """
    _check_settings(model, n_steps, epsilon, step_size)
    inputs = inputs.detach()
    targets = _checked_targets(targets, inputs)
    lower = lower.to(device=inputs.device, dtype=inputs.dtype)
    upper = upper.to(device=inputs.device, dtype=inputs.dtype)

    def attack(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _attack_chunk(model, inputs[rows], targets[rows], epsilon, step_size, n_steps, lower, upper, early_stop)

    rows = torch.arange(inputs.shape[0], device=inputs.device)
    adversaries, first_success, final_predictions = run_batched(attack, rows, batch_size or max(1, len(rows)))
    return PGDResult(
        adversaries=adversaries,
        success=(final_predictions == targets).cpu().numpy(),
        first_success_step=first_success.cpu().numpy(),
        final_predictions=final_predictions.cpu().numpy(),
    )


def _attack_chunk(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    epsilon: float,
    step_size: float,
    n_steps: int,
    lower: torch.Tensor,
    upper: torch.Tensor,
    early_stop: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(adversaries, first success steps, final predictions) of one chunk.

    Every step evaluates the whole chunk, frozen examples included, so the batch shape never
    changes; early stopping only decides which examples move, and ends the loop once none does.
    """
    adversaries = inputs.clone()
    every = torch.arange(inputs.shape[0], device=inputs.device)
    first_success = torch.full((inputs.shape[0],), -1, dtype=torch.long, device=inputs.device)
    for step in range(n_steps):
        logits, gradient = _loss_gradient(model, adversaries, targets)
        _record_first_success(first_success, every, logits.argmax(1) == targets, step)
        stepped = _pgd_step(inputs, adversaries, gradient, epsilon, step_size, lower, upper)
        if not early_stop:
            adversaries = stepped
            continue
        moving = first_success < 0
        if not bool(moving.any()):
            break
        adversaries = torch.where(moving.view(-1, *([1] * (inputs.dim() - 1))), stepped, adversaries)

    with torch.no_grad():
        final_predictions = model(adversaries).argmax(1)
    _record_first_success(first_success, every, final_predictions == targets, n_steps)
    return adversaries, first_success, final_predictions


def _record_first_success(first_success: torch.Tensor, index: torch.Tensor, hit: torch.Tensor, step: int) -> None:
    """Set ``first_success[index]`` to ``step`` where ``hit`` and no earlier step succeeded."""
    newly = hit & (first_success[index] < 0)
    first_success[index[newly]] = step
