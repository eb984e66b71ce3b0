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
from torch import nn

from advxai.explainers.aggregate import aggregate
from advxai.explainers.gradient_stream import GroupQueue, integration_points, target_gradients
from advxai.explainers.gradients import draw_noise, explain_gradient_family, gradient_attributions, noise_ensemble
from advxai.explainers.guided import guided_gradients
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


def direct_map(model: nn.Module, x: torch.Tensor, target: int, method: str, ig_steps: int) -> torch.Tensor:
    """One input's attribution, one pass per gradient, summed in float64 step by step."""
    targets = torch.tensor([target])
    if method == "gbp":
        return guided_gradients(model, x[None], targets)[0].double()
    if method == "sal":
        return target_gradients(model, x[None], targets)[0].double()
    alphas, weights = integration_points(ig_steps)
    total = torch.zeros_like(x, dtype=torch.float64)
    for alpha, weight in zip(alphas, weights):
        total += float(weight) * target_gradients(model, (float(alpha) * x)[None], targets)[0].double()
    return x.double() * total


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
