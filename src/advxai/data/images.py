"""Image data: bundled photographs, ImageNet validation, preprocessing and normalisation.

Implements REFERENCE §5.1 (data, class indices, sample order) and §5.2 (preprocessing,
normalisation outside the model). Images travel between stages as ``uint8`` arrays of shape
``(H, W, 3)``; models receive normalised ``float32`` batches ``(N, 3, H, W)``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
N_IMAGENET_CLASSES = 1000
UNKNOWN_LABEL = -1

KAGGLE_VAL_DIR = Path("ILSVRC", "Data", "CLS-LOC", "val")
KAGGLE_SOLUTION_CSV = "LOC_val_solution.csv"
_WNID = re.compile(r"^n\d{8}$")


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
    min/max of the first validation image instead (REFERENCE §10.2); per-channel bounds keep
    every adversary a valid image.
    """
    lower = normalize(torch.zeros(3, 1, 1))
    upper = normalize(torch.ones(3, 1, 1))
    return lower, upper


# ------------------------------------------------------------------------------------------------
# Items
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageItem:
    """One image of a data set.

    Args:
        id (str): stable short identifier, unique within the data set (seeds derive from it).
        source (str): ``"skimage:<name>"``, ``"sklearn:<file>"`` or the path of an image file.
        label (int): ImageNet class index, or ``-1`` where no ImageNet class is known.
    """

    id: str
    source: str
    label: int


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


# id, source, ImageNet label. Labels were chosen by looking at each photograph and are only set
# where one ImageNet-1k class is clearly right.
_BUNDLED_PHOTOS: tuple[tuple[str, str, int], ...] = (
    # Astronaut Eileen Collins in her suit: ImageNet has no person or spacesuit class.
    ("astronaut", "skimage:astronaut", UNKNOWN_LABEL),
    # Close-up of a striped brown tabby cat: 281 "tabby, tabby cat".
    ("chelsea", "skimage:chelsea", 281),
    # Espresso in a cup on a saucer, seen from above: 967 "espresso".
    ("coffee", "skimage:coffee", 967),
    # A Falcon 9 on its launch pad at dusk: no ImageNet class fits without doubt ("missile"?).
    ("rocket", "skimage:rocket", UNKNOWN_LABEL),
    # A red motorbike in a workshop: ImageNet-1k has moped and motor scooter, not motorcycle.
    ("motorcycle", "skimage:motorcycle_left", UNKNOWN_LABEL),
    # Hubble deep field (galaxies on black): no ImageNet class.
    ("hubble", "skimage:hubble_deep_field", UNKNOWN_LABEL),
    # The Summer Palace's Tower of Buddhist Incense in Beijing: 698 "palace".
    ("china", "sklearn:china.jpg", 698),
    # An orange dahlia: ImageNet-1k's only flower classes are daisy and yellow lady's slipper.
    ("flower", "sklearn:flower.jpg", UNKNOWN_LABEL),
)

_BUNDLED_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    source: _skimage_photo(source.removeprefix("skimage:"))
    if source.startswith("skimage:")
    else _sklearn_photo(source.removeprefix("sklearn:"))
    for _, source, _ in _BUNDLED_PHOTOS
}


def bundled_items() -> list[ImageItem]:
    """The colour photographs shipped inside scikit-image and scikit-learn (offline demo data).

    Returns:
        list[ImageItem]: 8 photographs in a fixed order; labels are ImageNet class indices where
        one is clearly right, else ``-1``.
    """
    return [ImageItem(id=item_id, source=source, label=label) for item_id, source, label in _BUNDLED_PHOTOS]


# ------------------------------------------------------------------------------------------------
# ImageNet validation
# ------------------------------------------------------------------------------------------------


def _is_image_file(path: Path) -> bool:
    """Whether ``path`` is a regular file with an image extension torchvision accepts."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return path.is_file() and path.suffix.lower() in IMG_EXTENSIONS


def _wnid_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` named like a WordNet id (``n`` + 8 digits)."""
    if not folder.is_dir():
        return []
    return [child for child in folder.iterdir() if child.is_dir() and _WNID.match(child.name)]


def _folder_classes(root: Path) -> dict[str, list[Path]]:
    """Image files per wnid of a folder-per-class tree ``root/<wnid>/*`` or ``root/val/<wnid>/*``.

    Empty wnid folders count as classes, so a subset tree can keep the full class list.
    """
    for tree in (root, root / "val"):
        class_dirs = _wnid_dirs(tree)
        if class_dirs:
            return {folder.name: [p for p in folder.iterdir() if _is_image_file(p)] for folder in class_dirs}
    raise ValueError(
        f"no ImageNet validation layout found under {root}: expected {root}/<wnid>/*.JPEG, "
        f"{root}/val/<wnid>/*.JPEG, or {root / KAGGLE_VAL_DIR}/*.JPEG with {KAGGLE_SOLUTION_CSV}"
    )


def _solution_csv(root: Path) -> Path:
    """The Kaggle solution CSV, directly under ``root`` or its parent."""
    candidates = (root / KAGGLE_SOLUTION_CSV, root.parent / KAGGLE_SOLUTION_CSV)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{KAGGLE_SOLUTION_CSV} not found: looked for {candidates[0]} and {candidates[1]}")


def _read_solution(csv_path: Path) -> dict[str, str]:
    """Map image id to wnid from ``LOC_val_solution.csv`` (first token of ``PredictionString``)."""
    wnid_of: dict[str, str] = {}
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path} must have the columns ImageId and PredictionString")
        for row in reader:
            image_id = row["ImageId"].strip()
            tokens = (row["PredictionString"] or "").split()
            if not tokens or not _WNID.match(tokens[0]):
                raise ValueError(f"{csv_path}: row of {image_id!r} has no wnid in PredictionString")
            if image_id in wnid_of:
                raise ValueError(f"{csv_path} lists image {image_id!r} twice")
            wnid_of[image_id] = tokens[0]
    return wnid_of


def _kaggle_classes(flat_dir: Path, csv_path: Path) -> dict[str, list[Path]]:
    """Image files per wnid of the Kaggle flat layout, checked against its solution CSV."""
    files = {path.stem: path for path in flat_dir.iterdir() if _is_image_file(path)}
    wnid_of = _read_solution(csv_path)
    missing = sorted(set(wnid_of) - set(files))
    if missing:
        raise ValueError(f"{csv_path} lists {len(missing)} images missing from {flat_dir}, e.g. {missing[0]}")
    unlisted = sorted(set(files) - set(wnid_of))
    if unlisted:
        raise ValueError(f"{flat_dir} holds {len(unlisted)} images not listed in {csv_path}, e.g. {unlisted[0]}")
    classes: dict[str, list[Path]] = {wnid: [] for wnid in wnid_of.values()}
    for image_id, wnid in wnid_of.items():
        classes[wnid].append(files[image_id])
    return classes


def imagenet_val_items(root: str | Path, *, allow_partial: bool = False) -> list[ImageItem]:
    """Items of the ImageNet (ILSVRC-2012) validation set, in either common layout.

    The layout is detected: the Kaggle flat folder ``root/ILSVRC/Data/CLS-LOC/val/*.JPEG`` with
    ``LOC_val_solution.csv`` (under ``root`` or its parent), else a folder-per-wnid tree
    ``root/<wnid>/*.JPEG`` or ``root/val/<wnid>/*.JPEG`` (torchvision's parsed layout).

    The class index is the position of the wnid among all wnids found, sorted (torchvision's
    index). That is the standard index only if all 1000 classes are present: a subset tree must
    keep all 1000 wnid folders (empty ones are fine). Items are sorted by wnid, then file name
    (REFERENCE §5.1); ``id`` is the file stem, e.g. ``"ILSVRC2012_val_00000001"``.

    Args:
        root (str or Path): data set root.
        allow_partial (bool): accept fewer than 1000 classes (indices then are not ImageNet's).

    Returns:
        list[ImageItem]: the validation images with their class indices.

    Raises:
        FileNotFoundError: ``root`` or the solution CSV does not exist.
        ValueError: no known layout, the CSV and the files disagree, fewer than 1000 classes
            without ``allow_partial``, or two files share a stem.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"ImageNet root {root} does not exist")
    flat_dir = root / KAGGLE_VAL_DIR
    if flat_dir.is_dir():
        classes = _kaggle_classes(flat_dir, _solution_csv(root))
    else:
        classes = _folder_classes(root)
    if len(classes) != N_IMAGENET_CLASSES and not allow_partial:
        raise ValueError(
            f"{root} holds {len(classes)} ImageNet classes, not {N_IMAGENET_CLASSES}: class indices would "
            "not match the pretrained models (keep all wnid folders, or pass allow_partial=True)"
        )
    items: list[ImageItem] = []
    for label, wnid in enumerate(sorted(classes)):
        for path in sorted(classes[wnid], key=lambda p: p.name):
            items.append(ImageItem(id=path.stem, source=str(path), label=label))
    duplicates = [item_id for item_id, count in Counter(item.id for item in items).items() if count > 1]
    if duplicates:
        duplicate = duplicates[0]
        raise ValueError(f"{root}: several image files share the name {duplicate!r}; ids must be unique")
    return items


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
    (REFERENCE §5.2: 256/224 for most models, 299/299 for Inception v3).

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
