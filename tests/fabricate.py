"""Fabricated data sets for the workflow tests: an ImageNet validation tree in the folder-per-wnid layout."""

from __future__ import annotations

import struct
import zlib
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
    rgb16 = rng.integers(0, 65536, (40, 60, 3)).astype(np.uint16)
    files["rgb16"] = (write_rgb16_png(folder / "rgb16.png", rgb16), (rgb16 >> 8).astype(np.uint8))
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


# ------------------------------------------------------------------------------------------------
# Plug-in models, written as a module outside the repository (docs/plugins.md)
# ------------------------------------------------------------------------------------------------
PLUGIN_MODULE = "edge_models"
PLUGIN_SOURCE = '''"""Plug-in models for advxai's edge-case tests (docs/plugins.md)."""
import torch
from torch import nn

from advxai.models import ModelBundle


class Constant(nn.Module):
    """Logits that ignore the image: the prediction never changes, so no attack can succeed."""

    def __init__(self, n_classes=1000):
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(1.0, 0.0, n_classes))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0.0 * x.mean(dim=(1, 2, 3))[:, None]


def fixed_size_net(side, n_classes):
    """A network that takes only `side` x `side` inputs (a flatten before its classifier)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(),
                         nn.Linear(4 * (side // 4) ** 2, n_classes))


def never():
    return Constant()


def ten():
    """10 classes at 32 px, declared in a ModelBundle."""
    return ModelBundle("edge_models:ten", fixed_size_net(32, 10), input_size=32, resize_size=36, n_classes=10)


def fixed48():
    """A bare nn.Module that accepts only 48 px: its sizes come from the config."""
    return fixed_size_net(48, 1000)
'''


def write_rgb16_png(path: Path, rgb16: np.ndarray) -> Path:
    """A 48-bit RGB PNG (PIL writes none), chunk by chunk."""
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits per sample, colour type 2 (RGB)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def plugin_folder(folder: Path) -> Path:
    """A folder outside the repository with the plug-in module; put it on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    return folder
