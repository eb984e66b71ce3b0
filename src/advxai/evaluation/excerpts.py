"""Adversarial excerpts of the singing voice detector and their explanations (docs/method.md §2.1, §3).

* :func:`select_excerpts` draws successfully attacked frames of each song and keeps the
  excerpt pairs whose adversarial prediction reached the target while the clean one did not.
* :func:`explain_excerpts` runs the explainer engine on log-mel excerpts with the audio settings
  (LIME on class probabilities with audioLIME's kernel; gradient maps of the target logit).

Excerpts are log-mel ``(N, 115, 80)`` (time × mel): ``X`` clean, ``X̃`` adversarial, their
difference the perturbation in the log-mel domain (docs/decisions.md, decision 5). A target is the class
the adversary was pushed to: 1 = "no sing → sing", 0 = "sing → no sing"; the label-flip and
localised experiments judge excerpts with :class:`advxai.evaluation.flips.ThresholdCrossing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..arrays import to_numpy
from ..batching import run_batched
from ..explainers.engine import ExplainSettings, explain_all
from ..explainers.registry import validate_explainers
from ..explainers.settings import AUDIO_LIME, ExplainerSettings
from ..names import reported_aggregation
from ..runtime import module_device
from ..seeding import numpy_rng
from ..segments import audio_grid
from ..svds.features import log_mel
from ..svds.model import CONTEXT, EXCERPT_FRAMES, predict_song
from .flips import reaches_target

SEGMENTATION = "time-frequency"  # name of the audio segmentation in the engine's score dicts

SongAttack = tuple[str, np.ndarray, np.ndarray, np.ndarray]
"""``(name, clean (T, bins), adversarial padded (T + 114, bins), flipped bool (T,))``."""


@dataclass(frozen=True)
class ExcerptSet:
    """Selected clean/adversarial excerpt pairs of one attack direction.

    Attributes:
        ids: ``(N,)`` stable ids ``"<song>#<frame>#<j>"`` (``j``: the pair's rank within its song).
        song: ``(N,)`` song names.
        frame: ``(N,)`` centre frame of each excerpt in the unpadded song.
        clean_logmel: ``(N, 115, 80)`` float32 log-mel of the clean excerpts (time × mel).
        adv_logmel: ``(N, 115, 80)`` float32 log-mel of the adversarial excerpts.
        clean_prob: ``(N,)`` P(sing) of the clean excerpts.
        adv_prob: ``(N,)`` P(sing) of the adversarial excerpts.
    """

    ids: np.ndarray
    song: np.ndarray
    frame: np.ndarray
    clean_logmel: np.ndarray
    adv_logmel: np.ndarray
    clean_prob: np.ndarray
    adv_prob: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def delta(self) -> np.ndarray:
        """The perturbation in the log-mel domain, ``Δ = X̃ − X``."""
        return self.adv_logmel - self.clean_logmel


def _require_eval(model: nn.Module, caller: str) -> None:
    if model.training:
        raise ValueError(f"{caller} needs the detector in eval mode (BatchNorm running statistics); call model.eval()")


@torch.no_grad()
def sing_probability(model: nn.Module, logmel: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(sing) ``(N,)`` of log-mel excerpts ``(N, 115, 80)``, in batches of ``batch_size``."""
    inputs = torch.as_tensor(logmel, dtype=torch.float32, device=module_device(model))
    if inputs.ndim != 3 or inputs.shape[1] != EXCERPT_FRAMES:
        raise ValueError(f"expected log-mel excerpts (N, {EXCERPT_FRAMES}, mels), got shape {tuple(inputs.shape)}")
    logits = run_batched(lambda chunk: model(chunk)[:, 0], inputs, batch_size)
    return torch.sigmoid(logits).double().cpu().numpy()


def _excerpt_logmel(spec: torch.Tensor, starts: np.ndarray, bank: torch.Tensor) -> torch.Tensor:
    """Log-mel ``(B, 115, mels)`` of the linear-spectrogram windows ``spec[s : s + 115]``."""
    windows = torch.stack([spec[start : start + EXCERPT_FRAMES] for start in starts.tolist()])
    return log_mel(windows, bank)


def _check_song(name: str, clean: np.ndarray, adversarial: np.ndarray, flipped: np.ndarray) -> None:
    if clean.ndim != 2:
        raise ValueError(f"song '{name}': clean spectrogram must be (T, bins), got shape {clean.shape}")
    n_frames, n_bins = clean.shape
    if adversarial.shape != (n_frames + 2 * CONTEXT, n_bins):
        raise ValueError(f"song '{name}': padded adversary must have shape {(n_frames + 2 * CONTEXT, n_bins)}, got {adversarial.shape}")
    if flipped.shape != (n_frames,) or flipped.dtype != bool:
        raise ValueError(f"song '{name}': flipped must be a bool array of shape ({n_frames},), got {flipped.dtype} {flipped.shape}")


def _song_excerpts(
    song: SongAttack,
    model: nn.Module,
    bank: torch.Tensor,
    *,
    threshold: float,
    direction: int,
    per_song: int,
    max_draws: int,
    seed: int,
    batch_size: int,
) -> tuple[list[int], dict[int, tuple[float, float]]]:
    """The kept frames of one song (in draw order, duplicates possible) and their probabilities."""
    name, clean_np, adversarial_np, flipped = song
    clean_np, adversarial_np, flipped = to_numpy(clean_np), to_numpy(adversarial_np), to_numpy(flipped)
    _check_song(name, clean_np, adversarial_np, flipped)
    n_frames = clean_np.shape[0]
    clean_pred = predict_song(model, clean_np, bank) > threshold
    # A frame's target is NOT its clean prediction; keep the frames attacked towards `direction`.
    candidates = np.flatnonzero(flipped & (clean_pred != bool(direction)))
    if candidates.size == 0 or max_draws == 0:
        return [], {}
    draws = candidates[numpy_rng(seed, f"excerpts-{direction}", name).integers(0, candidates.size, size=max_draws)]

    device = module_device(model)
    clean = torch.as_tensor(clean_np, dtype=torch.float32, device=device)
    adversarial = torch.as_tensor(adversarial_np, dtype=torch.float32, device=device)
    verdicts: dict[int, bool] = {}
    probabilities: dict[int, tuple[float, float]] = {}
    kept: list[int] = []
    chunk = 4 * per_song  # draws judged per model call; the outcome does not depend on it
    passes = min(batch_size, chunk)  # a fixed batch shape that a block of draws fills: little padding
    for start in range(0, max_draws, chunk):
        block = draws[start : start + chunk]
        fresh = np.array([f for f in np.unique(block) if f not in verdicts], dtype=np.int64)
        # The clean excerpt [f-57, f+58) must lie inside the unpadded song.
        inside = fresh[(fresh >= CONTEXT) & (fresh + CONTEXT + 1 <= n_frames)]
        verdicts.update({int(f): False for f in fresh})
        if inside.size:
            p_clean = sing_probability(model, _excerpt_logmel(clean, inside - CONTEXT, bank), passes)
            p_adv = sing_probability(model, _excerpt_logmel(adversarial, inside, bank), passes)
            targets = np.full(inside.size, direction)
            keep = reaches_target(p_adv, targets, threshold) & ~reaches_target(p_clean, targets, threshold)
            for frame, ok, pc, pa in zip(inside.tolist(), keep, p_clean, p_adv):
                verdicts[frame] = bool(ok)
                probabilities[frame] = (float(pc), float(pa))
        for frame in block.tolist():
            if verdicts[frame]:
                kept.append(frame)
                if len(kept) == per_song:
                    return kept, probabilities
    return kept, probabilities


def select_excerpts(
    songs: Sequence[SongAttack],
    model: nn.Module,
    filterbank: np.ndarray | torch.Tensor,
    *,
    threshold: float,
    direction: int,
    per_song: int = 10,
    max_draws: int = 100_000,
    seed: int,
    batch_size: int = 256,
) -> ExcerptSet:
    """Adversarial excerpt pairs of one attack direction (docs/method.md §2.1; docs/decisions.md, decision 17).

    For each song, frames that flipped towards ``direction`` are drawn with replacement from
    ``numpy_rng(seed, f"excerpts-{direction}", song name)``. A draw of frame ``f`` gives the
    adversarial excerpt ``adv_padded[f : f + 115]`` and the clean excerpt ``clean[f − 57 : f + 58]``
    (skipped if it leaves the song); the pair is kept if ``P(adv)`` reaches the target and
    ``P(clean)`` does not. Drawing stops after ``per_song`` kept pairs or ``max_draws`` draws.

    Args:
        songs: per song ``(name, clean (T, bins), padded adversary (T + 114, bins), flipped (T,))``.
        model: the detector in eval mode.
        filterbank: mel filterbank ``(bins, 80)``.
        threshold: decision threshold τ.
        direction: 1 ("no sing → sing") or 0 ("sing → no sing").
        per_song: pairs kept per song at most.
        max_draws: draws per song at most.
        seed: global seed.
        batch_size: excerpts per forward pass.

    Returns:
        ExcerptSet: the kept pairs, songs in the given order, draws in draw order.
    """
    _check_selection(songs, model, direction=direction, per_song=per_song, max_draws=max_draws)
    bank = torch.as_tensor(filterbank, dtype=torch.float32, device=module_device(model))
    ids, song_names, frames, clean_lm, adv_lm, clean_p, adv_p = [], [], [], [], [], [], []
    for song in songs:
        kept, probabilities = _song_excerpts(
            song, model, bank, threshold=threshold, direction=direction, per_song=per_song,
            max_draws=max_draws, seed=seed, batch_size=batch_size,
        )
        if not kept:
            continue
        name, clean, adversarial = song[0], song[1], song[2]
        starts = np.asarray(kept)
        device = bank.device
        clean_lm.append(_excerpt_logmel(torch.as_tensor(clean, dtype=torch.float32, device=device), starts - CONTEXT, bank).cpu().numpy())
        adv_lm.append(_excerpt_logmel(torch.as_tensor(adversarial, dtype=torch.float32, device=device), starts, bank).cpu().numpy())
        ids += [f"{name}#{frame}#{rank}" for rank, frame in enumerate(kept)]
        song_names += [name] * len(kept)
        frames += kept
        clean_p += [probabilities[frame][0] for frame in kept]
        adv_p += [probabilities[frame][1] for frame in kept]
    return _excerpt_set(ids, song_names, frames, clean_lm, adv_lm, clean_p, adv_p, n_mels=bank.shape[1])


def _check_selection(songs: Sequence[SongAttack], model: nn.Module, *, direction: int, per_song: int, max_draws: int) -> None:
    """One clear error for each bad argument of select_excerpts, before any song is drawn from."""
    _require_eval(model, "select_excerpts")
    if direction not in (0, 1):
        raise ValueError(f"direction must be 1 (no sing -> sing) or 0 (sing -> no sing), got {direction}")
    if per_song < 1 or max_draws < 0:
        raise ValueError(f"need per_song >= 1 and max_draws >= 0, got per_song={per_song}, max_draws={max_draws}")
    names = [song[0] for song in songs]
    if len(set(names)) != len(names):
        raise ValueError(f"song names must be unique (they seed the draws), got {names}")


def _excerpt_set(ids, song_names, frames, clean_lm, adv_lm, clean_p, adv_p, *, n_mels: int) -> ExcerptSet:
    """The per-song lists as one ExcerptSet; with no pair kept, empty ``(0, 115, n_mels)`` spectrograms."""
    empty = np.zeros((0, EXCERPT_FRAMES, n_mels), dtype=np.float32)
    return ExcerptSet(
        ids=np.asarray(ids, dtype=str),
        song=np.asarray(song_names, dtype=str),
        frame=np.asarray(frames, dtype=np.int64),
        clean_logmel=np.concatenate(clean_lm) if clean_lm else empty,
        adv_logmel=np.concatenate(adv_lm) if adv_lm else empty.copy(),
        clean_prob=np.asarray(clean_p, dtype=np.float64),
        adv_prob=np.asarray(adv_p, dtype=np.float64),
    )


class _TwoClassLogits(nn.Module):
    """``(N, 1, 115, 80) -> [-z, z]``: the gradient of class ``t`` is the gradient towards target ``t``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logit = self.detector(inputs[:, 0])
        return torch.cat([-logit, logit], dim=1)


class _TwoClassProbabilities(nn.Module):
    """``(N, 1, 115, 80) -> [1 - p, p]``: the outputs audioLIME regresses (docs/method.md §3)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        probability = torch.sigmoid(self.detector(inputs[:, 0]))
        return torch.cat([1.0 - probability, probability], dim=1)


def excerpt_logits(model: nn.Module) -> nn.Module:
    """Wrap the detector as a 2-class model on ``(N, 1, 115, 80)`` with logits ``[-z, z]``."""
    return _TwoClassLogits(model)


def excerpt_probabilities(model: nn.Module) -> nn.Module:
    """Wrap the detector as a 2-class model on ``(N, 1, 115, 80)`` with outputs ``[1 - p, p]``."""
    return _TwoClassProbabilities(model)


def explain_excerpts(
    model: nn.Module,
    excerpts_logmel: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    ids: Sequence[str],
    *,
    explainers: Sequence[str],
    settings: ExplainerSettings | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-segment scores of log-mel excerpts for their target class; top-k = the k largest.

    Gradient explainers explain the target logit of :func:`excerpt_logits` and are aggregated
    with ``mean_abs``. LIME follows audioLIME (docs/method.md §3): occlusion by the excerpt mean,
    Bernoulli(0.5) samples with row 0 all ones, kernel ``exp(-d²/(2w²))`` on the cosine distance
    of binary vectors, Ridge(1) on the outputs ``[1 - p, p]`` of :func:`excerpt_probabilities`.
    Its score is the signed coefficient of the *target* output; since class-0 coefficients are
    exactly ``-w``, "largest" equals the authors' direction-dependent sort of the class-1 weights.

    Args:
        model: the detector in eval mode (log-mel ``(B, T, 80)`` → logits ``(B, T − 114)``).
        excerpts_logmel: ``(N, 115, 80)`` log-mel excerpts being explained.
        targets: ``(N,)`` target class per excerpt (0 or 1).
        ids: ``N`` item ids; they seed LIME samples and SmoothGrad noise.
        explainers: built-in explainer names (``lime``, ``sal``, ``ig-sg``, ...).
        settings: ``audio.explain`` (``None``: the paper's, ``ExplainerSettings.paper("audio")``);
            the noise standard deviation is in log-mel units.
        seed: global seed.
        batch_size: inputs per forward/backward pass.

    Returns:
        dict: explainer → float64 ``(N, 20)`` scores, in the order of ``explainers``.
    """
    _require_eval(model, "explain_excerpts")
    names = validate_explainers(explainers)
    device = module_device(model)
    inputs = torch.as_tensor(excerpts_logmel, dtype=torch.float32, device=device)
    if inputs.ndim != 3:
        raise ValueError(f"excerpts_logmel must be (N, frames, mels), got shape {tuple(inputs.shape)}")
    n_items, n_frames, n_mels = inputs.shape
    target_tensor = torch.as_tensor(targets, dtype=torch.long, device=device)
    if target_tensor.shape != (n_items,) or not bool(((target_tensor == 0) | (target_tensor == 1)).all()):
        raise ValueError(f"targets must be {n_items} values in {{0, 1}}, got {target_tensor.tolist()}")
    if len(ids) != n_items:
        raise ValueError(f"ids: expected {n_items} item ids, got {len(ids)}")
    grid = audio_grid(n_frames, n_mels)
    n_segments = int(grid.max()) + 1
    if n_items == 0:
        return {name: np.zeros((0, n_segments)) for name in names}
    engine = ExplainSettings(explainer=settings or ExplainerSettings.paper("audio"), lime=AUDIO_LIME, seed=seed, batch_size=batch_size)
    masks = torch.from_numpy(grid).to(device).expand(n_items, n_frames, n_mels)
    scores = explain_all(
        excerpt_logits(model), inputs.unsqueeze(1), target_tensor, list(ids), {SEGMENTATION: masks},
        {SEGMENTATION: np.full(n_items, n_segments)}, names, engine, lime_forward=excerpt_probabilities(model),
    )
    return {
        name: scores[name][SEGMENTATION][reported_aggregation(name)]
        for name in names
    }
