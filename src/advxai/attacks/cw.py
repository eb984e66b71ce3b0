"""C&W-style attack on the singing voice detector's linear spectrogram (docs/method.md §2; docs/decisions.md, decision 4).

The authors' procedure: the *whole song's* linear-magnitude STFT, padded with 57 zero frames at
both ends, is perturbed by δ (same shape, padding included). Every frame is pushed towards the
opposite of its clean prediction at once, with the loss

    L(δ) = Σ δ² + α · mean_t BCE(logit_t(x + δ), NOT(clean_t)),

whose gradient is replaced by its sign and fed to ``torch.optim.Adam(lr=η)`` (not a plain sign
step as the paper's Eq. 8 reads); after each step δ is clipped to [−ε, ε]. The attack stops early
once every frame has flipped. Frame-level success is the flip.

The padding frames are part of δ as in the authors' code, but they never move: their magnitude
is 0, below the log floor 1e-7, where ``log(max(x, 1e-7))`` has no gradient, so their sign
gradient stays 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import ATTACK_ALPHA, ATTACK_EPSILON, ATTACK_LR, ATTACK_MAX_ITER
from ..runtime import module_device
from ..store import BatchCheckpoint
from ..svds.features import log_mel
from ..svds.model import pad_song


@dataclass(frozen=True)
class CWResult:
    """Outcome of :func:`spectrogram_attack` for one song of ``T`` frames.

    Attributes:
        adversarial_padded: ``(T + 114, 513)`` float32, the padded clean song plus ``delta``.
        delta: ``(T + 114, 513)`` float32 perturbation, within ``[-epsilon, epsilon]``.
        clean_pred: ``(T,)`` bool, ``P(sing) > threshold`` on the clean song.
        adv_pred: ``(T,)`` bool, the same on the adversarial song.
        flipped: ``(T,)`` bool, frames whose prediction changed (= reached their target).
        iterations: number of update steps taken.
    """

    adversarial_padded: np.ndarray
    delta: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    flipped: np.ndarray
    iterations: int


@dataclass(frozen=True)
class AttackCheckpoint:
    """Where a long attack keeps its progress so that a killed job resumes mid-song.

    Every ``every`` steps, δ, the Adam moments and the step count are saved in ``store`` under
    ``key``; a rerun with the same parameters continues from there and ends with exactly the
    result of an uninterrupted run.
    """

    store: BatchCheckpoint
    key: str
    every: int = 50


def frame_logits(model: nn.Module, padded_linear: torch.Tensor, filterbank: torch.Tensor) -> torch.Tensor:
    """Per-frame logits ``(T,)`` of a padded ``(T + 114, bins)`` linear spectrogram."""
    return model(log_mel(padded_linear, filterbank).unsqueeze(0))[0]


def sign_adam_step(optimizer: torch.optim.Adam, delta: torch.Tensor, gradient: torch.Tensor, epsilon: float) -> None:
    """One update: Adam on ``sign(gradient)`` (zeros stay zero), then clip δ to ``[-ε, ε]``."""
    delta.grad = torch.sign(gradient)
    optimizer.step()
    with torch.no_grad():
        delta.clamp_(-epsilon, epsilon)
    delta.grad = None


def _check_arguments(spec: torch.Tensor, filterbank: torch.Tensor, threshold: float, alpha: float, epsilon: float, lr: float,
                     max_iter: int) -> None:
    if spec.ndim != 2 or spec.shape[0] < 1:
        raise ValueError(f"spec_linear must be a (T, bins) spectrogram with T >= 1, got shape {tuple(spec.shape)}")
    if filterbank.ndim != 2 or filterbank.shape[0] != spec.shape[1]:
        raise ValueError(f"filterbank of shape {tuple(filterbank.shape)} does not match {spec.shape[1]} spectrogram bins")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    if alpha < 0 or epsilon <= 0 or lr <= 0 or max_iter < 0:
        raise ValueError(f"need alpha >= 0, epsilon > 0, lr > 0, max_iter >= 0; "
                         f"got alpha={alpha}, epsilon={epsilon}, lr={lr}, max_iter={max_iter}")


def _restore(checkpoint: AttackCheckpoint, optimizer: torch.optim.Adam, delta: torch.Tensor) -> int:
    """Load δ and the Adam state from ``checkpoint`` if it holds them; return the step reached."""
    if checkpoint.key not in checkpoint.store.keys():
        return 0
    saved = checkpoint.store.load(checkpoint.key)
    if saved["delta"].shape != tuple(delta.shape):
        raise ValueError(f"{checkpoint.store.path}: checkpoint '{checkpoint.key}' holds delta of shape {saved['delta'].shape}, "
                         f"expected {tuple(delta.shape)}")
    with torch.no_grad():
        delta.copy_(torch.from_numpy(saved["delta"]))
    optimizer.state[delta] = {
        "step": torch.tensor(float(saved["adam_step"])),
        "exp_avg": torch.from_numpy(saved["exp_avg"]).to(delta.device),
        "exp_avg_sq": torch.from_numpy(saved["exp_avg_sq"]).to(delta.device),
    }
    return int(saved["iteration"])


def _save(checkpoint: AttackCheckpoint, optimizer: torch.optim.Adam, delta: torch.Tensor, iteration: int) -> None:
    state = optimizer.state[delta]
    checkpoint.store.save(
        checkpoint.key,
        {
            "delta": delta.detach().cpu().numpy(),
            "exp_avg": state["exp_avg"].cpu().numpy(),
            "exp_avg_sq": state["exp_avg_sq"].cpu().numpy(),
            "adam_step": np.asarray(float(state["step"])),
            "iteration": np.asarray(iteration),
        },
    )


def spectrogram_attack(
    model: nn.Module,
    spec_linear: np.ndarray | torch.Tensor,
    filterbank: np.ndarray | torch.Tensor,
    *,
    threshold: float,
    alpha: float = ATTACK_ALPHA,
    epsilon: float = ATTACK_EPSILON,
    lr: float = ATTACK_LR,
    max_iter: int = ATTACK_MAX_ITER,
    checkpoint: AttackCheckpoint | None = None,
) -> CWResult:
    """Attack every frame of one song at once (docs/method.md §2).

    Args:
        model: the detector in eval mode, mapping log-mel ``(B, T', 80)`` to logits
            ``(B, T' - 114)`` (fully convolutional, e.g. :class:`advxai.svds.model.SVDS`).
        spec_linear: the clean, *unpadded* linear-magnitude STFT ``(T, bins)``.
        filterbank: mel filterbank ``(bins, mels)``.
        threshold: decision threshold τ on ``P(sing)``.
        alpha: weight of the classification loss.
        epsilon: bound on ``|δ|`` in linear magnitude units.
        lr: Adam learning rate η applied to the sign of the gradient.
        max_iter: maximum number of update steps.
        checkpoint: optional place to keep progress for resuming a killed job.

    Returns:
        CWResult: the padded adversarial song, δ, frame predictions and the flip flags.
    """
    if model.training:
        raise ValueError("spectrogram_attack needs the model in eval mode (BatchNorm running statistics); call model.eval()")
    device = module_device(model)
    spec = torch.as_tensor(spec_linear, dtype=torch.float32, device=device)
    bank = torch.as_tensor(filterbank, dtype=torch.float32, device=device)
    _check_arguments(spec, bank, threshold, alpha, epsilon, lr, max_iter)

    clean = pad_song(spec)
    with torch.no_grad():
        clean_pred = torch.sigmoid(frame_logits(model, clean, bank)) > threshold
    target = (~clean_pred).float()

    delta = torch.zeros_like(clean, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    iteration = _restore(checkpoint, optimizer, delta) if checkpoint is not None else 0
    while True:
        # The forward pass of the current δ both judges the last step and starts the next one.
        logits = frame_logits(model, clean + delta, bank)
        adv_pred = torch.sigmoid(logits.detach()) > threshold
        if iteration >= max_iter or bool(torch.all(adv_pred != clean_pred)):
            break
        loss = (delta**2).sum() + alpha * F.binary_cross_entropy_with_logits(logits, target)
        (gradient,) = torch.autograd.grad(loss, delta)
        sign_adam_step(optimizer, delta, gradient, epsilon)
        iteration += 1
        if checkpoint is not None and iteration % checkpoint.every == 0:
            _save(checkpoint, optimizer, delta, iteration)

    return _result(clean, delta, clean_pred, adv_pred, iteration)


def _result(clean: torch.Tensor, delta: torch.Tensor, clean_pred: torch.Tensor, adv_pred: torch.Tensor, iterations: int) -> CWResult:
    """The attack's outcome as NumPy arrays."""
    clean_pred_np, adv_pred_np = clean_pred.cpu().numpy(), adv_pred.cpu().numpy()
    return CWResult(
        adversarial_padded=(clean + delta).detach().cpu().numpy(),
        delta=delta.detach().cpu().numpy(),
        clean_pred=clean_pred_np,
        adv_pred=adv_pred_np,
        flipped=adv_pred_np != clean_pred_np,
        iterations=iterations,
    )
