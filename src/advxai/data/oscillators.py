"""Signal primitives of the synthetic corpus (:mod:`advxai.data.synthetic_audio`): pitch,
wavetable and band-limited oscillators, and note envelopes."""

from __future__ import annotations

import numpy as np

WAVETABLE_SIZE = 4096


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz of a (fractional) MIDI pitch."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def wavetable(amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period of ``Σ_k amplitudes[k] · sin(2π (k+1) x + phases[k])``, peak-normalised."""
    x = np.arange(WAVETABLE_SIZE) / WAVETABLE_SIZE
    table = sum(a * np.sin(2 * np.pi * (k + 1) * x + p) for k, (a, p) in enumerate(zip(amplitudes, phases)))
    return table / np.max(np.abs(table))


def read_wavetable(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Linearly interpolated wavetable lookup at phase ``cycles`` (in periods)."""
    position = (cycles % 1.0) * WAVETABLE_SIZE
    index = position.astype(np.int64)
    fraction = position - index
    return table[index] * (1 - fraction) + table[(index + 1) % WAVETABLE_SIZE] * fraction


def polyblep_sawtooth(cycles: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth at phase ``cycles`` advancing ``increment`` periods per sample."""
    phase = cycles % 1.0
    saw = 2 * phase - 1
    rising = phase < increment
    t = phase[rising] / increment[rising]
    saw[rising] -= 2 * t - t * t - 1
    falling = phase > 1 - increment
    t = (phase[falling] - 1) / increment[falling]
    saw[falling] -= t * t + 2 * t + 1
    return saw


def attack_release(n_samples: int, attack: int, release: int) -> np.ndarray:
    """A linear fade-in of ``attack`` and fade-out of ``release`` samples over ``n_samples``."""
    envelope = np.ones(n_samples)
    attack, release = min(attack, n_samples), min(release, n_samples)
    envelope[:attack] *= np.linspace(0, 1, attack, endpoint=False)
    if release:
        envelope[n_samples - release :] *= np.linspace(1, 0, release)
    return envelope
