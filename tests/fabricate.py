"""Fabricated data sets for the workflow tests: an ImageNet validation tree in the folder-per-wnid layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

N_CLASSES = 1000
IMAGE_CLASSES = (3, 998)  # classes that hold two images each; the others are empty


def imagenet_tree(root: Path, image_classes: tuple[int, ...] = IMAGE_CLASSES, per_class: int = 2) -> Path:
    """1000 wnid folders (so class indices are ImageNet's), ``per_class`` random JPEGs in ``image_classes``."""
    rng = np.random.default_rng(0)
    for index in range(N_CLASSES):
        folder = root / f"n{index:08d}"
        folder.mkdir(parents=True)
        if index in image_classes:
            for j in range(per_class):
                write_random_jpeg(folder / f"ILSVRC2012_val_{index:05d}{j}.JPEG", rng)
    return root


def write_random_jpeg(path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(path)


# ------------------------------------------------------------------------------------------------
# Odd but legal image files, as real photo folders hold them (tests/test_odd_inputs.py)
# ------------------------------------------------------------------------------------------------
EXIF_ORIENTATION = 0x0112
ROTATED_90_CLOCKWISE = 6  # EXIF: display the stored pixels turned 90° clockwise


def odd_images(folder: Path, rng: np.random.Generator | None = None) -> dict[str, tuple[Path, np.ndarray]]:
    """One file of each odd kind, and the upright 8-bit RGB pixels a loader should give for it
    (``None`` where only the shape is known: a CMYK JPEG decodes lossily)."""
    rng = rng if rng is not None else np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    files: dict[str, tuple[Path, np.ndarray | None]] = {}

    def write(name: str, image: Image.Image, expected: np.ndarray | None, **options) -> None:
        path = folder / name
        image.save(path, **options)
        files[name.split(".")[0]] = (path, expected)

    write("grey.png", Image.fromarray(grey), np.repeat(grey[..., None], 3, axis=2))
    write("rgba.png", Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (40, 60), dtype=np.uint8)])), rgb)
    palette = Image.fromarray(rgb).quantize(16)
    write("palette.png", palette, np.asarray(palette.convert("RGB")))
    write("grey16.png", Image.fromarray(grey.astype(np.uint16) * 257), np.repeat(grey[..., None], 3, axis=2))
    write("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), None, quality=95)
    write("small.png", Image.fromarray(rgb[:6, :9]), rgb[:6, :9])
    wide = np.zeros((6, 900, 3), dtype=np.uint8)
    wide[:, 300:600] = (255, 0, 0)  # the middle third red: a centre crop sees red only
    write("wide.png", Image.fromarray(wide), wide)
    write("tall.png", Image.fromarray(wide.transpose(1, 0, 2).copy()), wide.transpose(1, 0, 2))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CLOCKWISE
    write("exif.png", Image.fromarray(rgb), np.rot90(rgb, k=-1), exif=exif)
    return files
