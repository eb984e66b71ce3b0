"""LIME against captum's ``Lime`` (images), a direct weighted Ridge fit (audio) and a full-input cosine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import Lime
from captum.attr._core.lime import get_exp_kernel_similarity_function
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import pairwise_distances
from torch import nn

from advxai.explainers import lime_coefficients, lime_explain
from advxai.explainers.lime import _input_cosine_distances, weighted_linear_fits
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
