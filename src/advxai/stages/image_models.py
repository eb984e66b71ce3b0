"""What every image model stage sets up around its model: the model of a spec, its label check, the
provenance attributes of its output and the settings its explainers run with.

Shared by :mod:`advxai.stages.image`, :mod:`advxai.stages.refine` and :mod:`advxai.stages.examples`,
so that none of them imports another for these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..constants import ModelSizes
from ..explainers.engine import ExplainSettings
from ..models import ModelBundle, load_model
from .settings import ExplainerSettings, ModelSpec


def model_from_spec(spec: ModelSpec, device: torch.device) -> ModelBundle:
    """The model on ``device``, in the spec's arithmetic (its CUDA flags: :func:`advxai.runtime.use_device`),
    at the sizes its images were preprocessed at."""
    return load_model(spec.architecture, weights=spec.weights, device=str(device), arithmetic=spec.arithmetic,
                      sizes=ModelSizes(resize=spec.resize, crop=spec.crop), weights_file=spec.weights_file)


def check_labels_fit(labels: np.ndarray, ids: np.ndarray, bundle: ModelBundle, images_path: str) -> None:
    """Every known label (``-1``: none) is one of the model's classes; else one error at the model's first job."""
    outside = np.flatnonzero(np.asarray(labels) >= bundle.n_classes)
    if outside.size:
        first = outside[0]
        raise ValueError(f"model {bundle.name!r} has {bundle.n_classes} classes, but {images_path} holds "
                         f"{outside.size} image(s) labelled outside 0..{bundle.n_classes - 1}, "
                         f"e.g. {ids[first]!s} with label {labels[first]}: "
                         "the model's class indices must be the data set's (ImageNet: 1000 classes)")


def model_attrs(bundle: ModelBundle, device: torch.device, **attrs: Any) -> dict[str, Any]:
    """Provenance attributes of a model stage's output: ``attrs``, the weights (source, file,
    sha256) and the device the job ran on (which GPU, on a machine with several)."""
    return {**attrs, "weights": dict(bundle.weights), "device": str(device)}


def engine_settings(explainer: ExplainerSettings, seed: int, batch_size: int, lime_rows: int | None = None) -> ExplainSettings:
    """What the engine runs a job's explainers with: the settings the job received (a key it did not
    receive fails where an explainer reads it), its seed and pass sizes, and ``authors_code``'s GBP."""
    return ExplainSettings(explainer=explainer, seed=seed, batch_size=batch_size, lime_batch_size=lime_rows,
                           relu_modules_only=bool(explainer.unguided_functional_relu))
