"""Odd but legal inputs: image files as real photo folders hold them, audio as real corpora hold it.

Each kind either loads to the pixels (or samples) it stands for, checked against a known answer,
or fails with one error that names the file.
"""

from __future__ import annotations

import numpy as np
import pytest
from fabricate import odd_images

from advxai.data.image_items import ImageItem
from advxai.data.images import load_image, preprocess


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return odd_images(tmp_path_factory.mktemp("odd"))


def loaded(path) -> np.ndarray:
    image = load_image(ImageItem(id=path.stem, source=str(path), label=-1))
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("kind", ["grey", "rgba", "palette", "grey16", "small", "wide", "tall", "exif"])
def test_odd_image_files_load_to_the_pixels_they_show(odd, kind):
    """Grey, RGBA (alpha dropped as torchvision's loader drops it), palette, 16-bit grey (scaled,
    not clipped at 255), tiny, very wide or tall, and EXIF-rotated (shown upright)."""
    path, expected = odd[kind]
    np.testing.assert_array_equal(loaded(path), expected)


def test_a_cmyk_jpeg_loads_as_rgb(odd):
    path, _ = odd["cmyk"]
    rgb_path, rgb = odd["rgba"][0], odd["rgba"][1]
    pixels = loaded(path)
    assert pixels.shape == rgb.shape and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - rgb).mean() < 20  # lossy JPEG of the same random pixels; not another picture
    assert rgb_path.exists()


@pytest.mark.parametrize("kind", ["grey", "rgba", "palette", "grey16", "cmyk", "small", "wide", "tall", "exif"])
def test_odd_image_files_preprocess_to_the_crop(odd, kind):
    path, _ = odd[kind]
    image = load_image(ImageItem(id=kind, source=str(path), label=-1))
    crop = preprocess(image, 72, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8


def test_a_very_wide_or_tall_image_is_cropped_in_its_middle(odd):
    for kind in ("wide", "tall"):
        crop = preprocess(load_image(ImageItem(id=kind, source=str(odd[kind][0]), label=-1)), 72, 64)
        assert (crop == np.array([255, 0, 0], dtype=np.uint8)).all(), kind


def test_an_image_smaller_than_the_crop_is_scaled_up(odd):
    """Resize makes the shorter side 72 px before the 64 px crop, as torchvision's Resize does."""
    from PIL import Image

    flat = Image.new("RGB", (5, 3), (10, 200, 30))
    np.testing.assert_array_equal(preprocess(flat, 72, 64), np.broadcast_to(np.array([10, 200, 30], np.uint8), (64, 64, 3)))
    assert preprocess(load_image(ImageItem(id="small", source=str(odd["small"][0]), label=-1)), 72, 64).shape == (64, 64, 3)
