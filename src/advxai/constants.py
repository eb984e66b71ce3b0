"""Model facts, audio signal facts and the paper's default settings, each defined once.

Plain values without heavy imports: the workflow reads them while Snakemake parses it, and every
library module that needs one imports it from here. ``presets/paper.yaml`` and the config schema's
defaults repeat the paper settings in YAML; tests/test_config.py checks that they agree with this
module.
"""

from __future__ import annotations

from typing import NamedTuple

# ------------------------------------------------------------------------------ image models


class ModelSizes(NamedTuple):
    """Preprocessing of an image model: resize the shorter side to ``resize``, centre-crop ``crop``."""

    resize: int
    crop: int


BUNDLED_MODELS: tuple[str, ...] = ("efficientnet_lite0",)
"""Architectures that ship with advxai's dependencies rather than with torchvision."""

DEFAULT_MODEL_SIZES = ModelSizes(resize=256, crop=224)
"""docs/method.md §5.2: every paper model but Inception v3."""

MODEL_SIZES: dict[str, ModelSizes] = {"inception_v3": ModelSizes(resize=299, crop=299)}
"""Architectures with their own sizes; docs/method.md §5.2 keeps Resize(299) for Inception v3, not
torchvision's 342."""


def architecture_sizes(architecture: str) -> ModelSizes:
    """The paper's resize and crop for ``architecture`` (any other name: 256 / 224)."""
    return MODEL_SIZES.get(architecture, DEFAULT_MODEL_SIZES)


ARITHMETICS: tuple[str, ...] = ("exact", "tf32", "bf16")
"""``image.arithmetic``: how the image models' passes compute (docs/exactness.md, "Fast arithmetic").
``exact`` is float32 with repeatable kernels; the others trade exactness for speed."""


def check_arithmetic(arithmetic: str) -> str:
    """``arithmetic`` if it is one of :data:`ARITHMETICS`, else an error naming the config key."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"config key 'image.arithmetic' is {arithmetic!r}; valid: {list(ARITHMETICS)}")
    return arithmetic


# ------------------------------------------------------------------------------ audio signal

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""The splits of a Jamendo-style corpus, in the order its file lists are read."""

SAMPLE_RATE = 22050
"""Hz; audio is decoded (and the synthetic corpus written) at this rate."""

FPS = 70
"""Spectrogram frames per second."""

HOP = SAMPLE_RATE // FPS
"""315 samples between frames: exactly 70 frames per second."""

N_FFT = 1024
"""STFT frame length in samples (513 frequency bins)."""

N_MELS = 80
"""Mel bands of the detector's input."""

EXCERPT_FRAMES = 115
"""Frames of one detector excerpt (1.6 s), the window that scores its centre frame."""

# ------------------------------------------------------------------ paper settings: image domain

PGD_STEPS = 100
"""Targeted PGD steps (paper Table 4)."""

RECT_GRID = 4
"""Rectangles per side of the rectangle segmentation (docs/method.md §6)."""

SLIC_SEGMENTS = 16
"""SLIC's requested segment count (docs/method.md §6)."""

SLIC_COMPACTNESS = 10.0
"""SLIC's compactness (docs/method.md §6)."""

SLIC_SIGMA = 1.0
"""SLIC's Gaussian smoothing width (docs/method.md §6)."""

LABELFLIP_K = 3
"""The k of the label-flip tables (paper Tables 2, 3, 7, 8)."""

IMAGE_LIME_SAMPLES = 512
"""LIME perturbed samples per image."""

LIME_KERNEL_WIDTH = 0.25
"""LIME kernel width, both domains."""

NOISE_SAMPLES = 25
"""NoiseTunnel copies J per input (SG, SG², VG), both domains."""

NOISE_STD = 1.0
"""NoiseTunnel noise standard deviation, absolute (captum's default), both domains."""

IG_STEPS = 50
"""Integrated Gradients Gauss–Legendre points, both domains."""

# ------------------------------------------------------------------ paper settings: audio domain

AUDIO_LIME_SAMPLES = 8192
"""LIME perturbed samples per audio excerpt."""

ATTACK_ALPHA = 15.0
"""α of the spectrogram attack's loss ‖δ‖² + α · BCE (paper Eq. 8, Table 5): it weights the classification loss."""

ATTACK_EPSILON = 0.1
"""Radius of the spectrogram attack's perturbation (paper Table 5)."""

ATTACK_LR = 5e-4
"""Adam learning rate of the spectrogram attack (paper Table 5)."""

ATTACK_MAX_ITER = 1000
"""Update steps of the spectrogram attack (paper Table 5)."""

MEDIAN_FILTER = 56
"""Frames of the median filter over a detector's predictions."""

# Detector training (docs/method.md §1.5): 20 epochs of 2000 updates of 32 excerpts, Adam at
# 0.001 decayed by 0.85 per epoch.
TRAIN_EPOCHS = 20
TRAIN_BATCHES_PER_EPOCH = 2000
TRAIN_BATCH_SIZE = 32
TRAIN_LR = 1e-3
TRAIN_LR_DECAY = 0.85
