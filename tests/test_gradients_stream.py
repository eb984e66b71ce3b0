"""The gradient families' single stream: every pass full, and its reductions equal to direct ones.

The engine evaluates an item's plain input, its J noisy copies and every IG point of each in one
stream of fixed-shape passes and reduces them as they complete. These tests compare it with the
maps computed directly, one copy at a time, from the same noise: the stream must change nothing
but the speed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from messages import exactly
from stand_in_stem import stem_model
from torch import nn

from advxai.explainers.aggregate import aggregate
from advxai.explainers.gradient_stream import (
    FamilyStream,
    GroupQueue,
    family_maps,
    integration_points,
    pass_gradients,
    target_gradients,
)
from advxai.explainers.gradients import draw_noise, explain_gradient_family, gradient_attributions, noise_ensemble
from advxai.explainers.guided import guided_gradients
from advxai.explainers.stem import find_linear_stem
from advxai.seeding import torch_generator

N_ITEMS, SIDE, N_CLASSES = 3, 12, 4


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(45, N_CLASSES)
    ).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(N_ITEMS, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 1])


def direct_map(model: nn.Module, x: torch.Tensor, target: int, method: str, ig_steps: int, baseline: float = 0.0) -> torch.Tensor:
    """One input's attribution, one pass per gradient, summed in float64 step by step
    (IG: ``(x - b)·Σ_k w_k ∇f(b + α_k (x - b))``)."""
    targets = torch.tensor([target])
    if method == "gbp":
        return guided_gradients(model, x[None], targets)[0].double()
    if method == "sal":
        return target_gradients(model, x[None], targets)[0].double()
    alphas, weights = integration_points(ig_steps)
    total = torch.zeros_like(x, dtype=torch.float64)
    for alpha, weight in zip(alphas, weights):
        point = baseline + float(alpha) * (x - baseline)
        total += float(weight) * target_gradients(model, point[None], targets)[0].double()
    return (x.double() - baseline) * total


@pytest.mark.parametrize("method", ["sal", "ig", "gbp"])
@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_stream_equals_direct_maps(model, batch, method, batch_size):
    inputs, targets = batch
    n_noise, ig_steps = 4, 5
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], n_noise, 0.5, seed=3)
    plain = gradient_attributions(model, inputs, targets, method, ig_steps=ig_steps, batch_size=batch_size)
    ensembles = noise_ensemble(model, inputs, targets, method, noise, ig_steps=ig_steps, batch_size=batch_size)
    for item in range(N_ITEMS):
        target = int(targets[item])
        expected = direct_map(model, inputs[item], target, method, ig_steps)
        torch.testing.assert_close(plain[item].double(), expected, rtol=1e-5, atol=1e-7)
        noisy = torch.stack([direct_map(model, inputs[item] + noise[item, j], target, method, ig_steps) for j in range(n_noise)])
        mean, mean_square = noisy.mean(0), noisy.square().mean(0)
        torch.testing.assert_close(ensembles["sg"][item].double(), mean, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ensembles["sg2"][item].double(), mean_square, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ensembles["vg"][item].double(), mean_square - mean.square(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["sal", "ig"])
def test_family_in_one_stream_equals_its_parts_computed_apart(model, batch, method):
    """Plain map and ensembles from one stream equal the two streams computed separately, bitwise."""
    inputs, targets = batch
    ids = ["a", "b", "c"]
    settings = dict(ig_steps=3, batch_size=4)
    masks = {"rect": (torch.arange(SIDE)[:, None] // 6 * 2 + torch.arange(SIDE)[None, :] // 6).expand(N_ITEMS, SIDE, SIDE)}
    family = explain_gradient_family(
        model, inputs, targets, ids, method, explainers=[method, f"{method}-sg", f"{method}-vg"], masks=masks,
        n_segments={"rect": 4}, n_noise=3, noise_std=0.5, seed=9, **settings,
    )
    plain = gradient_attributions(model, inputs, targets, method, **settings)
    ensembles = noise_ensemble(model, inputs, targets, method, draw_noise(ids, inputs.shape[1:], 3, 0.5, 9), **settings)
    for name, expected in ((method, plain), (f"{method}-sg", ensembles["sg"]), (f"{method}-vg", ensembles["vg"])):
        for aggregation, values in aggregate(expected, masks["rect"], 4).items():
            np.testing.assert_array_equal(family.scores[name]["rect"][aggregation], values, err_msg=f"{name} {aggregation}")


@pytest.mark.parametrize("size", [1, 3, 5])
def test_group_queue_hands_out_the_streams_groups_whatever_the_pushes(size):
    """Groups equal the stream cut into groups, for pushes shorter and longer than a group, and stay
    intact while later pushes arrive (a group spanning pushes has a buffer of its own)."""
    stream = torch.arange(60.0).view(30, 2)
    pushes = [1, 4, 2, 7, 1, 1, 9, 5]
    queue, handed, first_expected, start = GroupQueue(size), [], 0, 0
    for length in pushes:
        first, groups = queue.push(stream[start : start + length].clone())  # the caller's rows are its own
        start += length
        assert first == first_expected
        first_expected += len(groups)
        handed += groups
    whole = start // size
    assert len(handed) == whole
    for index, group in enumerate(handed):
        assert torch.equal(group, stream[index * size : (index + 1) * size]), f"group {index}"


def test_draw_noise_is_each_items_own_draws_scaled():
    ids, shape = ["a", 7, "c"], (3, 4, 5)
    for std in (1.0, 0.25):
        noise = draw_noise(ids, shape, 6, std, seed=11)
        for row, item_id in enumerate(ids):
            expected = torch.randn((6, *shape), generator=torch_generator(11, "noise", item_id)) * std
            assert torch.equal(noise[row], expected)
    assert draw_noise([], shape, 6, 1.0, seed=11).shape == (0, 6, *shape)


# --- known answers (each written against a surviving mutant, tests/README.md) ---


class RecordsItsInputs(nn.Module):
    """A linear model that keeps every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * SIDE * SIDE, N_CLASSES)
        self.seen: list[torch.Tensor] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.seen.append(inputs.detach().clone())
        return self.linear(inputs.flatten(1))


@pytest.mark.parametrize("baseline", [0.0, 0.37])
def test_ig_points_are_captums_bit_for_bit(batch, baseline):
    """The rows IG evaluates are captum's ``b + α·(x - b)`` (α cast to the input's dtype), bit for bit;
    captum evaluates them step-major, the stream copy-major."""
    inputs, targets = batch
    ours, reference = RecordsItsInputs().eval(), RecordsItsInputs().eval()
    gradient_attributions(ours, inputs, targets, "ig", ig_steps=5, ig_baseline=baseline, batch_size=None)
    IntegratedGradients(reference).attribute(inputs, baselines=baseline, target=targets, n_steps=5, method="gausslegendre")
    captum_rows = torch.cat(reference.seen).view(5, N_ITEMS, 3, SIDE, SIDE).transpose(0, 1).flatten(0, 1)
    assert torch.equal(torch.cat(ours.seen), captum_rows)


def test_ig_integrates_from_its_baseline(model, batch):
    """IG from a baseline b ≠ 0 equals the direct sum, plain and noisy."""
    inputs, targets = batch
    baseline, ig_steps = 0.5, 4
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], 2, 0.3, seed=1)

    def reference(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([direct_map(model, x[item], int(targets[item]), "ig", ig_steps, baseline) for item in range(N_ITEMS)])

    plain = gradient_attributions(model, inputs, targets, "ig", ig_steps=ig_steps, ig_baseline=baseline, batch_size=4)
    torch.testing.assert_close(plain.double(), reference(inputs), rtol=1e-5, atol=1e-7)
    smooth = noise_ensemble(model, inputs, targets, "ig", noise, ig_steps=ig_steps, ig_baseline=baseline, batch_size=4)
    noisy = torch.stack([reference(inputs + noise[:, j]) for j in range(2)])
    torch.testing.assert_close(smooth["sg"].double(), noisy.mean(0), rtol=1e-5, atol=1e-7)


def test_ig_steps_below_two_are_refused():
    with pytest.raises(ValueError, match=exactly("ig_steps must be at least 2, got 1")):
        integration_points(1)


class Squares(nn.Module):
    """``f(x)_k = (k + 1)·½‖x‖²``: the gradient of class 0 is ``x`` itself."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        half_square = 0.5 * inputs.square().flatten(1).sum(1, keepdim=True)
        return half_square * torch.arange(1, N_CLASSES + 1, dtype=inputs.dtype)


def test_vargrad_is_summed_in_float64_far_from_zero():
    """Gradients near 1000 that vary by 0.01: ``Σa²/J - (Σa/J)²`` keeps the variance only in float64
    (float32 cancellation loses it entirely); SmoothGrad is the mean of the noisy gradients."""
    inputs = 1000.0 + torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    noise = draw_noise(["a", "b"], inputs.shape[1:], 16, 0.01, seed=5)
    maps = noise_ensemble(Squares(), inputs, torch.tensor([0, 0]), "sal", noise, batch_size=6)
    gradients = (inputs[:, None] + noise).double()  # the float32 sums the model's gradient returns
    torch.testing.assert_close(maps["vg"].double(), gradients.var(1, unbiased=False), rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(maps["sg"].double(), gradients.mean(1), rtol=1e-7, atol=0.0)


def test_one_noise_draw_is_its_own_smoothgrad_with_no_variance(model, batch):
    inputs, targets = batch
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], 1, 0.5, seed=2)
    maps = noise_ensemble(model, inputs, targets, "sal", noise, batch_size=2)
    torch.testing.assert_close(maps["sg"], target_gradients(model, inputs + noise[:, 0], targets), rtol=1e-6, atol=1e-8)
    assert torch.equal(maps["vg"], torch.zeros_like(inputs))


def test_maps_are_those_asked_for(model, batch):
    inputs, targets = batch
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], 2, 0.5, seed=2)
    settings = dict(ig_steps=2, ig_baseline=0.0, batch_size=3)
    assert family_maps(model, "sal", inputs, targets, plain=False, noise=noise, **settings).keys() == {"sg", "sg2", "vg"}
    assert family_maps(model, "sal", inputs, targets, plain=True, noise=None, **settings).keys() == {"plain"}


def test_noise_is_cast_to_the_inputs_dtype(model, batch):
    inputs, targets = batch
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], 2, 0.5, seed=4)
    as_float64 = noise_ensemble(model, inputs, targets, "sal", noise.double(), batch_size=3)
    as_inputs = noise_ensemble(model, inputs, targets, "sal", noise, batch_size=3)
    for name in ("sg", "sg2", "vg"):
        assert as_float64[name].dtype == torch.float32 and torch.equal(as_float64[name], as_inputs[name])


def test_ig_in_one_pass_equals_fixed_passes(model, batch):
    inputs, targets = batch
    whole = gradient_attributions(model, inputs, targets, "ig", ig_steps=3, batch_size=None)
    chunked = gradient_attributions(model, inputs, targets, "ig", ig_steps=3, batch_size=4)
    torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("method", ["sal", "gbp"])
def test_a_linear_stem_leaves_saliency_and_guided_maps_alone(batch, method):
    """The stem is IG's alone: the other families' plain and noisy maps are their direct gradients."""
    inputs, targets = batch
    model = stem_model()
    assert find_linear_stem(model, inputs[:1]) is not None
    noise = draw_noise(["a", "b", "c"], inputs.shape[1:], 2, 0.5, seed=6)
    maps = family_maps(model, method, inputs, targets, plain=True, noise=noise, ig_steps=2, ig_baseline=0.0, batch_size=3)
    torch.testing.assert_close(maps["plain"], pass_gradients(model, inputs, targets, method), rtol=1e-6, atol=1e-8)
    noisy = torch.stack([pass_gradients(model, inputs + noise[:, j], targets, method) for j in range(2)]).double()
    torch.testing.assert_close(maps["sg"].double(), noisy.mean(0), rtol=1e-5, atol=1e-8)


class FunctionalRectifiers(nn.Module):
    """Rectifiers called as functions, which GBP guides unless told to guide ``nn.ReLU`` modules only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.linear = nn.Conv2d(3, 4, 3), nn.Linear(4 * 10 * 10, N_CLASSES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(inputs)).flatten(1))


def test_gbp_guides_functional_rectifiers_by_default(batch):
    inputs, targets = batch
    model = FunctionalRectifiers().eval()
    settings = dict(plain=True, noise=None, ig_steps=2, ig_baseline=0.0, batch_size=None)
    guided_all = pass_gradients(model, inputs, targets, "gbp", relu_modules_only=False)
    assert not torch.equal(guided_all, pass_gradients(model, inputs, targets, "gbp", relu_modules_only=True))
    assert torch.equal(pass_gradients(model, inputs, targets, "gbp"), guided_all)
    assert torch.equal(family_maps(model, "gbp", inputs, targets, **settings)["plain"], guided_all)
    assert torch.equal(FamilyStream(model, "gbp", inputs, targets, **settings).run()["plain"], guided_all)


class ReadsItsInputsShape(nn.Module):
    """Reads its input's values through the stem only, and its shape beside it (as a reshape)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = stem_model()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs).reshape(inputs.shape[0], -1)


def test_ig_through_a_stem_gives_the_model_an_input_of_the_right_shape(batch):
    """Through a stem the passes' inputs are never read for their values, but the model may read
    their shape: the stand-in must have the pass's shape. The maps equal IG computed directly."""
    inputs, targets = batch
    model = ReadsItsInputsShape().eval()
    assert find_linear_stem(model, inputs[:1]) is not None
    ours = gradient_attributions(model, inputs, targets, "ig", ig_steps=3, batch_size=4)
    for item in range(N_ITEMS):
        expected = direct_map(model, inputs[item], int(targets[item]), "ig", ig_steps=3)
        torch.testing.assert_close(ours[item].double(), expected, rtol=1e-5, atol=1e-7)
