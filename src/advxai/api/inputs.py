"""What :func:`advxai.evaluate` accepts as a model and as images, turned into what the library takes.

A model is an ``nn.Module`` returning logits or a name (:func:`resolve_model`). Images are a tensor
or array batch, a folder of image files, PIL images (resized and cropped as the model's
preprocessing says), or any iterable or DataLoader; :func:`image_chunks`
streams them as chunks of at most ``chunk`` items, so that memory depends on the chunk, not on the
number of images.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..arithmetic import with_arithmetic
from ..constants import DEFAULT_MODEL_SIZES
from ..data.image_items import IMAGE_EXTENSIONS, ImageItem
from ..data.images import load_image, preprocess
from ..data.model_inputs import to_model_input
from ..models import ModelBundle, load_model

UNLABELLED = -1


def resolve_model(
    model: nn.Module | ModelBundle | str, weights: str | None, device: torch.device, arithmetic: str
) -> ModelBundle:
    """A :class:`ModelBundle` on ``device``: a name through :func:`advxai.models.load_model`, or the
    caller's module, put in eval mode with its parameters frozen (the explainers take input
    gradients only), with the paper's 256/224 preprocessing for folders of images."""
    if isinstance(model, str):
        return load_model(model, weights=weights, device=str(device), arithmetic=arithmetic)
    if isinstance(model, ModelBundle):
        module, name, sizes = model.module, model.name, (model.resize_size, model.input_size)
        n_classes = model.n_classes
    elif isinstance(model, nn.Module):
        module, name, sizes = model, type(model).__name__, (DEFAULT_MODEL_SIZES.resize, DEFAULT_MODEL_SIZES.crop)
        n_classes = 0  # counted on the first chunk (:func:`count_classes`)
    else:
        raise TypeError(f"model must be an nn.Module returning logits or a model name, got {type(model).__name__}")
    module = with_arithmetic(module.to(device).eval().requires_grad_(False), arithmetic)
    return ModelBundle(name, module, sizes[1], sizes[0], n_classes)


@torch.no_grad()
def count_classes(bundle: ModelBundle, example: torch.Tensor) -> ModelBundle:
    """``bundle`` with its number of logits, from one forward of ``example`` where it is not known."""
    if bundle.n_classes:
        return bundle
    logits = bundle.module(example[:1])
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(
            f"model {bundle.name!r} must return logits (N, n_classes); "
            f"got {getattr(logits, 'shape', type(logits).__name__)}"
        )
    return ModelBundle(bundle.name, bundle.module, bundle.input_size, bundle.resize_size, int(logits.shape[1]))


@dataclass
class Chunk:
    """Up to ``chunk`` consecutive items: ids, model inputs ``(n, C, H, W)`` on the CPU, labels (-1: none)."""

    ids: list[str]
    inputs: torch.Tensor
    labels: np.ndarray


def as_model_input(batch: Any) -> torch.Tensor:
    """uint8 images ``(N, H, W, 3)`` are normalised as the models expect; float ``(N, C, H, W)`` are taken
    as they are."""
    batch = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch)
    if batch.dtype == torch.uint8:
        return to_model_input(batch.cpu().numpy())
    if not batch.is_floating_point() or batch.ndim < 3:
        raise ValueError(
            "images must be uint8 (N, H, W, 3) or float model inputs (N, C, ...), "
            f"got {batch.dtype} {tuple(batch.shape)}"
        )
    return batch.float().cpu()


def folder_items(folder: Path) -> list[ImageItem]:
    """The image files of ``folder``, by name; an item's id is its file name (it seeds the item's draws)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"folder {folder} holds no image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [ImageItem(id=p.name, source=str(p), label=UNLABELLED) for p in files]


def _batches(images: Any, bundle: ModelBundle) -> Iterator[tuple[torch.Tensor, np.ndarray | None]]:
    """The source as (inputs, labels or None) batches of any size."""
    if isinstance(images, (str, Path)):
        for item in folder_items(Path(images)):
            pixels = preprocess(load_image(item), bundle.resize_size, bundle.input_size)
            yield to_model_input(pixels[None]), None
        return
    if isinstance(images, (torch.Tensor, np.ndarray)):
        yield as_model_input(images), None
        return
    for batch in images:  # PIL images, or an iterable or DataLoader of batches, or of (inputs, labels) pairs
        if isinstance(batch, Image.Image):
            yield to_model_input(preprocess(batch.convert("RGB"), bundle.resize_size, bundle.input_size)[None]), None
        elif isinstance(batch, (tuple, list)):
            inputs, labels = batch[0], batch[1] if len(batch) > 1 else None
            yield as_model_input(inputs), None if labels is None else np.asarray(torch.as_tensor(labels).cpu())
        else:
            yield as_model_input(batch), None


def image_chunks(
    images: Any, bundle: ModelBundle, chunk: int, ids: Iterable[str] | None = None, labels: Iterable[int] | None = None
) -> Iterator[Chunk]:
    """``images`` as chunks of ``chunk`` items (the last may hold fewer), ids ``"0"``, ``"1"``, ... unless given."""
    if ids is None and isinstance(images, (str, Path)):
        ids = [item.id for item in folder_items(Path(images))]  # a folder's items are named by their files
    id_source = iter(ids) if ids is not None else (str(i) for i in itertools.count())
    label_source = iter(labels) if labels is not None else None
    pending: list[tuple[torch.Tensor, np.ndarray]] = []
    held = 0

    def flush() -> Chunk:
        inputs = torch.cat([x for x, _ in pending])
        found = np.concatenate([y for _, y in pending])
        chunk_ids = list(itertools.islice(id_source, len(inputs)))
        if len(chunk_ids) != len(inputs):
            raise ValueError("ids: fewer ids than images")
        if label_source is not None:
            found = np.array(list(itertools.islice(label_source, len(inputs))), dtype=np.int64)
        return Chunk(chunk_ids, inputs, found)

    for inputs, batch_labels in _batches(images, bundle):
        given = (
            np.full(len(inputs), UNLABELLED, dtype=np.int64) if batch_labels is None else batch_labels.astype(np.int64)
        )
        start = 0
        while start < len(inputs):
            take = min(chunk - held, len(inputs) - start)
            pending.append((inputs[start : start + take], given[start : start + take]))
            held, start = held + take, start + take
            if held == chunk:
                yield flush()
                pending, held = [], 0
    if pending:
        yield flush()
