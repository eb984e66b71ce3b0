"""Input features of the singing-voice detector (docs/method.md §1.2).

The detector reads the linear-magnitude STFT (``T × 513``); the mel projection and the
logarithm are parameter-free first "layers" (:func:`log_mel`), so gradients reach the linear
spectrogram that the C&W attack perturbs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..constants import HOP, N_FFT, N_MELS, SAMPLE_RATE

F_MIN = 27.5
F_MAX = 8000.0
LOG_FLOOR = 1e-7


def hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """The mel scale of the filterbank: ``1127 · ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def mel_peak_bins(
    n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_mels + 2`` triangle corners of the bank: their frequencies (Hz) and FFT bins.

    Returns:
        ``(peaks_hz, peaks_bin)``; ``peaks_bin[i]`` is the first FFT bin whose frequency is
        ``≥ peaks_hz[i]``.
    """
    mel_min, mel_max = hz_to_mel(f_min), hz_to_mel(f_max)
    peaks_hz = mel_to_hz(mel_min + np.arange(n_mels + 2) * (mel_max - mel_min) / (n_mels + 1))
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    return peaks_hz, np.searchsorted(bin_hz, peaks_hz)


def mel_filterbank(
    n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX
) -> np.ndarray:
    """The yaafe-style "mel_orig" filterbank of Schlüter's detector (docs/method.md §1.2).

    Filter ``b`` is a triangle over the corners ``b, b+1, b+2`` of :func:`mel_peak_bins`, with
    the yaafe slopes (divided by bin counts, not Hz) and normalised to sum 1.

    Returns:
        float32 matrix ``(n_fft // 2 + 1, n_mels)``, applied as ``spectrum @ bank``.
    """
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel_filterbank: need 0 ≤ f_min < f_max ≤ Nyquist, got f_min={f_min}, f_max={f_max}")
    peaks_hz, peaks_bin = mel_peak_bins(n_fft, sample_rate, n_mels, f_min, f_max)
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    bank = np.zeros((n_fft // 2 + 1, n_mels))
    for band in range(n_mels):
        left_hz, _, right_hz = peaks_hz[band : band + 3]
        left_bin, top_bin, right_bin = peaks_bin[band : band + 3]
        if right_bin <= left_bin:
            raise ValueError(f"mel_filterbank: band {band} covers no FFT bin; use fewer bands or a longer n_fft")
        bank[left_bin:top_bin, band] = (bin_hz[left_bin:top_bin] - left_hz) / (top_bin - left_bin)
        bank[top_bin:right_bin, band] = (right_hz - bin_hz[top_bin:right_bin]) / (right_bin - top_bin)
        bank[:, band] /= bank[:, band].sum()
    return bank.astype(np.float32)


def stft_magnitude(waveform: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Linear-magnitude STFT as the detector reads it (torchaudio ``Spectrogram(power=1)``).

    Periodic Hann window of ``n_fft`` samples, ``center=True`` with reflect padding.

    Args:
        waveform: mono float samples, 1-D, longer than ``n_fft // 2``.

    Returns:
        float32 array ``(1 + len // hop, n_fft // 2 + 1)`` (time × bins).
    """
    samples = np.asarray(waveform, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"stft_magnitude: waveform must be 1-D, got shape {samples.shape}")
    if len(samples) <= n_fft // 2:
        raise ValueError(f"stft_magnitude: waveform of {len(samples)} samples is too short for reflect padding by {n_fft // 2}")
    spectrum = torch.stft(
        torch.from_numpy(samples),
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=torch.hann_window(n_fft, periodic=True),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return spectrum.abs().T.contiguous().numpy()


def log_mel(spec_linear: torch.Tensor, filterbank: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``log(max(spec @ bank, 1e-7))``: the parameter-free, differentiable input layers.

    Args:
        spec_linear: linear magnitudes ``(..., T, bins)``.
        filterbank: ``(bins, n_mels)`` from :func:`mel_filterbank`.

    Returns:
        log-mel ``(..., T, n_mels)`` in the dtype and on the device of ``spec_linear``.
    """
    bank = torch.as_tensor(filterbank, dtype=spec_linear.dtype, device=spec_linear.device)
    if spec_linear.shape[-1] != bank.shape[0]:
        raise ValueError(f"log_mel: spectrogram has {spec_linear.shape[-1]} bins, filterbank expects {bank.shape[0]}")
    return torch.log(torch.clamp(spec_linear @ bank, min=LOG_FLOOR))
