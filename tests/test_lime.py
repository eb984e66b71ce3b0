"""LIME against captum's ``Lime`` (images), a direct weighted Ridge fit (audio) and a full-input cosine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import Lime
from captum.attr._core.lime import get_exp_kernel_similarity_function
from messages import exactly
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import pairwise_distances
from torch import nn

from advxai.explainers import lime_coefficients, lime_explain
from advxai.explainers.lime import SURROGATES, _input_cosine_distances, _item_runs, weighted_linear_fits
from advxai.seeding import numpy_rng
from advxai.segments import ABSENT

SIDE = 16


def tiny_cnn(n_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64, n_classes)
    ).eval()


def image_masks() -> torch.Tensor:
    """Item 0: 4×4 rectangles (16 ids); item 1: an irregular 5-segment map (ids 0..4)."""
    block = torch.arange(SIDE) // 4
    rect = block[:, None] * 4 + block[None, :]
    rows, cols = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    irregular = ((rows + 2 * cols) // 10).clamp(max=4)
    return torch.stack([rect, irregular])


def captum_draws(seed: int, n_samples: int, n_features: int) -> np.ndarray:
    """The binary vectors captum's ``default_perturb_func`` draws after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    draws = [torch.bernoulli(torch.ones(1, n_features) * 0.5) for _ in range(n_samples)]
    return torch.cat(draws).bool().numpy()


def test_image_lime_matches_captum():
    model = tiny_cnn()
    inputs = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([2, 1])
    masks = image_masks()
    n_samples = 64
    lime = Lime(
        model,
        interpretable_model=SkLearnLinearRegression(),
        similarity_func=get_exp_kernel_similarity_function("cosine", 0.25),
    )
    expected = np.full((2, 16), ABSENT)
    samples = []
    for item in range(2):
        seed = 10 + item
        torch.manual_seed(seed)
        feature_mask = masks[item].expand(1, 3, SIDE, SIDE)
        attribution = lime.attribute(
            inputs[item : item + 1], target=int(targets[item]), n_samples=n_samples,
            feature_mask=feature_mask, perturbations_per_eval=16, baselines=0,
        )
        n_features = int(masks[item].max()) + 1
        for segment in range(n_features):
            expected[item, segment] = attribution[0, 0][masks[item] == segment][0]
        samples.append(captum_draws(seed, n_samples, n_features))
    ours = lime_coefficients(
        model, inputs, targets, masks, 16, samples=samples, baseline=0.0, kernel="input_cosine",
        kernel_width=0.25, surrogate="ols", batch_size=16,
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)
    assert (ours[1, 5:] == ABSENT).all()


def audio_forward(inputs: torch.Tensor) -> torch.Tensor:
    """A detector returning ``[1 - p, p]`` (as the audio caller supplies)."""
    weights = torch.linspace(-1.0, 1.0, inputs[0].numel()).view(inputs.shape[1:])
    p = torch.sigmoid((inputs * weights).flatten(1).sum(1) / 4)
    return torch.stack([1 - p, p], dim=1)


def audio_grid(n_items: int) -> torch.Tensor:
    """4 frequency bands × 5 time blocks on a (8 bins, 10 frames) excerpt, id = 4·t + f."""
    band = torch.arange(8) // 2
    block = torch.arange(10) // 2
    return (4 * block[None, :] + band[:, None]).expand(n_items, 8, 10).clone()


def reference_audio_lime(x: torch.Tensor, mask: torch.Tensor, rows: np.ndarray, target: int) -> tuple[np.ndarray, float]:
    """audioLIME's recipe, one sample at a time: mean occlusion, binary cosine kernel, weighted
    Ridge; its coefficients and its weighted R² on the samples (lime's ``score``)."""
    occlusion = x.mean()
    outputs = []
    for row in rows:
        keep = torch.from_numpy(row)[mask]
        perturbed = torch.where(keep, x, occlusion)
        outputs.append(float(audio_forward(perturbed[None])[0, target]))
    distances = pairwise_distances(rows.astype(float), np.ones((1, rows.shape[1])), metric="cosine").ravel()
    weights = np.sqrt(np.exp(-(distances**2) / 0.25**2))
    ridge = Ridge(alpha=1.0).fit(rows, outputs, sample_weight=weights)
    return ridge.coef_, ridge.score(rows, outputs, sample_weight=weights)


def test_audio_lime_matches_weighted_ridge():
    inputs = torch.randn(2, 1, 8, 10, generator=torch.Generator().manual_seed(2)) + 3.0
    masks = audio_grid(2)
    targets = torch.tensor([1, 1])
    rng = np.random.default_rng(0)
    samples = [rng.random((40, 20)) < 0.5 for _ in range(2)]
    for rows in samples:
        rows[0] = True
    ours = lime_explain(
        audio_forward, inputs, targets, masks, 20, samples=samples, baseline="mean", kernel="binary_cosine",
        kernel_width=0.25, surrogate="ridge", batch_size=7,
    )
    for item in range(2):
        coefficients, r2 = reference_audio_lime(inputs[item], masks[item], samples[item], 1)
        np.testing.assert_allclose(ours.coefficients[item], coefficients, rtol=1e-6, atol=1e-9)
        assert ours.r2[item] == pytest.approx(r2, rel=1e-6)


def test_seeded_samples_do_not_depend_on_batch_and_start_unperturbed():
    inputs = torch.randn(3, 1, 8, 10, generator=torch.Generator().manual_seed(3))
    masks = audio_grid(3)
    targets = torch.tensor([1, 0, 1])
    seen: list[torch.Tensor] = []

    def recording_forward(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return audio_forward(batch)

    settings = dict(n_samples=32, seed=4, baseline="mean", kernel="binary_cosine", surrogate="ridge",
                    include_unperturbed=True)
    together = lime_coefficients(
        recording_forward, inputs, targets, masks, 20, ids=["a", "b", "c"], batch_size=32, **settings
    )
    assert torch.equal(seen[0][0], inputs[0]) and torch.equal(seen[1][0], inputs[1])  # row 0 of each item
    alone = [
        lime_coefficients(
            audio_forward, inputs[i : i + 1], targets[i : i + 1], masks[i : i + 1], 20, ids=[name], batch_size=5,
            **settings,
        )
        for i, name in enumerate(["a", "b", "c"])
    ]
    np.testing.assert_allclose(np.concatenate(alone), together, rtol=1e-5, atol=1e-8)  # float32 forwards


def test_segment_sums_cosine_equals_full_input_cosine():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(3, SIDE, SIDE, generator=generator, dtype=torch.float64)
    mask = image_masks()[1]
    features = np.arange(5)
    rows = np.random.default_rng(1).random((20, 5)) < 0.5
    rows[0] = False  # everything occluded
    baseline = 0.3
    occluded = torch.tensor(baseline, dtype=torch.float64)
    perturbed = [torch.where(torch.from_numpy(row)[mask], x, occluded) for row in rows]
    expected = [1 - torch.nn.functional.cosine_similarity(x.flatten(), p.flatten(), dim=0).item() for p in perturbed]
    ours = _input_cosine_distances(x.numpy(), mask.numpy(), features, baseline, rows)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_per_item_segment_counts_are_checked():
    masks = image_masks()
    inputs, targets = torch.zeros(2, 3, SIDE, SIDE), torch.tensor([0, 0])
    with pytest.raises(ValueError, match="item 1"):
        lime_coefficients(tiny_cnn(), inputs, targets, masks, [16, 6], ids=[0, 1], n_samples=8)
    with pytest.raises(ValueError, match="outside"):
        lime_coefficients(tiny_cnn(), inputs, targets, masks, 8, ids=[0, 1], n_samples=8)
    with pytest.raises(ValueError, match="ids"):
        lime_coefficients(tiny_cnn(), inputs, targets, masks, 16, n_samples=8)
    with pytest.raises(ValueError, match="surrogate"):
        lime_coefficients(tiny_cnn(), inputs, targets, masks, 16, ids=[0, 1], surrogate="lasso")


@pytest.mark.parametrize(("surrogate", "reference"), [("ols", LinearRegression), ("ridge", lambda: Ridge(alpha=1.0))])
def test_batched_weighted_fits_equal_scikit_learn(surrogate, reference):
    """One batched solve equals scikit-learn's per-item fits, also for a padded and a rank-deficient design."""
    rng = np.random.default_rng(5)
    n_items, n_samples, n_columns = 4, 40, 6
    design = (rng.random((n_items, n_samples, n_columns)) < 0.5).astype(float)
    design[1, :, 4:] = 0.0  # item 1 has 4 features, padded to 6
    design[2, :, 5] = design[2, :, 0]  # item 2: two identical columns (the minimum-norm solution splits them)
    targets = design @ rng.normal(size=n_columns) + rng.normal(scale=0.1, size=(n_items, n_samples))
    targets[3] = 2.5  # constant outputs: a perfect fit, R² 1
    weights = rng.random((n_items, n_samples)) + 0.1
    fits = weighted_linear_fits(design, targets, weights, surrogate)
    for item in range(n_items):
        columns = 4 if item == 1 else n_columns
        model = reference().fit(design[item, :, :columns], targets[item], sample_weight=weights[item])
        np.testing.assert_allclose(fits.coefficients[item, :columns], model.coef_, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(fits.intercepts[item], model.intercept_, rtol=1e-9, atol=1e-10)
        score = model.score(design[item, :, :columns], targets[item], sample_weight=weights[item])
        np.testing.assert_allclose(fits.r2[item], score, rtol=1e-9, atol=1e-10)
    np.testing.assert_array_equal(fits.coefficients[1, 4:], 0.0)


# --- known answers and pinned errors (each written against a surviving mutant, tests/README.md) ---

SIGNAL = 12  # 1-D signals (N, C, L): the smallest inputs LIME takes


def signal_masks() -> torch.Tensor:
    """Three items of 12 samples with 3, 4 and 2 segments, as ``uint8`` maps (small SLIC maps are stored so)."""
    return torch.tensor(
        [[0] * 4 + [1] * 4 + [2] * 4, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 0], [1] * 6 + [0] * 6], dtype=torch.uint8
    )


def tiny_signal_model() -> nn.Module:
    """A float64 1-D convolutional classifier of two classes for the 12-sample signals."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(30, 2)).double().eval()


def linear_forward(weights: torch.Tensor, constant: float):
    """``f(x)[:, k] = (k + 1)·Σ weights·x + constant``: every LIME surrogate of it fits exactly."""

    def forward(batch: torch.Tensor) -> torch.Tensor:
        total = (batch * weights).flatten(1).sum(1, keepdim=True)
        return total * torch.arange(1, 3, dtype=batch.dtype) + constant

    return forward


@pytest.mark.parametrize("kernel", ["input_cosine", "binary_cosine"])
@pytest.mark.parametrize("baseline", [1.0, 0.1])
def test_linear_model_is_fitted_exactly(kernel, baseline):
    """A linear model's output is linear in the binary vector z: segment s adds ``A_s - b·B_s`` when kept
    (``A_s = Σ_s w·x``, ``B_s = Σ_s w``) and the intercept is ``c + b·Σ B_s``. OLS recovers them for
    any weights, with R² 1 and a local prediction of ``f(x)``; in float64, through 1-D signals,
    three items sharing a chunk and a baseline of 1 (the occlusion step that baseline 0 skips)."""
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(3, 2, SIGNAL, generator=generator, dtype=torch.float64)
    weights = torch.randn(2, SIGNAL, generator=generator, dtype=torch.float64)
    constant, targets, masks = 0.75, torch.tensor([1, 0, 1]), signal_masks()
    forward = linear_forward(weights, constant)
    fit = lime_explain(forward, inputs, targets, masks, 4, ids=["a", "b", "c"], n_samples=24, baseline=baseline,
                       kernel=kernel, surrogate="ols", batch_size=None)
    for item in range(3):
        scale = int(targets[item]) + 1
        ids = masks[item].long()
        present = torch.unique(ids)
        kept = torch.zeros(4, dtype=torch.float64).index_add_(0, ids, (weights * inputs[item]).sum(0))
        mass = torch.zeros(4, dtype=torch.float64).index_add_(0, ids, weights.sum(0))
        expected = np.full(4, ABSENT)
        expected[present] = (scale * (kept - baseline * mass))[present].numpy()
        np.testing.assert_allclose(fit.coefficients[item], expected, rtol=1e-9, atol=1e-12)
        intercept = scale * baseline * float(mass.sum()) + constant
        assert fit.intercepts[item] == pytest.approx(intercept, rel=1e-9, abs=1e-12)
        assert fit.local_predictions[item] == pytest.approx(float(forward(inputs[item : item + 1])[0, scale - 1]), rel=1e-9)
        assert fit.r2[item] == pytest.approx(1.0, abs=1e-9)


def test_chunks_that_split_items_give_the_unsplit_outputs_without_warnings():
    """Chunks of 5 rows start inside items and hold several items' runs (buffers written through
    ``out=``); the outputs equal one chunk of everything, and no resized-output warning is raised."""
    inputs = torch.randn(3, 2, SIGNAL, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    settings = dict(ids=[0, 1, 2], n_samples=7, baseline="mean", kernel="binary_cosine", surrogate="ridge")
    forward = tiny_signal_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunked = lime_explain(forward, inputs, torch.tensor([0, 1, 0]), signal_masks(), 4, batch_size=5, **settings)
    whole = lime_explain(forward, inputs, torch.tensor([0, 1, 0]), signal_masks(), 4, batch_size=None, **settings)
    np.testing.assert_array_equal(chunked.coefficients, whole.coefficients)
    np.testing.assert_array_equal(chunked.r2, whole.r2)


def test_item_runs_split_a_chunk_by_item_and_at_padding():
    owner = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert _item_runs([1, 2, 3, 4, 5, 6], owner) == [(0, 1, 3), (1, 3, 5), (2, 5, 7)]
    assert _item_runs([6, 7, 7, 7], owner) == [(2, 6, 8), (2, 7, 8), (2, 7, 8)]  # padding repeats row 7
    assert _item_runs([0], owner) == [(0, 0, 1)]


def test_default_draws_are_seed_0_without_the_unperturbed_row():
    inputs = torch.randn(1, 2, SIGNAL, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    masks, forward = signal_masks()[:1], tiny_signal_model()
    seen: list[torch.Tensor] = []

    def recording(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return forward(batch)

    lime_explain(recording, inputs, torch.tensor([1]), masks, 3, ids=["x"], n_samples=6, batch_size=None)
    drawn = numpy_rng(0, "lime", "x").random((6, 3)) < 0.5
    kept = torch.from_numpy(drawn)[:, masks[0].long()]  # (6, L), broadcast over channels
    np.testing.assert_array_equal(seen[0].numpy(), torch.where(kept[:, None], inputs[0], 0.0).numpy())


def test_nonzero_sample_entries_keep_their_segment():
    """Samples given as 0/255 images of masks read as off/on, as their bool values."""
    inputs = torch.randn(1, 2, SIGNAL, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    rows = np.random.default_rng(3).random((9, 3)) < 0.5
    model, settings = tiny_signal_model(), dict(kernel="binary_cosine", batch_size=None)
    as_bytes = lime_explain(model, inputs, torch.tensor([0]), signal_masks()[:1], 3, samples=[rows.astype(np.uint8) * 255],
                            **settings)
    as_bool = lime_explain(model, inputs, torch.tensor([0]), signal_masks()[:1], 3, samples=[rows], **settings)
    np.testing.assert_array_equal(as_bytes.coefficients, as_bool.coefficients)


def test_fits_are_solved_in_float64_whatever_the_input_dtype():
    rng = np.random.default_rng(6)
    design = (rng.random((2, 30, 4)) < 0.5).astype(np.float32)
    targets = (design @ rng.normal(size=4) + rng.normal(scale=0.1, size=(2, 30))).astype(np.float32)
    weights = (rng.random((2, 30)) + 0.1).astype(np.float32)
    for surrogate in SURROGATES:
        single = weighted_linear_fits(design, targets, weights, surrogate)
        double = weighted_linear_fits(*(a.astype(np.float64) for a in (design, targets, weights)), surrogate)
        assert single.coefficients.dtype == np.float64
        np.testing.assert_array_equal(single.coefficients, double.coefficients)
        np.testing.assert_array_equal(single.r2, double.r2)


def test_shape_checks_accept_their_smallest_valid_inputs():
    """Two samples per item and an item with a single segment are valid."""
    inputs = torch.randn(1, 2, SIGNAL, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    model, one_segment = tiny_signal_model(), torch.zeros(1, SIGNAL, dtype=torch.long)
    fit = lime_explain(model, inputs, torch.tensor([0]), one_segment, 1,
                       samples=[np.array([[True], [False], [True], [False]])], batch_size=None)
    assert fit.coefficients.shape == (1, 1)
    two_rows = lime_explain(model, inputs, torch.tensor([0]), signal_masks()[:1], 3,
                            samples=[np.array([[True, False, True], [False, True, False]])], batch_size=None)
    assert np.isfinite(two_rows.coefficients).all()


def _call(masks=None, n_segments=4, inputs=None, targets=None, **settings):
    inputs = torch.zeros(3, 2, SIGNAL) if inputs is None else inputs
    targets = torch.zeros(len(inputs), dtype=torch.long) if targets is None else targets
    masks = signal_masks() if masks is None else masks
    settings = {"ids": list(range(len(inputs))), "n_samples": 4, **settings}
    return lime_explain(linear_forward(torch.ones(2, SIGNAL), 0.0), inputs, targets, masks, n_segments, **settings)


def _masks_with(first_item_ids: list[int]) -> torch.Tensor:
    """One item whose mask holds exactly ``first_item_ids`` (each over 12 // len samples)."""
    return torch.tensor(first_item_ids).repeat_interleave(SIGNAL // len(first_item_ids))[None]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(inputs=torch.zeros(3, SIGNAL)), "inputs must be (N, C, *spatial), got shape (3, 12)"),
        (dict(masks=torch.zeros(3, 5, dtype=torch.long)), "masks of shape (3, 5) do not match inputs of shape (3, 2, 12)"),
        (dict(targets=torch.zeros(2, dtype=torch.long)), "targets must have shape (3,), got (2,)"),
        (dict(kernel="euclidean"), "kernel must be one of ('input_cosine', 'binary_cosine'), got 'euclidean'"),
        (dict(baseline="median"), "baseline must be a number or 'mean', got 'median'"),
        (dict(n_segments=[3, 4]), "n_segments: expected one count per item (3), got shape (2,)"),
        (dict(ids=None), "ids: one id per item is needed to draw seeded LIME samples"),
        (dict(ids=[0, 1]), "ids: one id per item is needed to draw seeded LIME samples"),
        (dict(samples=[np.ones((4, 3))] * 2), "samples: expected one array per item (3), got 2"),
        (dict(samples=[np.ones((1, 3)), np.ones((4, 4)), np.ones((4, 2))]),
         "samples: item 0 needs shape (n_samples >= 2, 3), got (1, 3)"),
        (dict(samples=[np.ones((4, 3)), np.ones(4), np.ones((4, 2))]),
         "samples: item 1 needs shape (n_samples >= 2, 4), got (4,)"),
        (dict(samples=[np.ones((4, 3)), np.ones((4, 4)), np.ones((4, 3))]),
         "samples: item 2 needs shape (n_samples >= 2, 2), got (4, 3)"),
    ],
)
def test_argument_errors(arguments, message):
    with pytest.raises(ValueError, match=exactly(message)):
        _call(**arguments)


@pytest.mark.parametrize(
    ("ids", "n_segments", "message"),
    [
        ([-1, 1], 4, "masks: item 0 has segment ids -1..1 outside 0..3"),
        ([0, 2, 4], 4, "masks: item 0 has segment ids 0..4 outside 0..3"),
        ([0, 2], [2], "masks: item 0 should have the segment ids 0..1 (n_segments), but has 2 ids in 0..2"),
        ([0, 2], [3], "masks: item 0 should have the segment ids 0..2 (n_segments), but has 2 ids in 0..2"),
        ([-1, 1], [2], "masks: item 0 should have the segment ids 0..1 (n_segments), but has 2 ids in -1..1"),
        ([0, 1, 3], [3], "masks: item 0 should have the segment ids 0..2 (n_segments), but has 3 ids in 0..3"),
    ],
)
def test_segment_id_errors(ids, n_segments, message):
    """Each condition alone: an id below 0, the largest id at the width, a gap, too few ids, a negative id;
    the range named is the lowest and highest id."""
    masks = _masks_with(ids)
    with pytest.raises(ValueError, match=exactly(message)):
        _call(masks=masks, n_segments=n_segments, inputs=torch.zeros(1, 2, SIGNAL))
