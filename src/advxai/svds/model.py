"""The singing-voice detector network (docs/method.md §1.4), its whole-song inference and storage.

:class:`SVDS` is Schlüter & Lehner's ismir2015 CNN with a zero-mean first convolution, written
fully convolutionally in time as in veracity: pools stride 1 in time and later layers dilate by
3 and 9 instead, and the dense layers are convolutions. On one 115-frame excerpt it equals the
excerpt-wise network; on a longer input it scores every 115-frame window in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import EXCERPT_FRAMES, N_MELS
from ..store import read_h5, write_h5
from .features import log_mel

CONTEXT = EXCERPT_FRAMES // 2  # 57 frames on each side of the scored frame
BN_EPS = 1e-4
LEAK = 0.01
STAGE = "svds-train"


class ZeroMeanConv2d(nn.Conv2d):
    """A bias-free convolution whose effective kernel has zero mean over its spatial taps.

    The mean over ``(kh, kw)`` is subtracted per ``(out, in)`` pair at every forward pass, so
    adding a constant to the input (a gain change in log magnitude) leaves the output unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], **kwargs: Any):
        if kwargs.pop("bias", False):
            raise ValueError("ZeroMeanConv2d has no bias: the zero-mean kernel would not be offset-invariant with one")
        super().__init__(in_channels, out_channels, kernel_size, bias=False, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight - self.weight.mean(dim=(2, 3), keepdim=True)
        return self._conv_forward(x, kernel, None)


class SVDS(nn.Module):
    """Singing-voice detector on log-mel input ``(B, T, 80)``, ``T ≥ 115``.

    Returns per-frame logits ``(B, T − 114)``: output ``j`` scores the window ``[j, j + 115)``,
    i.e. P(sing) of its centre frame ``j + 57`` after a sigmoid. A single excerpt gives ``(B, 1)``.

    Parameter names follow veracity's ``SingingVoiceDetector`` (minus its unused ``conv1.bias``).

    Args:
        n_mels: mel bands of the input (the dense layer fixes it to 80).
        dropout: dropout probability before each dense layer.
        generator: draws the orthogonal initial weights (global torch RNG if ``None``); biases
            start at zero.
    """

    def __init__(self, n_mels: int = N_MELS, dropout: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        if n_mels != N_MELS:
            raise ValueError(f"SVDS: the dense layer is sized for {N_MELS} mel bands, got n_mels={n_mels}")
        self.freq_norm = nn.BatchNorm1d(n_mels, eps=BN_EPS, momentum=0.1, affine=False)
        self.conv1 = ZeroMeanConv2d(1, 64, 3)
        self.bn1 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.conv2 = nn.Conv2d(64, 32, 3)
        self.bn2 = nn.BatchNorm2d(32, eps=BN_EPS)
        # after the first pool (stride 1 in time) neighbouring excerpt-form frames are 3 apart
        self.conv3 = nn.Conv2d(32, 128, 3, dilation=(3, 1))
        self.bn3 = nn.BatchNorm2d(128, eps=BN_EPS)
        self.conv4 = nn.Conv2d(128, 64, 3, dilation=(3, 1))
        self.bn4 = nn.BatchNorm2d(64, eps=BN_EPS)
        # dense 256 over the 11 × 7 map of the second pool, whose frames are 9 apart
        self.fc1 = nn.Conv2d(64, 256, (11, 7), dilation=(9, 1))
        self.bn_d1 = nn.BatchNorm2d(256, eps=BN_EPS)
        self.fc2 = nn.Conv2d(256, 64, 1)
        self.bn_d2 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.fc3 = nn.Conv2d(64, 1, 1)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.fc1, self.fc2, self.fc3):
            nn.init.orthogonal_(layer.weight, gain=1.0, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)  # Lasagne's default, and it keeps the init a function of generator

    def forward(self, log_mel_input: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T − 114)`` for log-mel input ``(B, T, 80)``."""
        if log_mel_input.ndim != 3 or log_mel_input.shape[-1] != N_MELS or log_mel_input.shape[1] < EXCERPT_FRAMES:
            raise ValueError(f"SVDS expects log-mel input (B, T ≥ {EXCERPT_FRAMES}, {N_MELS}), got {tuple(log_mel_input.shape)}")
        # normalise each mel band over (batch, time)
        x = self.freq_norm(log_mel_input.transpose(1, 2)).transpose(1, 2).unsqueeze(1)
        x = F.leaky_relu(self.bn1(self.conv1(x)), LEAK)
        x = F.leaky_relu(self.bn2(self.conv2(x)), LEAK)
        x = F.max_pool2d(x, kernel_size=3, stride=(1, 3))
        x = F.leaky_relu(self.bn3(self.conv3(x)), LEAK)
        x = F.leaky_relu(self.bn4(self.conv4(x)), LEAK)
        x = F.max_pool2d(x, kernel_size=3, stride=(1, 3), dilation=(3, 1))
        x = F.leaky_relu(self.bn_d1(self.fc1(self.dropout(x))), LEAK)
        x = F.leaky_relu(self.bn_d2(self.fc2(self.dropout(x))), LEAK)
        return self.fc3(self.dropout(x))[:, 0, :, 0]


def pad_song(spec_linear: torch.Tensor) -> torch.Tensor:
    """Pad a linear spectrogram ``(T, bins)`` with 57 zero frames at both ends (docs/method.md §1.3)."""
    return F.pad(spec_linear, (0, 0, CONTEXT, CONTEXT))


@torch.no_grad()
def predict_song(
    model: SVDS, spec_linear: np.ndarray | torch.Tensor, filterbank: np.ndarray | torch.Tensor, batch_frames: int = 4096
) -> np.ndarray:
    """P(sing) of every frame of a song, in eval mode.

    The song is padded with 57 zero frames per side (→ ``log(1e-7)`` after the log-mel), and
    scored in chunks of ``batch_frames`` output frames that overlap by the 114 frames of context,
    which gives the same result as one pass over the whole song with bounded memory.

    Args:
        model: the detector (its training/eval mode is restored afterwards).
        spec_linear: linear-magnitude STFT ``(T, bins)`` of the unpadded song.
        filterbank: mel filterbank ``(bins, 80)``.
        batch_frames: frames scored per forward pass.

    Returns:
        float32 array ``(T,)`` of probabilities.
    """
    if batch_frames < 1:
        raise ValueError(f"predict_song: batch_frames must be ≥ 1, got {batch_frames}")
    device = next(model.parameters()).device
    spec = torch.as_tensor(spec_linear, dtype=torch.float32, device=device)
    if spec.ndim != 2:
        raise ValueError(f"predict_song: expected a (T, bins) spectrogram, got shape {tuple(spec.shape)}")
    features = log_mel(pad_song(spec), filterbank)
    was_training = model.training
    model.eval()
    try:
        chunks = [
            torch.sigmoid(model(features[start : start + batch_frames + 2 * CONTEXT].unsqueeze(0))[0])
            for start in range(0, spec.shape[0], batch_frames)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks).cpu().numpy()


def save_detector(
    path: str | os.PathLike,
    model: SVDS,
    *,
    params: Mapping[str, Any],
    seeds: Mapping[str, Any],
    history: Mapping[str, np.ndarray],
) -> None:
    """Write the detector's state (``state/<key>``) and training curve (``history/<name>``) to HDF5."""
    arrays: dict[str, np.ndarray] = {f"state/{key}": value.detach().cpu().numpy() for key, value in model.state_dict().items()}
    arrays.update({f"history/{name}": np.asarray(values) for name, values in history.items()})
    write_h5(path, arrays, stage=STAGE, params=params, seeds=seeds)


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> SVDS:
    """Rebuild an :class:`SVDS` from a file of :func:`save_detector`, in eval mode.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: its state keys or shapes do not match the network.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detector file not found: {path}")
    with h5py.File(path, "r") as handle:
        if "state" not in handle:
            raise ValueError(f"{path}: no 'state' group; not a detector file written by save_detector")
        stored = set(handle["state"].keys())
    model = SVDS()
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - stored), sorted(stored - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: detector state does not match the SVDS network (missing: {missing}, unexpected: {extra})")
    arrays = read_h5(path, [f"state/{key}" for key in expected])
    state = {}
    for key, reference in expected.items():
        value = torch.from_numpy(np.asarray(arrays[f"state/{key}"]))
        if value.shape != reference.shape:
            raise ValueError(f"{path}: state/{key} has shape {tuple(value.shape)}, the network needs {tuple(reference.shape)}")
        state[key] = value.to(reference.dtype)
    model.load_state_dict(state)
    return model.to(device).eval()
