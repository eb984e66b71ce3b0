"""Segmentations: rectangle grids, SLIC with the paper's arguments, the audio time-frequency grid."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.segmentation
import torch

from advxai.data.model_inputs import normalize
from advxai.segments import audio_grid, n_segments, rectangles, slic


def test_rectangles_224_are_56_pixel_squares():
    ids = rectangles(224, 224)
    assert ids.shape == (224, 224)
    assert ids[0, 0] == 0 and ids[0, 223] == 3 and ids[223, 0] == 12 and ids[223, 223] == 15
    assert ids[55, 55] == 0 and ids[56, 55] == 4 and ids[55, 56] == 1 and ids[100, 170] == 4 * 1 + 3
    np.testing.assert_array_equal(np.bincount(ids.ravel()), np.full(16, 56 * 56))


def test_rectangles_299_leftovers_join_last_row_and_column():
    ids = rectangles(299, 299)
    assert ids[73, 73] == 0 and ids[74, 74] == 5 and ids[221, 221] == 10 and ids[222, 222] == 15
    assert ids[298, 298] == 15 and ids[0, 298] == 3 and ids[298, 0] == 12
    sizes = np.bincount(ids.ravel()).reshape(4, 4)
    assert sizes[0, 0] == 74 * 74 and sizes[0, 3] == 74 * 77 and sizes[3, 0] == 77 * 74 and sizes[3, 3] == 77 * 77


def test_rectangles_use_each_axis_own_side():
    ids = rectangles(8, 12, grid=2)
    expected = np.repeat(np.repeat(np.array([[0, 1], [2, 3]]), 4, axis=0), 6, axis=1)
    np.testing.assert_array_equal(ids, expected)


def quadrant_image(size: int = 48) -> np.ndarray:
    """Normalised (3, H, W) image of four flat colour quadrants."""
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.95, 0.9, 0.1]])
    half = size // 2
    pixels = torch.empty(3, size, size)
    for q, (rows, cols) in enumerate([(slice(0, half), slice(0, half)), (slice(0, half), slice(half, size)),
                                      (slice(half, size), slice(0, half)), (slice(half, size), slice(half, size))]):
        pixels[:, rows, cols] = colours[q].view(3, 1, 1)
    return normalize(pixels).numpy().astype(np.float64)


def test_slic_segments_respect_flat_quadrants():
    image = quadrant_image()
    labels = slic(image)
    half = image.shape[1] // 2
    quadrant = 2 * (np.arange(48)[:, None] >= half) + (np.arange(48)[None, :] >= half)
    n = n_segments(labels)
    assert 4 <= n <= 16
    np.testing.assert_array_equal(np.unique(labels), np.arange(n))  # contiguous from 0
    # Away from the edges, which sigma=1 smoothing blurs into a thin band, no superpixel crosses
    # a colour edge.
    away = (np.abs(np.arange(48) - half + 0.5) > 3)[:, None] & (np.abs(np.arange(48) - half + 0.5) > 3)[None, :]
    for label in range(n):
        assert np.unique(quadrant[away & (labels == label)]).size <= 1


def test_slic_equals_skimage_with_paper_arguments():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(3, 40, 40)), axis=1), axis=2)
    image = (smooth - smooth.mean()) / smooth.std() * 1.5  # normalised-space range, beyond [0, 1]
    reference = skimage.segmentation.slic(
        image, n_segments=16, compactness=10.0, sigma=1.0, channel_axis=0, start_label=0,
        max_num_iter=10, enforce_connectivity=True, min_size_factor=0.5, max_size_factor=3, slic_zero=False,
    )
    _, expected = np.unique(reference, return_inverse=True)
    np.testing.assert_array_equal(slic(image), expected.reshape(reference.shape))


def test_slic_rejects_channel_last_images():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        slic(np.zeros((40, 40, 3)))


def test_audio_grid_known_ids():
    ids = audio_grid()
    assert ids.shape == (115, 80)
    assert ids[0, 0] == 0 and ids[0, 79] == 3 and ids[114, 0] == 16 and ids[114, 79] == 19
    assert ids[0, 19] == 0 and ids[0, 20] == 1 and ids[0, 40] == 2 and ids[0, 60] == 3
    block_of_frame = ids[:, 0] // 4
    starts = np.flatnonzero(np.diff(block_of_frame)) + 1
    np.testing.assert_array_equal(starts, [23, 46, 69, 92])
    # equals veracity's hard-coded sample boundaries floored to frames
    veracity_starts = np.array([0, 7246, 14492, 21738, 28984]) // 315
    np.testing.assert_array_equal(np.r_[0, starts], veracity_starts)
    np.testing.assert_array_equal(np.bincount(ids.ravel()), np.full(20, 23 * 20))


def test_n_segments():
    mask = rectangles(16, 16, grid=2)
    assert n_segments(mask) == 4
    with pytest.raises(ValueError):
        n_segments(np.array([[-1, 0]]))
