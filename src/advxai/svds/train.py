"""Training of the singing-voice detector (docs/method.md §1.3, §1.5).

Random 164-frame windows (label = centre frame) are time-stretched and pitch-shifted by one
affine spline resampling, cropped to 115 frames, given a random Gaussian filter response, and
fed through log-mel → :class:`~advxai.svds.model.SVDS` with BCE on 0.02/0.98 targets and Adam.

Every random draw is a function of ``(seed, global batch index)`` (window order, augmentation,
dropout) or of ``seed`` alone (initial weights). A run resumed from an epoch checkpoint is
therefore bitwise identical to an uninterrupted one (on the same device and thread count; on
CUDA each step runs with :func:`advxai.runtime.exact_cuda_arithmetic` for that: cuDNN's default
weight-gradient kernels add in a varying order, and on an H100 a resumed training then differed
from an uninterrupted one by about 1e-4 in the weights after six steps).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..constants import N_FFT, SAMPLE_RATE, TRAIN_BATCH_SIZE, TRAIN_LR, TRAIN_LR_DECAY
from ..runtime import exact_cuda_arithmetic
from ..seeding import item_seed, numpy_rng, torch_generator
from ..store import BatchCheckpoint
from .features import log_mel, mel_filterbank
from .model import EXCERPT_FRAMES, STAGE, SVDS

SPLINE_ORDER = 2
FILTER_STD_SEMITONES = (5.0, 2.0)  # mean and spread of the filter width (Schlüter: 5 + N(0,1)·(7 − 5))
TARGET_SMOOTHING = (0.02, 0.96)  # y' = 0.02 + 0.96·y

# docs/decisions.md, decision 14: the filter centre is drawn between 150 Hz and 8 kHz (Schlüter's intent) and
# mapped to the 513 kept bins with their true spacing of 22050/1024 Hz. veracity's port instead
# draws centres up to its batch size (32 Hz) and maps with 8000/513 Hz per bin; pass
# {"filter_max_hz": 32.0, "filter_hz_per_bin": 8000 / 513} to reproduce it.
DEFAULT_AUGMENT: dict[str, float] = {
    "time_stretch": 0.3,
    "pitch_shift": 0.3,
    "filter_db": 10.0,
    "filter_min_hz": 150.0,
    "filter_max_hz": 8000.0,
    "filter_hz_per_bin": SAMPLE_RATE / N_FFT,
}

Song = tuple[np.ndarray, np.ndarray]


def resolve_augment(augment: Mapping[str, float] | None) -> dict[str, float] | None:
    """Complete ``augment`` with :data:`DEFAULT_AUGMENT`; ``None`` switches augmentation off."""
    if augment is None:
        return None
    unknown = sorted(set(augment) - set(DEFAULT_AUGMENT))
    if unknown:
        raise ValueError(f"augment: unknown keys {unknown}; known: {sorted(DEFAULT_AUGMENT)}")
    resolved = {**DEFAULT_AUGMENT, **{key: float(value) for key, value in augment.items()}}
    for key in ("time_stretch", "pitch_shift"):
        if not 0.0 <= resolved[key] < 1.0:
            raise ValueError(f"augment['{key}'] must lie in [0, 1), got {resolved[key]}")
    if resolved["filter_hz_per_bin"] <= 0 or resolved["filter_min_hz"] <= 0 or resolved["filter_max_hz"] <= 0:
        raise ValueError("augment: filter_min_hz, filter_max_hz and filter_hz_per_bin must be positive")
    return resolved


def window_frames(augment: Mapping[str, float] | None) -> int:
    """Frames read per training example: ``int(115 / (1 − time_stretch))`` = 164, or 115 without augmentation."""
    return int(EXCERPT_FRAMES / (1 - augment["time_stretch"])) if augment else EXCERPT_FRAMES


class ExcerptSampler:
    """Windows of ``frames`` frames from a list of songs, each labelled by its centre frame.

    All start positions where a window fits are shuffled once per pass and drawn without
    replacement (Schlüter's scheme). Pass ``p`` is the permutation drawn from
    ``(seed, "svds-train", "pass-<p>")``, so batch ``g`` is a function of ``(seed, g)`` alone.
    """

    def __init__(self, songs: Sequence[Song], frames: int, seed: int):
        self.songs = [_checked_song(index, spec, labels) for index, (spec, labels) in enumerate(songs)]
        self.frames = frames
        self.seed = seed
        starts = [
            np.stack([np.full(len(spec) - frames + 1, index), np.arange(len(spec) - frames + 1)], axis=1)
            for index, (spec, _) in enumerate(self.songs)
            if len(spec) >= frames
        ]
        if not starts:
            raise ValueError(f"no training song has the {frames} frames a training window needs")
        self.windows = np.concatenate(starts)
        self._pass_index: int | None = None
        self._order: np.ndarray | None = None

    def _order_of_pass(self, pass_index: int) -> np.ndarray:
        if pass_index != self._pass_index:
            self._order = numpy_rng(self.seed, STAGE, f"pass-{pass_index}").permutation(len(self.windows))
            self._pass_index = pass_index
        return self._order

    def batch(self, batch_index: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Excerpts ``(B, frames, bins)`` float32 and centre labels ``(B,)`` bool of global batch ``batch_index``."""
        positions = np.arange(batch_index * batch_size, (batch_index + 1) * batch_size)
        picks = [self.windows[self._order_of_pass(pos // len(self.windows))[pos % len(self.windows)]] for pos in positions]
        excerpts = np.stack([self.songs[song][0][start : start + self.frames] for song, start in picks])
        labels = np.array([self.songs[song][1][start + self.frames // 2] for song, start in picks], dtype=bool)
        return excerpts.astype(np.float32, copy=False), labels


def _checked_song(index: int, spec: np.ndarray, labels: np.ndarray) -> Song:
    spec, labels = np.asarray(spec), np.asarray(labels)
    if spec.ndim != 2:
        raise ValueError(f"train_specs[{index}]: spectrogram must be (T, bins), got shape {spec.shape}")
    if labels.shape != (len(spec),):
        raise ValueError(f"train_specs[{index}]: labels of shape {labels.shape} do not match {len(spec)} frames")
    return spec, labels.astype(bool)


def stretch_shift(excerpt: np.ndarray, stretch: float, shift: float, keep_frames: int = EXCERPT_FRAMES) -> np.ndarray:
    """Time-stretch and pitch-shift one linear excerpt ``(frames, bins)`` by one affine resampling.

    Output ``(t, b)`` reads input ``(t / stretch + offset, b / shift)`` with a 2nd-order spline,
    where the offset keeps the centre; outside values are 0 and negative overshoots are clipped.

    Returns:
        ``(keep_frames, bins)`` float32.
    """
    offset = (0.5 * (len(excerpt) - keep_frames / stretch), 0.0)
    with warnings.catch_warnings():
        # scipy warns about the (intended) diagonal-matrix semantics of a 1-D matrix argument
        warnings.simplefilter("ignore")
        output = scipy.ndimage.affine_transform(
            excerpt,
            (1.0 / stretch, 1.0 / shift),
            offset=offset,
            output_shape=(keep_frames, excerpt.shape[1]),
            order=SPLINE_ORDER,
            mode="constant",
            cval=0.0,
            prefilter=True,
        )
    return np.maximum(output, 0.0).astype(np.float32, copy=False)


def random_filter_gains(rng: np.random.Generator, batch_size: int, n_bins: int, augment: Mapping[str, float]) -> np.ndarray:
    """Random Gaussian filter responses as linear gains ``(B, n_bins)`` (docs/method.md §1.5 step 2).

    Centre uniform on a log-pitch axis between ``filter_min_hz`` and ``filter_max_hz``, width
    ``5 + 2·N(0,1)`` semitones, strength uniform in ``±filter_db`` dB.
    """
    min_pitch, max_pitch = 12 * np.log2(augment["filter_min_hz"]), 12 * np.log2(augment["filter_max_hz"])
    mean_pitch = min_pitch + rng.random(batch_size) * (max_pitch - min_pitch)
    std_pitch = FILTER_STD_SEMITONES[0] + rng.standard_normal(batch_size) * FILTER_STD_SEMITONES[1]
    mean_bin = 2 ** (mean_pitch / 12) / augment["filter_hz_per_bin"]
    std_bin = (2 ** ((mean_pitch + std_pitch) / 12) - 2 ** (mean_pitch / 12)) / augment["filter_hz_per_bin"]
    strength_db = augment["filter_db"] * 2 * (rng.random(batch_size) - 0.5)
    response_db = strength_db[:, None] * np.exp(-0.5 * np.square((np.arange(n_bins) - mean_bin[:, None]) / std_bin[:, None]))
    return (10 ** (response_db / 20)).astype(np.float32)


def augment_batch(excerpts: np.ndarray, rng: np.random.Generator, augment: Mapping[str, float]) -> np.ndarray:
    """Stretch/shift each excerpt ``(B, frames, bins)`` to 115 frames, then apply a random filter each."""
    factors = 1 + (rng.random((len(excerpts), 2)) - 0.5) * 2 * np.array([augment["time_stretch"], augment["pitch_shift"]])
    stretched = np.stack([stretch_shift(excerpt, stretch, shift) for excerpt, (stretch, shift) in zip(excerpts, factors)])
    return stretched * random_filter_gains(rng, len(excerpts), excerpts.shape[2], augment)[:, None, :]


def training_batch(
    sampler: ExcerptSampler, batch_index: int, batch_size: int, seed: int, augment: Mapping[str, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Global batch ``batch_index``: 115-frame linear excerpts ``(B, 115, bins)`` and labels ``(B,)``."""
    excerpts, labels = sampler.batch(batch_index, batch_size)
    if augment:
        excerpts = augment_batch(excerpts, numpy_rng(seed, STAGE, f"augment-{batch_index}"), augment)
    return excerpts, labels


def _checkpoint_arrays(model: SVDS, optimiser: torch.optim.Optimizer, epoch: int, history: Mapping[str, list]) -> dict[str, Any]:
    arrays: dict[str, Any] = {"epoch": np.int64(epoch)}
    arrays.update({f"model:{key}": value.detach().cpu().numpy() for key, value in model.state_dict().items()})
    for index, state in optimiser.state_dict()["state"].items():
        arrays.update({f"adam:{index}:{name}": torch.as_tensor(value).cpu().numpy() for name, value in state.items()})
    arrays.update({f"history:{name}": np.asarray(values, dtype=np.float64) for name, values in history.items()})
    return arrays


def _restore_checkpoint(arrays: Mapping[str, np.ndarray], model: SVDS, optimiser: torch.optim.Optimizer) -> tuple[int, dict[str, list]]:
    model.load_state_dict({key.split(":", 1)[1]: torch.from_numpy(np.asarray(v)) for key, v in arrays.items() if key.startswith("model:")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        if key.startswith("adam:"):
            _, index, name = key.split(":")
            state.setdefault(int(index), {})[name] = torch.from_numpy(np.asarray(value))
    optimiser.load_state_dict({"state": state, "param_groups": optimiser.state_dict()["param_groups"]})
    history = {key.split(":", 1)[1]: list(value) for key, value in arrays.items() if key.startswith("history:")}
    return int(arrays["epoch"]), history


def _latest_checkpoint(checkpoint: BatchCheckpoint) -> dict[str, np.ndarray] | None:
    # two slots alternate by epoch parity, so a kill while writing one leaves the other intact
    slots = [checkpoint.load(key) for key in sorted(checkpoint.keys()) if key.startswith("slot")]
    return max(slots, key=lambda arrays: int(arrays["epoch"]), default=None)


def _resume(checkpoint: BatchCheckpoint | None, model: SVDS, optimiser: torch.optim.Optimizer) -> tuple[int, dict[str, list]]:
    """(the first epoch to run, the history so far): after the latest saved epoch, or from scratch."""
    saved = _latest_checkpoint(checkpoint) if checkpoint is not None else None
    if saved is None:
        return 0, {"train_loss": [], "lr": [], "batch_loss": []}
    done, history = _restore_checkpoint(saved, model, optimiser)
    return done + 1, history


def _check_schedule(epochs: int, batches_per_epoch: int, batch_size: int) -> None:
    if epochs < 1 or batches_per_epoch < 1:
        raise ValueError(f"train_detector: epochs and batches_per_epoch must be ≥ 1, got {epochs}, {batches_per_epoch}")
    if batch_size < 2:
        raise ValueError(f"train_detector: batch_size must be ≥ 2 (the dense BatchNorm layers see one value per example), got {batch_size}")


def _update(model: SVDS, optimiser: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor, dropout_seed: int,
            device: torch.device) -> float:
    """One Adam update on a batch; its dropout drawn from ``dropout_seed`` without moving the global generators."""
    rng_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices, device_type=device.type), exact_cuda_arithmetic():
        torch.manual_seed(dropout_seed)
        loss = F.binary_cross_entropy_with_logits(model(inputs)[:, 0], targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
    optimiser.step()
    return loss.item()


def train_detector(
    train_specs: Sequence[Song],
    *,
    seed: int,
    epochs: int,
    batches_per_epoch: int,
    batch_size: int = TRAIN_BATCH_SIZE,
    lr: float = TRAIN_LR,
    lr_decay: float = TRAIN_LR_DECAY,
    augment: Mapping[str, float] | None = DEFAULT_AUGMENT,
    checkpoint: BatchCheckpoint | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[SVDS, dict[str, np.ndarray]]:
    """Train a fresh :class:`SVDS` (docs/method.md §1.5).

    Args:
        train_specs: ``(linear spectrogram (T, 513), frame labels bool (T,))`` per training song.
        seed: global seed; initial weights, window order, augmentation and dropout derive from it.
        epochs, batches_per_epoch, batch_size: schedule (paper: 20 × 2000 × 32).
        lr, lr_decay: Adam learning rate of epoch ``e`` is ``lr · lr_decay**e``.
        augment: augmentation settings (see :data:`DEFAULT_AUGMENT`, missing keys take those
            values); ``None`` trains on plain 115-frame windows.
        checkpoint: if given, the state after every epoch is saved there and a rerun resumes from
            the latest saved epoch. The caller removes it once the final model is stored.
        progress: show a tqdm bar over batches.
        device: where to train.

    Returns:
        ``(model in eval mode, history)`` with ``history`` holding ``train_loss`` and ``lr`` per
        epoch and ``batch_loss`` per update.
    """
    _check_schedule(epochs, batches_per_epoch, batch_size)
    augment = resolve_augment(augment)
    device = torch.device(device)
    sampler = ExcerptSampler(train_specs, window_frames(augment), seed)
    filterbank = torch.as_tensor(mel_filterbank(), device=device)
    model = SVDS(generator=torch_generator(seed, STAGE, "init")).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    start_epoch, history = _resume(checkpoint, model, optimiser)
    smoothing_floor, smoothing_scale = TARGET_SMOOTHING
    bar = tqdm(total=epochs * batches_per_epoch, initial=start_epoch * batches_per_epoch, disable=not progress, desc="svds")
    model.train()
    for epoch in range(start_epoch, epochs):
        for group in optimiser.param_groups:
            group["lr"] = lr * lr_decay**epoch
        losses = []
        for batch_index in range(epoch * batches_per_epoch, (epoch + 1) * batches_per_epoch):
            excerpts, labels = training_batch(sampler, batch_index, batch_size, seed, augment)
            inputs = log_mel(torch.from_numpy(excerpts).to(device), filterbank)
            targets = smoothing_floor + smoothing_scale * torch.from_numpy(labels).to(device=device, dtype=torch.float32)
            losses.append(_update(model, optimiser, inputs, targets, item_seed(seed, STAGE, f"dropout-{batch_index}"), device))
            bar.update(1)
        history["train_loss"].append(float(np.mean(losses)))
        history["lr"].append(lr * lr_decay**epoch)
        history["batch_loss"].extend(losses)
        if checkpoint is not None:
            checkpoint.save(f"slot{epoch % 2}", _checkpoint_arrays(model, optimiser, epoch, history))
    bar.close()
    return model.eval(), {name: np.asarray(values, dtype=np.float64) for name, values in history.items()}

