"""Readers of the audio stages' files: features, attacks, excerpts and the detector's threshold.

No torch: the report's excerpt figure reads excerpts with these, and a report job that
imported torch would pay seconds of start-up for it (benchmarks/job_startup.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..names import AUDIO_DIRECTIONS
from ..store import read_h5


def read_songs(path: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, spectrogram, frame labels) of every song in a features file."""
    data = read_h5(path)
    bounds = zip(data["offsets"][:-1], data["offsets"][1:])
    return [(name, data["spec"][a:b], data["labels"][a:b]) for name, (a, b) in zip(data["names"], bounds)]


def detector_threshold(evaluation_csv: str) -> float:
    """The seed's validation-tuned threshold (docs/decisions.md, decision 16)."""
    return float(pd.read_csv(evaluation_csv)["threshold"].iloc[0])


def read_attacks(test: str, adversaries: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, clean spectrogram, padded adversarial spectrogram, flipped frames) per test song."""
    songs = read_songs(test)
    adv = read_h5(adversaries)
    out = []
    for index, (name, spec, _) in enumerate(songs):
        if adv["names"][index] != name:
            raise ValueError(f"{adversaries} does not hold the songs of {test} in order; rerun its rule")
        a, b = adv["offsets"][index : index + 2]
        pa, pb = adv["padded_offsets"][index : index + 2]
        out.append((name, spec, adv["adversarial_padded"][pa:pb], adv["flipped"][a:b]))
    return out


def read_excerpts(path: str) -> dict[int, dict[str, np.ndarray]]:
    """Excerpts per attack target (1: no sing → sing, 0: sing → no sing)."""
    data = read_h5(path)
    return {target: {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith(name + "/")}
            for target, name in AUDIO_DIRECTIONS.items()}
