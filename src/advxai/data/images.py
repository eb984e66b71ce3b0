"""Image data: decoding, preprocessing and normalisation (which images exist: ``image_items``).

Implements docs/method.md §5.1 (data, class indices, sample order) and §5.2 (preprocessing,
normalisation outside the model). Images travel between stages as ``uint8`` arrays of shape
``(H, W, 3)``; models receive normalised ``float32`` batches ``(N, 3, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .image_items import BUNDLED_PHOTOS, ImageItem  # listing is torch-free, in image_items

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """Map ``[0, 1]`` pixels ``(..., 3, H, W)`` to the normalised space ``(x - mean) / std``.

    The arithmetic of torchvision's ``Normalize`` (subtract, then divide, in the input's dtype),
    without importing torchvision in jobs that only read stored images.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=x01.dtype, device=x01.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x01.dtype, device=x01.device).view(-1, 1, 1)
    return (x01 - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: normalised ``(..., 3, H, W)`` back to pixel units."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return x * std + mean


def pixel_bounds() -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel valid range of normalised images, as two ``(3, 1, 1)`` tensors.

    These are the normalised images of pixel values 0 and 1. The authors clamped to the scalar
    min/max of the first validation image instead (docs/decisions.md §10.2); per-channel bounds keep
    every adversary a valid image.
    """
    lower = normalize(torch.zeros(3, 1, 1))
    upper = normalize(torch.ones(3, 1, 1))
    return lower, upper


# ------------------------------------------------------------------------------------------------
# Bundled photographs (the list of items is in image_items)
# ------------------------------------------------------------------------------------------------


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    """Loader of a photograph that ships inside scikit-image (no download needed)."""

    def load() -> np.ndarray:
        import skimage.data

        if name == "motorcycle_left":
            # Only reachable through the stereo pair loader: (left, right, disparity).
            return skimage.data.stereo_motorcycle()[0]
        return getattr(skimage.data, name)()

    return load


def _sklearn_photo(file_name: str) -> Callable[[], np.ndarray]:
    """Loader of a photograph that ships inside scikit-learn."""

    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(file_name)

    return load


_BUNDLED_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    source: _skimage_photo(source.removeprefix("skimage:"))
    if source.startswith("skimage:")
    else _sklearn_photo(source.removeprefix("sklearn:"))
    for _, source, _ in BUNDLED_PHOTOS
}


# ------------------------------------------------------------------------------------------------
# Decoding and preprocessing
# ------------------------------------------------------------------------------------------------


def load_image(item: ImageItem) -> Image.Image:
    """Decode an item into an RGB PIL image.

    Raises:
        FileNotFoundError: the image file does not exist.
        ValueError: unknown bundled source, or a corrupt/unreadable file (named in the message).
    """
    if item.source in _BUNDLED_LOADERS:
        return Image.fromarray(_BUNDLED_LOADERS[item.source]()).convert("RGB")
    if item.source.startswith(("skimage:", "sklearn:")):
        raise ValueError(f"unknown bundled image source {item.source!r} (item {item.id})")
    path = Path(item.source)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} (item {item.id}) does not exist")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so truncated data fails here and not later
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot decode image file {path} (item {item.id}): {error}") from error


def preprocess(image: Image.Image, resize: int, crop: int) -> np.ndarray:
    """Resize the shorter side to ``resize`` (bilinear, antialiased) and centre-crop ``crop``.

    This is torchvision's ``Resize(resize)`` then ``CenterCrop(crop)`` on a PIL image
    (docs/method.md §5.2: 256/224 for most models, 299/299 for Inception v3).

    Returns:
        np.ndarray: ``uint8`` array of shape ``(crop, crop, 3)``.
    """
    if not isinstance(image, Image.Image) or image.mode != "RGB":
        raise ValueError(f"preprocess needs an RGB PIL image, got {getattr(image, 'mode', type(image).__name__)}")
    if not 0 < crop <= resize:
        raise ValueError(f"crop={crop} must be positive and at most resize={resize}: a larger crop would pad zeros")
    import torchvision.transforms.functional as TF  # only the jobs that decode images need torchvision
    from torchvision.transforms import InterpolationMode

    resized = TF.resize(image, resize, interpolation=InterpolationMode.BILINEAR)
    return np.array(TF.center_crop(resized, crop), dtype=np.uint8)


def to_model_input(images_uint8: np.ndarray) -> torch.Tensor:
    """Batch of ``uint8`` images ``(N, H, W, 3)`` to a normalised ``float32`` tensor ``(N, 3, H, W)``.

    Identical to torchvision's ``ToTensor`` then ``Normalize`` per image.
    """
    images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4 or images_uint8.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 of shape (N, H, W, 3), got {images_uint8.dtype} {images_uint8.shape}"
        )
    pixels = torch.tensor(images_uint8).permute(0, 3, 1, 2).contiguous()  # a copy: inputs may be read-only
    return normalize(pixels.to(torch.float32).div(255))
