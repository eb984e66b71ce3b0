"""A singing-voice detector stand-in for the attack and excerpt tests, shaped like SVDS (115-frame windows)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advxai.svds.features import log_mel

CONTEXT = 57
BAND = 10
LEVEL = float(np.log(0.03))  # "sing" iff the centre frame's band-10 mel magnitude exceeds 0.03
QUIET, LOUD = 0.01, 0.05  # linear magnitudes of the fabricated frames


class CentreBandDetector(nn.Module):
    """Logit of window ``[j, j+115)`` = scale · (log-mel of its centre frame in one band − level)."""

    def __init__(self, scale: float = 4.0, level: float = LEVEL):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.level = level

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.scale * (logmel[:, CONTEXT : logmel.shape[1] - CONTEXT, BAND] - self.level)


def flat_song(levels: np.ndarray) -> np.ndarray:
    """A linear spectrogram whose frame t has magnitude levels[t] in every bin (so in every mel band)."""
    return np.repeat(np.asarray(levels, np.float32)[:, None], 513, axis=1)


def level_of(magnitude: float, bank: np.ndarray) -> float:
    """The band's log-mel of a frame of ``magnitude`` in every bin: a detector at this level says P = 0.5 there."""
    frame = torch.full((1, bank.shape[0]), magnitude, dtype=torch.float32)
    return float(log_mel(frame, torch.from_numpy(bank))[0, BAND])
