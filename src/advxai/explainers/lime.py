"""LIME with segments as interpretable features, one implementation for both domains.

The two domains differ only in settings (docs/method.md §3, §7; docs/decisions.md §10.7):

========================  =================================  ==================================
setting                   images (captum ``Lime``)           audio (audioLIME)
========================  =================================  ==================================
model output regressed    target logit                       target probability ([1-p, p])
occlusion value           ``baseline=0.0`` (mean colour)     ``baseline="mean"`` (item mean)
kernel distance           ``"input_cosine"``                 ``"binary_cosine"``
surrogate                 ``"ols"`` (LinearRegression)       ``"ridge"`` (Ridge, alpha 1)
unperturbed row 0         no                                 ``include_unperturbed=True``
samples                   512                                8192
========================  =================================  ==================================

Work is shared and vectorised where captum loops: the samples of every item in the batch are
built by one gather of the binary vectors through the segment masks and evaluated in batches
of ``batch_size``; the input-space cosine distance is computed from three per-segment sums
(``‖x_s‖²``, ``x_s·b_s``, ``‖b_s‖²``), which equals the distance between the full flattened
images; each item gets its own surrogate over its *own* segments (no dummy features for ids it
lacks, docs/decisions.md §10.19). Samples come from ``advxai.seeding.numpy_rng(seed, "lime", id)``, so
they do not depend on batch composition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from advxai.batching import run_batched
from advxai.segments import ABSENT
from advxai.seeding import numpy_rng

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression, Ridge

KERNELS = ("input_cosine", "binary_cosine")
SURROGATES = ("ols", "ridge")
_COSINE_EPS = 1e-8  # torch.nn.CosineSimilarity's guard against zero norms

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LimeResult:
    """Per-item surrogate fits.

    Attributes:
        coefficients (ndarray): ``(N, S)`` surrogate weight per segment id, ``ABSENT`` for ids an
            item lacks.
        intercepts (ndarray): ``(N,)`` surrogate intercepts.
        r2 (ndarray): ``(N,)`` weighted R² of each surrogate on its samples (LIME's "score").
        local_predictions (ndarray): ``(N,)`` surrogate prediction for the unperturbed item
            (all features on).
    """

    coefficients: np.ndarray
    intercepts: np.ndarray
    r2: np.ndarray
    local_predictions: np.ndarray


def _item_segments(masks: np.ndarray, n_segments: int | Sequence[int] | np.ndarray) -> tuple[list[np.ndarray], int]:
    """The segment ids present in each item (its interpretable features) and the output width."""
    present = [np.unique(mask) for mask in masks]
    if np.ndim(n_segments) == 0:
        width = int(n_segments)
        for item, ids in enumerate(present):
            if ids[0] < 0 or ids[-1] >= width:
                raise ValueError(f"masks: item {item} has segment ids {ids[0]}..{ids[-1]} outside 0..{width - 1}")
        return present, width
    counts = np.asarray(n_segments, dtype=np.int64)
    if counts.shape != (len(masks),):
        raise ValueError(f"n_segments: expected one count per item ({len(masks)}), got shape {counts.shape}")
    for item, (ids, count) in enumerate(zip(present, counts)):
        if len(ids) != count or ids[0] != 0 or ids[-1] != count - 1:
            raise ValueError(
                f"masks: item {item} should have the segment ids 0..{count - 1} (n_segments), "
                f"but has {len(ids)} ids in {ids[0]}..{ids[-1]}"
            )
    return present, int(counts.max())


def _draw_samples(
    ids: Sequence[str | int], n_features: Sequence[int], n_samples: int, seed: int, include_unperturbed: bool
) -> list[np.ndarray]:
    """Per item ``(n_samples, F_i)`` Bernoulli(0.5) vectors from the item's own generator."""
    samples = []
    for item_id, count in zip(ids, n_features):
        drawn = numpy_rng(seed, "lime", item_id).random((n_samples, count)) < 0.5
        if include_unperturbed:
            drawn[0] = True  # audioLIME's row 0: the unperturbed input
        samples.append(drawn)
    return samples


def _check_samples(samples: Sequence[np.ndarray], n_features: Sequence[int]) -> list[np.ndarray]:
    if len(samples) != len(n_features):
        raise ValueError(f"samples: expected one array per item ({len(n_features)}), got {len(samples)}")
    checked = []
    for item, (rows, count) in enumerate(zip(samples, n_features)):
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != count or rows.shape[0] < 2:
            raise ValueError(f"samples: item {item} needs shape (n_samples >= 2, {count}), got {rows.shape}")
        checked.append(rows.astype(bool))
    return checked


def _baselines(inputs: torch.Tensor, baseline: float | str) -> torch.Tensor:
    """Occlusion value per item, shape ``(N,)``."""
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be a number or 'mean', got '{baseline}'")
        return inputs.flatten(1).mean(dim=1)
    return torch.full((inputs.shape[0],), float(baseline), dtype=inputs.dtype, device=inputs.device)


def _input_cosine_distances(
    values: np.ndarray, mask: np.ndarray, features: np.ndarray, baseline: float, rows: np.ndarray
) -> np.ndarray:
    """Cosine distance between ``x`` and each perturbed input, from per-segment sums.

    A perturbed input takes ``x_s`` where ``z_s = 1`` and the baseline elsewhere, so
    ``x·p = Σ z_s‖x_s‖² + (1-z_s) x_s·b_s`` and ``‖p‖² = Σ z_s‖x_s‖² + (1-z_s)‖b_s‖²``.
    """
    ids = np.broadcast_to(mask, values.shape).ravel()
    flat = values.ravel()
    column = np.searchsorted(features, ids)
    x_sq = np.bincount(column, weights=flat * flat, minlength=len(features))
    x_b = baseline * np.bincount(column, weights=flat, minlength=len(features))
    b_sq = baseline * baseline * np.bincount(column, minlength=len(features))
    keep = rows.astype(np.float64)
    dot = keep @ x_sq + (1.0 - keep) @ x_b
    norm_perturbed = np.sqrt(keep @ x_sq + (1.0 - keep) @ b_sq)
    norm_input = np.sqrt(x_sq.sum())
    cosine = dot / (max(norm_input, _COSINE_EPS) * np.maximum(norm_perturbed, _COSINE_EPS))
    return 1.0 - cosine


def _binary_cosine_distances(rows: np.ndarray) -> np.ndarray:
    """Cosine distance between each binary vector and all-ones: ``1 - sqrt(m/S)`` (``1`` if ``m = 0``)."""
    return 1.0 - np.sqrt(rows.sum(axis=1) / rows.shape[1])


def _model_outputs(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    baselines: torch.Tensor,
    keep: torch.Tensor,
    owner: torch.Tensor,
    batch_size: int | None,
) -> np.ndarray:
    """Target outputs of all perturbed inputs; row ``r`` keeps segment ids ``keep[r]`` of item ``owner[r]``."""

    def evaluate(rows: torch.Tensor) -> torch.Tensor:
        items = owner[rows]
        pixels = torch.gather(keep[rows], 1, masks[items].flatten(1)).view(-1, 1, *masks.shape[1:])
        base = baselines[items].view(-1, *([1] * (inputs.dim() - 1)))
        perturbed = torch.where(pixels, inputs[items], base)
        with torch.no_grad():
            outputs = forward(perturbed)
        return outputs.gather(1, targets[items].view(-1, 1)).squeeze(1)

    rows = torch.arange(len(owner), device=inputs.device)
    return run_batched(evaluate, rows, batch_size or max(1, len(rows))).double().cpu().numpy()


def _surrogate(name: str) -> LinearRegression | Ridge:
    from sklearn.linear_model import LinearRegression, Ridge  # only LIME needs scikit-learn

    if name == "ols":
        return LinearRegression(fit_intercept=True)
    if name == "ridge":
        return Ridge(alpha=1.0, fit_intercept=True)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got '{name}'")


def lime_explain(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    n_segments: int | Sequence[int] | np.ndarray,
    *,
    ids: Sequence[str | int] | None = None,
    samples: Sequence[np.ndarray] | None = None,
    n_samples: int = 512,
    seed: int = 0,
    baseline: float | str = 0.0,
    kernel: str = "input_cosine",
    kernel_width: float = 0.25,
    surrogate: str = "ols",
    include_unperturbed: bool = False,
    batch_size: int | None = 64,
) -> LimeResult:
    """Fit one weighted linear surrogate per item over its segments (see the module docstring).

    Args:
        forward (Callable): ``(B, C, *spatial) -> (B, n_classes)`` model outputs (logits for images,
            ``[1-p, p]`` for audio); called without gradients on batches of perturbed inputs.
        inputs (Tensor): ``(N, C, *spatial)`` inputs being explained.
        targets (Tensor): ``(N,)`` output index regressed per item.
        masks (Tensor): ``(N, *spatial)`` segment ids (broadcast over channels).
        n_segments (int or sequence): the output width ``S`` (each item's features are the ids
            present in its mask), or each item's segment count (ids must be exactly ``0..n_i-1``;
            width ``max n_i``).
        ids (sequence, optional): item ids seeding the samples; needed unless ``samples`` is given.
        samples (sequence of ndarray, optional): per item a bool ``(n_samples_i, F_i)`` array over
            the item's present ids in ascending order, used as is.
        n_samples (int): samples drawn per item (Bernoulli(0.5) per entry).
        seed (int): global seed (stage ``"lime"``).
        baseline (float or "mean"): occlusion value, or the mean of the item being explained.
        kernel (str): ``"input_cosine"`` (between flattened inputs) or ``"binary_cosine"``
            (between binary vectors and all-ones).
        kernel_width (float): ``w`` in the weight ``exp(-d²/(2w²))``.
        surrogate (str): ``"ols"`` (LinearRegression) or ``"ridge"`` (Ridge, alpha 1), both with
            intercept and sample weights.
        include_unperturbed (bool): set the first drawn row to all ones.
        batch_size (int, optional): perturbed inputs per forward call (halved on out-of-memory);
            ``None`` evaluates everything at once.

    Returns:
        LimeResult: coefficients ``(N, S)`` and per-item fit statistics.
    """
    if inputs.dim() < 3:
        raise ValueError(f"inputs must be (N, C, *spatial), got shape {tuple(inputs.shape)}")
    if tuple(masks.shape) != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(f"masks of shape {tuple(masks.shape)} do not match inputs of shape {tuple(inputs.shape)}")
    if tuple(targets.shape) != (inputs.shape[0],):
        raise ValueError(f"targets must have shape ({inputs.shape[0]},), got {tuple(targets.shape)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got '{kernel}'")
    _surrogate(surrogate)  # validate the name before any model call
    masks_np = masks.detach().cpu().numpy().astype(np.int64)
    features, width = _item_segments(masks_np, n_segments)
    n_features = [len(item_features) for item_features in features]
    if samples is None:
        if ids is None or len(ids) != inputs.shape[0]:
            raise ValueError("ids: one id per item is needed to draw seeded LIME samples")
        samples = _draw_samples(ids, n_features, n_samples, seed, include_unperturbed)
    else:
        samples = _check_samples(samples, n_features)

    baselines = _baselines(inputs, baseline)
    # Binary vectors in segment-id space (ids an item lacks stay 0: no pixel gathers them).
    keep = np.zeros((sum(len(rows) for rows in samples), width), dtype=bool)
    owner = np.repeat(np.arange(len(samples)), [len(rows) for rows in samples])
    starts = np.cumsum([0] + [len(rows) for rows in samples])
    for item, rows in enumerate(samples):
        keep[starts[item] : starts[item + 1], features[item]] = rows
    device = inputs.device
    outputs = _model_outputs(
        forward,
        inputs,
        targets.to(device=device, dtype=torch.long),
        masks.to(device=device, dtype=torch.long),
        baselines,
        torch.from_numpy(keep).to(device),
        torch.from_numpy(owner).to(device),
        batch_size,
    )

    values = inputs.detach().double().cpu().numpy()
    baseline_values = baselines.detach().double().cpu().numpy()
    n_items = inputs.shape[0]
    result = LimeResult(
        coefficients=np.full((n_items, width), ABSENT),
        intercepts=np.empty(n_items),
        r2=np.empty(n_items),
        local_predictions=np.empty(n_items),
    )
    for item, rows in enumerate(samples):
        if kernel == "input_cosine":
            distances = _input_cosine_distances(
                values[item], masks_np[item], features[item], baseline_values[item], rows
            )
        else:
            distances = _binary_cosine_distances(rows)
        weights = np.exp(-(distances**2) / (2.0 * kernel_width**2))
        design = rows.astype(np.float64)
        targets_item = outputs[starts[item] : starts[item + 1]]
        model = _surrogate(surrogate).fit(design, targets_item, sample_weight=weights)
        result.coefficients[item, features[item]] = model.coef_
        result.intercepts[item] = model.intercept_
        result.r2[item] = model.score(design, targets_item, sample_weight=weights)
        result.local_predictions[item] = model.intercept_ + model.coef_.sum()
    return result


def lime_coefficients(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    n_segments: int | Sequence[int] | np.ndarray,
    **settings,
) -> np.ndarray:
    """The ``(N, S)`` LIME coefficients (``ABSENT`` for absent ids); ``settings`` as ``lime_explain``."""
    return lime_explain(forward, inputs, targets, masks, n_segments, **settings).coefficients
