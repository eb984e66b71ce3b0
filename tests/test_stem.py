"""IG through a model's linear stem: the same attributions as point by point, found only where it is safe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stand_in_stem import stem_model
from torch import nn

import advxai.explainers.gradient_stream as gradient_stream
import advxai.explainers.gradients as gradients
from advxai.explainers.engine import ExplainSettings, explain_all
from advxai.explainers.settings import ExplainerSettings
from advxai.explainers.stem import MIN_KERNEL_VOLUME, _qualifies, find_linear_stem

SIDE = 32


class ReadsItsInputTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = stem_model()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs) + inputs.mean()


class NormalisesFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = stem_model()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs * 2.0 - 1.0)


def example() -> torch.Tensor:
    return torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


def test_a_stem_is_found_only_where_the_model_reads_its_input_through_it_alone():
    model = stem_model()
    stem = find_linear_stem(model, example())
    assert stem is not None and stem.conv is model[0]
    assert 3 * 11 * 11 >= MIN_KERNEL_VOLUME > 3 * 7 * 7  # AlexNet's stem qualifies, ResNet's does not
    assert find_linear_stem(stem_model(kernel=7), example()) is None
    assert find_linear_stem(ReadsItsInputTwice(), example()) is None
    assert find_linear_stem(NormalisesFirst(), example()) is None
    assert "forward" not in vars(model[0])  # the check leaves the stem as it was
    torch.manual_seed(5)
    untouched = torch.rand(3)
    torch.manual_seed(5)
    find_linear_stem(model, example())
    assert torch.equal(torch.rand(3), untouched)  # nor the global RNG


class ConvolvesAConstantFirst(nn.Module):
    """Calls a qualifying convolution on a buffer of its own before the stem reads the input."""

    def __init__(self) -> None:
        super().__init__()
        self.body = stem_model()
        torch.manual_seed(1)
        self.pre = nn.Conv2d(3, 6, 11, stride=4, padding=2)
        self.register_buffer("constant", torch.randn(1, 3, SIDE, SIDE))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        bias = self.pre(self.constant).mean()
        return self.body(inputs) + bias


def test_the_stem_is_the_first_module_called_with_the_input_itself():
    """A module called first but with another tensor is not the stem."""
    model = ConvolvesAConstantFirst().eval()
    stem = find_linear_stem(model, example())
    assert stem is not None and stem.conv is model.body[0]


def test_the_stem_is_restored_when_a_pass_fails():
    model = stem_model()
    stem = find_linear_stem(model, example())
    with pytest.raises(RuntimeError, match="inside"):
        with stem.replaced_by(torch.zeros(1)):
            raise RuntimeError("inside")
    assert "forward" not in vars(model[0])
    torch.testing.assert_close(model(example()), stem_model()(example()))


def ig_maps(model, inputs, targets, noise, *, through_stem: bool, monkeypatch, batch_size: int = 5) -> dict:
    if not through_stem:
        monkeypatch.setattr(gradient_stream, "find_linear_stem", lambda *_: None)
    maps = gradient_stream.family_maps(model, "ig", inputs, targets, plain=True, noise=noise, ig_steps=6, ig_baseline=0.3,
                                       batch_size=batch_size)
    monkeypatch.undo()
    return maps


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_ig_through_the_stem_equals_ig_point_by_point(monkeypatch, batch_size):
    """In float64 the two orders of the same sums agree to rounding; the plain map and the ensembles alike."""
    model = stem_model(dtype=torch.float64)
    inputs = torch.randn(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    targets = torch.tensor([0, 4, 2])
    noise = gradients.draw_noise(["a", "b", "c"], inputs.shape[1:], 3, 0.5, seed=4).double()
    assert find_linear_stem(model, inputs[:1]) is not None
    point_by_point = ig_maps(model, inputs, targets, noise, through_stem=False, monkeypatch=monkeypatch, batch_size=batch_size)
    through_stem = ig_maps(model, inputs, targets, noise, through_stem=True, monkeypatch=monkeypatch, batch_size=batch_size)
    assert set(through_stem) == {"plain", "sg", "sg2", "vg"}
    for name, expected in point_by_point.items():
        torch.testing.assert_close(through_stem[name], expected, rtol=1e-10, atol=1e-12, msg=name)
    assert not torch.equal(through_stem["plain"], point_by_point["plain"])  # another order of the sums, really taken


@pytest.mark.parametrize(("kernel", "dilation", "groups"), [(11, 2, 1), (17, 1, 3)])
def test_ig_through_a_dilated_or_grouped_stem_equals_ig_point_by_point(monkeypatch, kernel, dilation, groups):
    model = stem_model(kernel, torch.float64, dilation=dilation, groups=groups)
    inputs = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    targets = torch.tensor([0, 4])
    noise = gradients.draw_noise(["a", "b"], inputs.shape[1:], 2, 0.5, seed=4).double()
    assert find_linear_stem(model, inputs[:1]) is not None
    point_by_point = ig_maps(model, inputs, targets, noise, through_stem=False, monkeypatch=monkeypatch)
    through_stem = ig_maps(model, inputs, targets, noise, through_stem=True, monkeypatch=monkeypatch)
    for name, expected in point_by_point.items():
        torch.testing.assert_close(through_stem[name], expected, rtol=1e-10, atol=1e-12, msg=name)


def test_ig_through_the_stem_of_an_item_alone_equals_it_inside_a_batch():
    model = stem_model()
    inputs = torch.randn(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([1, 3, 0])
    masks = {"rect": (torch.arange(SIDE)[:, None] // 16 * 2 + torch.arange(SIDE)[None, :] // 16).expand(3, SIDE, SIDE)}
    settings = ExplainSettings(explainer=ExplainerSettings.paper(noise_samples=2, ig_steps=5), seed=1, batch_size=4)

    def scores(rows: slice) -> dict:
        n = len(range(3)[rows])
        return explain_all(model, inputs[rows], targets[rows], ["a", "b", "c"][rows], {"rect": masks["rect"][rows]},
                           {"rect": np.full(n, 4)}, ["ig", "ig-sg", "ig-vg"], settings)

    together = scores(slice(0, 3))
    for row in (0, 2):
        alone = scores(slice(row, row + 1))
        for explainer in ("ig", "ig-sg", "ig-vg"):
            for aggregation, values in alone[explainer]["rect"].items():
                np.testing.assert_array_equal(values[0], together[explainer]["rect"][aggregation][row],
                                              err_msg=f"{explainer} {aggregation}")


def test_the_kernel_volume_rule_counts_channels_per_group_and_both_kernel_sides():
    assert _qualifies(nn.Conv2d(1, 4, 16)) and not _qualifies(nn.Conv2d(1, 4, 15))  # exactly MIN_KERNEL_VOLUME products qualify
    assert _qualifies(nn.Conv2d(3, 6, (13, 7))) and not _qualifies(nn.Conv2d(3, 6, (13, 6)))
    assert not _qualifies(nn.Conv2d(3, 6, 11, groups=3)) and not _qualifies(nn.Conv2d(3, 6, 11, padding=2, padding_mode="reflect"))
