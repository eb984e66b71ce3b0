"""Batch sizes that fit the hardware, and the halving on out-of-memory inside every batched stage.

An injected out-of-memory error at batches above 4 must leave each stage with exactly the results
of a run at batch size 4: the failing pass is dropped before anything is kept, and every pass
after the halving has the halved shape.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advxai.attacks.pgd import targeted_pgd
from advxai.batching import CPU_CANDIDATES, batch_from_memory, choose_batch_size, fastest_batch_size
from advxai.explainers.gradients import explain_gradient_family
from advxai.explainers.lime import lime_coefficients

SIDE, N_ITEMS = 8, 3


class FitsFour(nn.Module):
    """A small CNN that raises out-of-memory on any batch of more than four rows, and counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * SIDE * SIDE, 5))
        self.shapes: list[int] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.shapes.append(len(inputs))
        if len(inputs) > 4:
            raise torch.OutOfMemoryError("injected: more than 4 rows")
        return self.network(inputs)


@pytest.fixture()
def model() -> FitsFour:
    return FitsFour().eval()


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(N_ITEMS, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2))


def test_batch_from_memory_known_answers():
    assert batch_from_memory(100, 1000) == 8  # 800 bytes for rows of 100
    assert batch_from_memory(100, 1060) == 8  # 848 bytes: still 8, a power of two
    assert batch_from_memory(100, 900) == 4  # 720 bytes: 7 rows fit, 4 is the power of two below
    assert batch_from_memory(100, 50) == 1  # nothing fits: one row, and run_batched takes it from there
    assert batch_from_memory(1, 1e12, largest=256) == 256
    assert batch_from_memory(0, 10) == 1024


def test_fastest_batch_size_takes_the_smallest_near_best():
    assert fastest_batch_size(lambda size: 1.0 + 0.1 * size) == 32  # fixed cost per call: the largest wins
    assert fastest_batch_size(lambda size: 0.01 * size) == 1  # cost per row only: no reason to pad
    assert fastest_batch_size(lambda size: 0.01 * size * (2.0 if size > 8 else 1.0)) == 1
    assert fastest_batch_size(lambda size: {1: 1.0, 2: 1.0, 4: 1.02, 8: 2.2}[size], candidates=(1, 2, 4, 8)) == 4


def spiked_timer(start: int, length: int, factor: float = 3.0):
    """Seconds per call of a model fastest per row at 16, slowed ``factor``-fold during calls [start, start + length)."""
    calls = iter(range(10**6))
    per_row = {1: 1.0, 2: 0.8, 4: 0.7, 8: 0.6, 16: 0.5, 32: 0.55}

    def seconds(size: int) -> float:
        slowed = start <= next(calls) < start + length
        return size * per_row[size] * (factor if slowed else 1.0)

    return seconds


def test_fastest_batch_size_ignores_a_spell_of_load_shorter_than_a_round():
    rounds = 3
    for start in range(rounds * len(CPU_CANDIDATES)):
        # every candidate keeps at least one call outside the spell, whichever calls it hits
        assert fastest_batch_size(spiked_timer(start, len(CPU_CANDIDATES)), rounds=rounds) == 16, start
    # timed once each, a spell over batch 16's only call moves the choice (what the rounds prevent)
    assert fastest_batch_size(spiked_timer(4, 1), rounds=1) == 32
    with pytest.raises(ValueError, match="rounds"):
        fastest_batch_size(spiked_timer(0, 0), rounds=0)


def test_choose_batch_size_fixed_or_measured(model):
    assert choose_batch_size(6, model, (3, SIDE, SIDE), "cpu") == 6
    with pytest.raises(ValueError, match="auto"):
        choose_batch_size("fast", model, (3, SIDE, SIDE), "cpu")
    with pytest.raises(ValueError, match="positive"):
        choose_batch_size(0, model, (3, SIDE, SIDE), "cpu")
    measured = choose_batch_size("auto", model.network, (3, SIDE, SIDE), "cpu")
    assert measured in CPU_CANDIDATES


def test_gradient_stream_halves_and_equals_a_run_at_the_halved_size(model, inputs):
    targets = torch.tensor([0, 3, 1])
    masks = {"rect": (torch.arange(SIDE)[:, None] // 4 * 2 + torch.arange(SIDE)[None, :] // 4).expand(N_ITEMS, SIDE, SIDE)}
    settings = dict(explainers=["ig", "ig-sg", "ig-vg"], masks=masks, n_segments={"rect": 4}, n_noise=2, ig_steps=3, seed=1)
    halved = explain_gradient_family(model, inputs, targets, ["a", "b", "c"], "ig", batch_size=16, **settings)
    assert model.shapes[:2] == [16, 8] and set(model.shapes[2:]) == {4}
    direct = explain_gradient_family(model, inputs, targets, ["a", "b", "c"], "ig", batch_size=4, **settings)
    for name, by_segmentation in direct.scores.items():
        for aggregation, values in by_segmentation["rect"].items():
            np.testing.assert_array_equal(halved.scores[name]["rect"][aggregation], values)


def test_lime_halves_and_equals_a_run_at_the_halved_size(model, inputs):
    targets = torch.tensor([2, 0, 4])
    masks = (torch.arange(SIDE)[:, None] // 4 * 2 + torch.arange(SIDE)[None, :] // 4).expand(N_ITEMS, SIDE, SIDE)
    settings = dict(ids=["a", "b", "c"], n_samples=10, seed=3)
    halved = lime_coefficients(model, inputs, targets, masks, 4, batch_size=8, **settings)
    assert model.shapes[0] == 8 and set(model.shapes[1:]) == {4}
    np.testing.assert_array_equal(halved, lime_coefficients(model, inputs, targets, masks, 4, batch_size=4, **settings))


def test_pgd_halves_and_equals_a_run_at_the_halved_size(model):
    images = torch.rand(6, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    attack = dict(targets=np.array([1, 2, 3, 4, 0, 1]), epsilon=0.3, step_size=0.05, n_steps=4,
                  lower=torch.full((3, 1, 1), -1.0), upper=torch.full((3, 1, 1), 1.0))
    halved = targeted_pgd(model, images, batch_size=8, **attack)
    direct = targeted_pgd(model, images, batch_size=4, **attack)
    assert torch.equal(halved.adversaries, direct.adversaries)
    np.testing.assert_array_equal(halved.first_success_step, direct.first_success_step)


def test_scratch_tensors_reuse_their_storage_until_a_larger_or_other_tensor_is_asked_for():
    from advxai.batching import ScratchTensors

    scratch = ScratchTensors("cpu")
    first = scratch("rows", (4, 3), torch.float32)
    assert first.shape == (4, 3) and first.is_contiguous()
    again = scratch("rows", (2, 6), torch.float32)
    assert again.data_ptr() == first.data_ptr()  # the same storage, another shape
    smaller = scratch("rows", (5,), torch.float32)
    assert smaller.data_ptr() == first.data_ptr() and smaller.shape == (5,)
    larger = scratch("rows", (4, 4), torch.float32)
    assert larger.data_ptr() != first.data_ptr() and larger.shape == (4, 4)
    assert scratch("rows", (4, 4), torch.float64).dtype == torch.float64
    assert scratch("other", (4, 4), torch.float64).data_ptr() != scratch("rows", (4, 4), torch.float64).data_ptr()
