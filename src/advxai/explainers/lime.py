"""LIME with segments as interpretable features, one implementation for both domains.

The two domains differ only in settings (docs/method.md §3, §7; docs/decisions.md, decision 7):

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
images; the surrogates are weighted least-squares solves in torch (:func:`weighted_linear_fits`,
equal to scikit-learn's fits without its per-call overhead); each item gets its own surrogate
over its *own* segments (no dummy features for ids it
lacks, docs/decisions.md, decision 19). Samples come from ``advxai.seeding.numpy_rng(seed, "lime", id)``, so
they do not depend on batch composition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from advxai.batching import ScratchTensors, run_batched
from advxai.constants import IMAGE_LIME_SAMPLES, LIME_KERNEL_WIDTH
from advxai.seeding import numpy_rng
from advxai.segments import ABSENT
from advxai.types import Forward

KERNELS = ("input_cosine", "binary_cosine")
SURROGATES = ("ols", "ridge")
_COSINE_EPS = 1e-8  # torch.nn.CosineSimilarity's guard against zero norms



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


def _item_runs(rows: Sequence[int], owner: np.ndarray) -> list[tuple[int, int, int]]:
    """``(item, first row, end row)`` of each run of consecutive rows of one item, in order.

    A chunk's padding repeats its last row (``run_batched``): a repeat starts a run of its own.
    """
    found: list[tuple[int, int, int]] = []
    for position, row in enumerate(rows):
        if found and owner[row] == found[-1][0] and row == rows[position - 1] + 1:
            found[-1] = (found[-1][0], found[-1][1], row + 1)
        else:
            found.append((int(owner[row]), row, row + 1))
    return found


def _model_outputs(
    forward: Forward,
    inputs: torch.Tensor,
    targets: Sequence[int],
    masks: torch.Tensor,
    baselines: torch.Tensor,
    keep: torch.Tensor,
    owner: np.ndarray,
    batch_size: int | None,
) -> np.ndarray:
    """Target outputs of all perturbed inputs; row ``r`` keeps segment ids where ``keep[r]`` is 1, of item ``owner[r]``.

    Rows are numbered on the host, and an item's rows are consecutive, so a chunk is a few runs of
    one item each: every run is built by one lookup of its binary vectors through the item's
    segment map and one product with the item's own image, written straight into the chunk's
    input (no per-row copies of the image, no index tensors sent to the device).
    """
    flat_masks = masks.flatten(1)
    spatial = masks.shape[1:]
    occlusion = baselines.tolist()  # once, before the loop

    # Buffers reused by every chunk (the perturbed inputs and the per-pixel keep flags): fresh
    # tensors of this size per chunk tripled the overhead on a CPU once a model had run
    # (benchmarks/README.md, "LIME's buffers").
    scratch = ScratchTensors(inputs.device)

    def evaluate(rows: torch.Tensor) -> torch.Tensor:
        perturbed = scratch("perturbed", (len(rows), *inputs.shape[1:]), inputs.dtype)
        keep_flags = scratch("keep_flags", (len(rows), flat_masks.shape[1]), inputs.dtype)
        gathered, written = [], 0
        for item, first, end in _item_runs(rows.tolist(), owner):
            # 0/1 per pixel: x·1 + b·0 = x and x·0 + b·1 = b exactly, the values a `where` would pick
            # `gather` with the map expanded over the run's rows: the same values as an
            # `index_select` along dim 1, 1.7x faster on a CPU (benchmarks/README.md)
            segment_of_pixel = flat_masks[item].expand(end - first, -1)
            flags = torch.gather(keep[first:end], 1, segment_of_pixel, out=keep_flags[written : written + end - first])
            pixels = flags.view(end - first, 1, *spatial)
            run = torch.mul(pixels, inputs[item], out=perturbed[written : written + end - first])
            if occlusion[item] != 0.0:
                run.add_((1.0 - pixels) * occlusion[item])
            gathered.append((written, end - first, targets[item]))
            written += end - first
        with torch.no_grad():
            outputs = forward(perturbed)
        return torch.cat([outputs[start : start + count, target] for start, count, target in gathered])

    rows = torch.arange(len(owner))  # host row numbers: only their ranges reach the device
    return run_batched(evaluate, rows, batch_size or max(1, len(rows))).double().cpu().numpy()


@dataclass
class LinearFits:
    """Weighted linear surrogates of a batch of items: ``(N, F)`` coefficients, ``(N,)`` intercepts and R²."""

    coefficients: np.ndarray
    intercepts: np.ndarray
    r2: np.ndarray


RIDGE_ALPHA = 1.0  # audioLIME's Ridge()


def _check_surrogate(surrogate: str) -> None:
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got '{surrogate}'")


def weighted_linear_fits(design: np.ndarray, targets: np.ndarray, weights: np.ndarray, surrogate: str) -> LinearFits:
    """Weighted least squares with intercept for a batch of items, in float64, as scikit-learn fits them.

    As ``LinearRegression`` (``"ols"``) and ``Ridge(alpha=1)`` (``"ridge"``) with ``sample_weight``:
    centre the design and targets on their weighted means, scale each row by ``sqrt(w)``, then
    solve the least-squares problem with the minimum-norm SVD solver (LAPACK ``gelsd``, as
    scikit-learn's ``scipy.linalg.lstsq``) or the ridge normal equations ``(AᵀA + αI) β = Aᵀb``;
    the intercept restores the means. Zero columns (an item padded to the batch's widest design)
    get coefficient 0 from either solve, so padding does not change an item's fit. R² is
    scikit-learn's weighted ``score`` (1 for a perfect fit of constant targets, else 0 there).
    An item's results in a batch can differ in the last bits from its results alone (reduction
    kernels vary with the batch's shape); :func:`lime_explain` therefore solves one item at a time.

    Args:
        design (ndarray): ``(N, n, F)`` features of each item's ``n`` samples.
        targets (ndarray): ``(N, n)`` regressed outputs.
        weights (ndarray): ``(N, n)`` sample weights.
        surrogate (str): ``"ols"`` or ``"ridge"``.
    """
    _check_surrogate(surrogate)
    x, y, w = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (design, targets, weights))
    total = w.sum(1, keepdim=True)
    x_mean = (w[..., None] * x).sum(1) / total
    y_mean = (w * y).sum(1, keepdim=True) / total
    root = w.sqrt()
    centred_x = (x - x_mean[:, None]) * root[..., None]
    centred_y = ((y - y_mean) * root)[..., None]
    if surrogate == "ols":
        coefficients = torch.linalg.lstsq(centred_x, centred_y, driver="gelsd").solution[..., 0]
    else:
        gram = centred_x.mT @ centred_x + RIDGE_ALPHA * torch.eye(x.shape[2], dtype=x.dtype)
        coefficients = torch.linalg.solve(gram, centred_x.mT @ centred_y)[..., 0]
    intercepts = y_mean[:, 0] - (x_mean * coefficients).sum(1)
    predictions = intercepts[:, None] + (x @ coefficients[..., None])[..., 0]
    residual = (w * (y - predictions).square()).sum(1)
    spread = (w * (y - y_mean).square()).sum(1)
    r2 = torch.where(spread > 0, 1 - residual / spread.clamp(min=torch.finfo(x.dtype).tiny), (residual == 0).double())
    return LinearFits(coefficients.numpy(), intercepts.numpy(), r2.numpy())


def lime_explain(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    n_segments: int | Sequence[int] | np.ndarray,
    *,
    ids: Sequence[str | int] | None = None,
    samples: Sequence[np.ndarray] | None = None,
    n_samples: int = IMAGE_LIME_SAMPLES,
    seed: int = 0,
    baseline: float | str = 0.0,
    kernel: str = "input_cosine",
    kernel_width: float = LIME_KERNEL_WIDTH,
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
    _check_lime_arguments(inputs, targets, masks, kernel, surrogate)  # before any model call
    masks_np = masks.detach().cpu().numpy().astype(np.int64)
    features, width = _item_segments(masks_np, n_segments)
    samples = _item_samples(samples, ids, [len(item_features) for item_features in features], n_samples, seed, include_unperturbed)
    baselines = _baselines(inputs, baseline)
    keep, owner, starts = _segment_space_rows(samples, features, width)
    device, classes = inputs.device, [int(target) for target in targets.tolist()]
    keep_t = torch.from_numpy(keep).to(device=device, dtype=inputs.dtype)
    outputs = _model_outputs(forward, inputs, classes, masks.to(device=device, dtype=torch.long), baselines, keep_t, owner, batch_size)
    distance = _kernel_distances(kernel, inputs, masks_np, features, baselines)
    return _fit_items(samples, features, width, outputs, starts, distance, kernel_width, surrogate)


def _check_lime_arguments(inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, kernel: str, surrogate: str) -> None:
    """One clear error for each mismatched shape or unknown kernel or surrogate."""
    if inputs.dim() < 3:
        raise ValueError(f"inputs must be (N, C, *spatial), got shape {tuple(inputs.shape)}")
    if tuple(masks.shape) != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(f"masks of shape {tuple(masks.shape)} do not match inputs of shape {tuple(inputs.shape)}")
    if tuple(targets.shape) != (inputs.shape[0],):
        raise ValueError(f"targets must have shape ({inputs.shape[0]},), got {tuple(targets.shape)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got '{kernel}'")
    _check_surrogate(surrogate)


def _item_samples(samples, ids, n_features: list[int], n_samples: int, seed: int, include_unperturbed: bool) -> list[np.ndarray]:
    """The given samples, checked, or each item's seeded draw (which needs one id per item)."""
    if samples is not None:
        return _check_samples(samples, n_features)
    if ids is None or len(ids) != len(n_features):
        raise ValueError("ids: one id per item is needed to draw seeded LIME samples")
    return _draw_samples(ids, n_features, n_samples, seed, include_unperturbed)


def _segment_space_rows(samples: Sequence[np.ndarray], features: Sequence[np.ndarray], width: int):
    """Samples as binary rows over segment ids (ids an item lacks stay 0), each row's item, each item's first row."""
    keep = np.zeros((sum(len(rows) for rows in samples), width), dtype=bool)
    owner = np.repeat(np.arange(len(samples)), [len(rows) for rows in samples])
    starts = np.cumsum([0] + [len(rows) for rows in samples])
    for item, rows in enumerate(samples):
        keep[starts[item] : starts[item + 1], features[item]] = rows
    return keep, owner, starts


def _kernel_distances(kernel: str, inputs: torch.Tensor, masks_np: np.ndarray, features, baselines: torch.Tensor):
    """``distance(item, rows)``: the kernel's distance of each sample of one item from the unperturbed item."""
    if kernel != "input_cosine":
        return lambda _item, rows: _binary_cosine_distances(rows)
    values = inputs.detach().double().cpu().numpy()
    baseline_values = baselines.detach().double().cpu().numpy()
    return lambda item, rows: _input_cosine_distances(values[item], masks_np[item], features[item], baseline_values[item], rows)


def _fit_items(samples, features, width: int, outputs, starts, distance, kernel_width: float, surrogate: str) -> LimeResult:
    """Each item's weighted surrogate fit, its coefficients placed at the item's segment ids (ABSENT elsewhere)."""
    n_items = len(samples)  # one array per item, checked
    result = LimeResult(coefficients=np.full((n_items, width), ABSENT), intercepts=np.empty(n_items), r2=np.empty(n_items),
                        local_predictions=np.empty(n_items))
    # One solve per item at its own shape: solving items of one shape together gave R² values a
    # last bit apart from the item's solve alone on this CPU, and an item's fit must not depend on
    # which items share its batch (docs/exactness.md). A solve costs well under a millisecond.
    for item, rows in enumerate(samples):
        weights = np.exp(-(distance(item, rows) ** 2) / (2.0 * kernel_width**2))
        item_outputs = outputs[None, starts[item] : starts[item + 1]]
        fit = weighted_linear_fits(rows[None].astype(np.float64), item_outputs, weights[None], surrogate)
        result.coefficients[item, features[item]] = fit.coefficients[0]
        result.intercepts[item] = fit.intercepts[0]
        result.r2[item] = fit.r2[0]
        result.local_predictions[item] = fit.intercepts[0] + fit.coefficients[0].sum()
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
