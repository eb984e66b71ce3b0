"""Image data: decoding, preprocessing and normalisation, in NumPy and PIL (which images exist: ``image_items``).

Implements docs/method.md §5.1 (data, class indices, sample order) and §5.2 (preprocessing,
normalisation outside the model). Images travel between stages as ``uint8`` arrays of shape
``(H, W, 3)``; models receive normalised ``float32`` batches ``(N, 3, H, W)``
(:func:`normalized_pixels`, as tensors :func:`advxai.data.model_inputs.to_model_input`).

The module imports neither torch nor torchvision: the jobs that decode, subset and segment
images start in a fraction of the time a torch import takes (benchmarks/job_startup.py). Its
preprocessing and normalisation are proven equal to torchvision's bit for bit (tests/test_images.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .image_items import BUNDLED_PHOTOS, ImageItem

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


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


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit grey images (PNG, TIFF): values 0..65535, which ``convert("RGB")`` would clip at 255."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded image as 8-bit RGB, upright (docs/decisions.md, "Odd but legal image files").

    The EXIF orientation is applied first (``ImageOps.exif_transpose``), so a phone photo taken
    sideways is seen as it is displayed. 16-bit grey values keep their high byte (``v >> 8``, as PIL
    reduces 16-bit RGB PNGs) instead of being clipped at 255; palette images go through RGBA so that PIL resolves their
    transparency; alpha is dropped as torchvision's loader drops it (``convert("RGB")``: the colour
    under a transparent pixel stays); CMYK and grey convert as PIL converts them.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_DEPTH_MODES:
        grey = (np.asarray(image, dtype=np.int64).clip(0, 65535) >> 8).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
    elif image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("RGB")


def load_image(item: ImageItem) -> Image.Image:
    """Decode an item into an upright 8-bit RGB PIL image (:func:`_to_rgb`).

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
            return _to_rgb(image)
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
    # torchvision's Resize and CenterCrop hand a PIL image to PIL with these sizes and boxes
    # (transforms.functional._compute_resized_output_size and center_crop), so PIL alone gives
    # the same pixels without importing torchvision.
    width, height = image.size
    short, long = sorted((width, height))
    new_short, new_long = resize, int(resize * long / short)
    size = (new_short, new_long) if width <= height else (new_long, new_short)
    resized = image if size == image.size else image.resize(size, Image.BILINEAR)
    top = int(round((resized.height - crop) / 2.0))
    left = int(round((resized.width - crop) / 2.0))
    return np.array(resized.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def normalized_pixels(images_uint8: np.ndarray) -> np.ndarray:
    """Batch of ``uint8`` images ``(N, H, W, 3)`` to normalised ``float32`` ``(N, 3, H, W)``.

    torchvision's ``ToTensor`` then ``Normalize`` per image: divide by 255, subtract the mean,
    divide by the standard deviation, each rounded to float32 as torch rounds it.
    """
    images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4 or images_uint8.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 of shape (N, H, W, 3), got {images_uint8.dtype} {images_uint8.shape}"
        )
    # channels first while still uint8, so the float32 arrays are contiguous without another copy
    pixels = np.ascontiguousarray(images_uint8.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
    return (pixels - mean) / std
