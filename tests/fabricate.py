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
