"""Segmentations: the interpretable features of both domains.

Images (docs/method.md §6): a grid of rectangles, or SLIC superpixels of the normalised adversary.
Audio (docs/method.md §3): audioLIME's time-frequency grid over a log-mel excerpt.
Every segmentation is an integer id map with contiguous ids ``0..n-1``.
"""

from __future__ import annotations

import numpy as np

from .constants import EXCERPT_FRAMES, HOP, N_MELS, RECT_GRID, SLIC_COMPACTNESS, SLIC_SEGMENTS, SLIC_SIGMA

ABSENT = -1e5
"""Score of a segment id that an item does not have (docs/method.md §7).

Segment-score arrays are ``(N, S)`` with ``S`` the widest item's count; the ids an item lacks
carry ``ABSENT`` so that they rank last and are never selected while real segments remain.
"""


def rectangles(height: int, width: int, grid: int = RECT_GRID) -> np.ndarray:
    """A ``grid`` x ``grid`` partition of an image into rectangles, ids row-major.

    Pixel ``(i, j)`` gets id ``grid * min(i // s_h, grid - 1) + min(j // s_w, grid - 1)`` with
    ``s_h = height // grid`` and ``s_w = width // grid``: leftover rows and columns join the last
    row and column (224 px: 56-px squares; 299 px: 74 px, the last 77 px).

    Returns:
        np.ndarray: ``int64`` ids of shape ``(height, width)``.
    """
    if grid < 1 or height < grid or width < grid:
        raise ValueError(
            f"a {grid}x{grid} grid needs grid >= 1 and an image at least that large, got {height}x{width}"
        )
    rows = np.minimum(np.arange(height) // (height // grid), grid - 1)
    cols = np.minimum(np.arange(width) // (width // grid), grid - 1)
    return (grid * rows[:, None] + cols[None, :]).astype(np.int64)


def slic(
    image_normalised: np.ndarray,
    n_segments: int = SLIC_SEGMENTS,
    compactness: float = SLIC_COMPACTNESS,
    sigma: float = SLIC_SIGMA,
    max_num_iter: int = 10,
) -> np.ndarray:
    """SLIC superpixels of one channel-first image, as the authors computed them.

    The caller passes the adversary in normalised space (docs/method.md §6; docs/decisions.md, decision 12): values lie
    outside ``[0, 1]`` and rgb2lab is still applied (``convert2lab`` default for 3 channels).
    The remaining arguments are skimage 0.19's defaults, pinned so that newer skimage versions
    cannot change them: connectivity enforced, size factors 0.5 and 3, no SLIC-zero.

    skimage may skip ids (e.g. after enforcing connectivity), so the labels are renumbered in
    their original order to ``0..n-1``; they are unchanged where already contiguous.

    Args:
        image_normalised (np.ndarray): float image of shape ``(3, H, W)``.

    Returns:
        np.ndarray: ``int64`` ids of shape ``(H, W)``, contiguous from 0.
    """
    image_normalised = np.asarray(image_normalised)
    if image_normalised.ndim != 3 or image_normalised.shape[0] != 3:
        raise ValueError(f"slic needs a channel-first (3, H, W) image, got shape {image_normalised.shape}")
    import skimage.segmentation  # only SLIC jobs need scikit-image

    labels = skimage.segmentation.slic(
        image_normalised,
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        max_num_iter=max_num_iter,
        channel_axis=0,
        start_label=0,
        enforce_connectivity=True,
        min_size_factor=0.5,
        max_size_factor=3,
        slic_zero=False,
    )
    _, contiguous = np.unique(labels, return_inverse=True)
    return contiguous.reshape(labels.shape).astype(np.int64)


def audio_grid(
    n_frames: int = EXCERPT_FRAMES, n_mels: int = N_MELS, n_bands: int = 4, n_blocks: int = 5, hop: int = HOP
) -> np.ndarray:
    """audioLIME's time-frequency segments of a log-mel excerpt (docs/method.md §3).

    Band ``f`` covers mel bins ``[f * n_mels / n_bands, (f + 1) * n_mels / n_bands)`` (``f = 0``
    lowest). Time blocks come from sample boundaries ``t * L`` floored to frames by ``hop``; the
    last block runs to ``n_frames``. The authors hard-coded ``L = 7246`` ("5 equal segments" of
    the excerpt's ``115 * 315 = 36225`` samples, boundaries 0, 7246, ..., 36230): that is the
    idiom ``n_samples // n_blocks + 1``, used here, which gives blocks of frames ``[23t, 23t+23)``.
    Segment id ``s = n_bands * t + f`` (time-major).

    Returns:
        np.ndarray: ``int64`` ids of shape ``(n_frames, n_mels)`` (time x mel, the excerpt layout).
    """
    if n_bands < 1 or n_mels % n_bands:
        raise ValueError(f"n_mels={n_mels} must split into n_bands={n_bands} equal bands")
    if n_blocks < 1 or hop < 1:
        raise ValueError(f"n_blocks={n_blocks} and hop={hop} must be positive")
    block_samples = n_frames * hop // n_blocks + 1
    block_starts = np.arange(n_blocks) * block_samples // hop
    if np.any(np.diff(block_starts) <= 0) or block_starts[-1] >= n_frames:
        raise ValueError(f"n_frames={n_frames} cannot be split into n_blocks={n_blocks} non-empty time blocks")
    block_of_frame = np.searchsorted(block_starts, np.arange(n_frames), side="right") - 1
    band_of_bin = np.arange(n_mels) // (n_mels // n_bands)
    return (n_bands * block_of_frame[:, None] + band_of_bin[None, :]).astype(np.int64)


def n_segments(mask: np.ndarray) -> int:
    """Number of segment ids of a mask with contiguous ids: ``max id + 1``."""
    mask = np.asarray(mask)
    if mask.size == 0 or not np.issubdtype(mask.dtype, np.integer) or mask.min() < 0:
        raise ValueError(f"a segment mask must be a non-empty array of ids >= 0, got {mask.dtype} {mask.shape}")
    return int(mask.max()) + 1

