"""Which images a data set holds: bundled photographs, the ImageNet validation listing, manifests.

Implements docs/method.md §5.1 (data, class indices, sample order) without decoding anything, and
without importing torch: the workflow's ``image_manifest`` job lists a data set once into a
manifest (paths relative to the data root), and every later job and the workflow's shard counts
read that manifest instead of listing the data set again. See ``docs/data.md``.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

N_IMAGENET_CLASSES = 1000
UNKNOWN_LABEL = -1

# torchvision.datasets.folder.IMG_EXTENSIONS, spelled out so that listing needs no torchvision.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

KAGGLE_VAL_DIR = Path("ILSVRC", "Data", "CLS-LOC", "val")
KAGGLE_SOLUTION_CSV = "LOC_val_solution.csv"
_WNID = re.compile(r"^n\d{8}$")

MANIFEST_COLUMNS = ("id", "path", "label", "bytes")
BUNDLED_PREFIXES = ("skimage:", "sklearn:")


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


# id, source, ImageNet label. Labels were chosen by looking at each photograph and are only set
# where one ImageNet-1k class is clearly right.
BUNDLED_PHOTOS: tuple[tuple[str, str, int], ...] = (
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


def bundled_items() -> list[ImageItem]:
    """The colour photographs shipped inside scikit-image and scikit-learn (offline demo data).

    Returns:
        list[ImageItem]: 8 photographs in a fixed order; labels are ImageNet class indices where
        one is clearly right, else ``-1``.
    """
    return [ImageItem(id=item_id, source=source, label=label) for item_id, source, label in BUNDLED_PHOTOS]


# ------------------------------------------------------------------------------------------------
# ImageNet validation
# ------------------------------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    """Regular files with an image extension torchvision accepts, in one directory read."""
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]


def _wnid_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` named like a WordNet id (``n`` + 8 digits)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if _WNID.match(e.name) and e.is_dir()]


def _folder_classes(root: Path) -> dict[str, list[Path]]:
    """Image files per wnid of a folder-per-class tree ``root/<wnid>/*`` or ``root/val/<wnid>/*``.

    Empty wnid folders count as classes, so a subset tree can keep the full class list.
    """
    for tree in (root, root / "val"):
        class_dirs = _wnid_dirs(tree)
        if class_dirs:
            return {folder.name: _image_files(folder) for folder in class_dirs}
    raise ValueError(
        f"no ImageNet validation layout found under {root}: expected {root}/<wnid>/*.JPEG, "
        f"{root}/val/<wnid>/*.JPEG, or {root / KAGGLE_VAL_DIR}/*.JPEG with {KAGGLE_SOLUTION_CSV}"
    )


def _solution_csv(root: Path) -> Path:
    """The Kaggle solution CSV, directly under ``root`` or its parent (the parent of the real
    folder where ``root`` is a link)."""
    candidates = (root / KAGGLE_SOLUTION_CSV, root.resolve().parent / KAGGLE_SOLUTION_CSV)
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
    files = {path.stem: path for path in _image_files(flat_dir)}
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
    ``root/<wnid>/*.JPEG`` or ``root/val/<wnid>/*.JPEG`` (torchvision's parsed layout). Every
    directory is read once.

    The class index is the position of the wnid among all wnids found, sorted (torchvision's
    index). That is the standard index only if all 1000 classes are present: a subset tree must
    keep all 1000 wnid folders (empty ones are fine). Items are sorted by wnid, then file name
    (docs/method.md §5.1); ``id`` is the file stem, e.g. ``"ILSVRC2012_val_00000001"``.

    Args:
        root (str or Path): data set root.
        allow_partial (bool): accept fewer than 1000 classes (indices then are not ImageNet's).

    Returns:
        list[ImageItem]: the validation images with their class indices; ``source`` is
        ``root`` joined with the file's path below it.

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
# Manifests
# ------------------------------------------------------------------------------------------------


def dataset_items(dataset: str, root: str | Path | None) -> list[ImageItem]:
    """Every item of a configured data set, in data set order: ``bundled`` or ``imagenet`` at ``root``."""
    if dataset == "bundled":
        return bundled_items()
    if dataset == "imagenet":
        if root is None:
            raise ValueError("the imagenet data set needs its root folder")
        return imagenet_val_items(root)
    raise ValueError(f"unknown image data set {dataset!r}; expected 'bundled' or 'imagenet'")


def write_image_manifest(dataset: str, root: str | Path | None, output: str | Path) -> None:
    """List a data set once into a CSV manifest (``id, path, label, bytes``), atomically.

    ``path`` is relative to ``root`` (``"n01440764/ILSVRC2012_val_00000293.JPEG"``), so that the
    manifest, and everything made from it, is the same wherever the data folder lies; bundled
    photographs keep their ``skimage:``/``sklearn:`` source and no size.
    """
    items = dataset_items(dataset, root)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for item in items:
            if item.source.startswith(BUNDLED_PREFIXES):
                writer.writerow((item.id, item.source, item.label, ""))
            else:
                writer.writerow((item.id, Path(item.source).relative_to(root).as_posix(), item.label, os.stat(item.source).st_size))
    os.replace(partial, output)


def read_image_manifest(manifest: str | Path, start: int = 0, stop: int | None = None) -> list[ImageItem]:
    """Items ``start:stop`` of a manifest, as listed: file sources are relative to the data root
    (join them with :func:`locate`).

    Raises:
        ValueError: the manifest lacks a column.
    """
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(MANIFEST_COLUMNS) <= set(reader.fieldnames):
            raise ValueError(f"{manifest} must have the columns {', '.join(MANIFEST_COLUMNS)}")
        rows = list(reader)[start:stop]
    return [ImageItem(id=row["id"], source=row["path"], label=int(row["label"])) for row in rows]


def locate(item: ImageItem, root: str | Path | None) -> ImageItem:
    """The item with its file source joined to ``root``, where the data lies now (bundled items as they are).

    Raises:
        ValueError: ``item`` is a file but no ``root`` is given.
    """
    if item.source.startswith(BUNDLED_PREFIXES):
        return item
    if root is None:
        raise ValueError(f"item {item.id} is the file {item.source!r}; the data root it is relative to is needed")
    return ImageItem(id=item.id, source=str(Path(root, item.source)), label=item.label)


def manifest_length(manifest: str | Path) -> int:
    """How many items a manifest lists (its lines less the header)."""
    with open(manifest, "rb") as handle:
        return sum(1 for _ in handle) - 1
