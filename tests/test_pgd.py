"""Targeted PGD: equality with captum, validity of adversaries, per-item target draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.robust import PGD
from messages import exactly
from scipy.stats import chisquare
from torch import nn

from advxai.attacks.pgd import _pgd_step, draw_targets, targeted_pgd

N_CLASSES = 10


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A small random-weight CNN in eval mode (logits over N_CLASSES)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 5 * 5, N_CLASSES),
    )
    return model.eval()


def images(n: int, seed: int = 1) -> torch.Tensor:
    """Random inputs in [-1, 1] so that clamp bounds of +-1 are active."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 12, 12, generator=generator) * 2 - 1


def per_channel(value: float) -> torch.Tensor:
    return torch.full((3, 1, 1), value)


UNIT_BOUNDS = {"lower": per_channel(-1.0), "upper": per_channel(1.0)}  # the images' own range: clamps at ±1


def test_matches_captum_pgd_exactly():
    model, x = tiny_cnn(), images(4)
    targets = torch.tensor([1, 5, 7, 2])
    reference = PGD(model, nn.CrossEntropyLoss(reduction="none"), lower_bound=-0.9, upper_bound=0.9).perturb(
        x, radius=0.1, step_size=0.01, step_num=15, target=targets, targeted=True
    )
    ours = targeted_pgd(model, x, targets.numpy(), 0.1, 0.01, 15, lower=per_channel(-0.9), upper=per_channel(0.9))
    assert torch.equal(ours.adversaries, reference)
    assert not torch.equal(reference, x.clamp(-0.9, 0.9))  # the attack did move


def test_targeted_attack_succeeds_within_radius_and_channel_bounds():
    model, x = tiny_cnn(), images(6, seed=3)
    lower = torch.tensor([-0.9, -0.7, -0.8]).view(3, 1, 1)
    upper = torch.tensor([0.8, 0.95, 0.7]).view(3, 1, 1)
    x = lower + (upper - lower) * (x + 1) / 2  # strictly inside the bounds before the attack
    assert not (x == lower).any() and not (x == upper).any()
    clean = model(x).argmax(1).numpy()
    targets = (clean + 1 + np.arange(6)) % N_CLASSES
    targets[targets == clean] = (clean[targets == clean] + 1) % N_CLASSES
    result = targeted_pgd(model, x, targets, epsilon=0.5, step_size=0.02, n_steps=60, lower=lower, upper=upper)
    assert result.success.all()
    np.testing.assert_array_equal(result.final_predictions, targets)
    assert (result.first_success_step > 0).all() and (result.first_success_step <= 60).all()
    assert (result.adversaries - x).abs().max() <= 0.5 + 1e-6
    assert (result.adversaries >= lower).all() and (result.adversaries <= upper).all()
    # every channel's own bound is reached somewhere: the clamp is per channel, not scalar
    for channel in range(3):
        assert (result.adversaries[:, channel] == lower[channel]).any()
        assert (result.adversaries[:, channel] == upper[channel]).any()


class IgnoresLastChannel(nn.Module):
    """Wraps a model so that the last input channel has exactly zero gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([x[:, :2], torch.zeros_like(x[:, 2:])], 1))


def test_zero_gradient_elements_do_not_move():
    model, x = IgnoresLastChannel(tiny_cnn()).eval(), images(2)
    result = targeted_pgd(model, x, [4, 6], 0.1, 0.01, 5, **UNIT_BOUNDS)
    assert torch.equal(result.adversaries[:, 2], x[:, 2])
    assert not torch.equal(result.adversaries[:, :2], x[:, :2])


def test_early_stop_freezes_each_example_at_its_first_success():
    model, x = tiny_cnn(), images(4, seed=3)
    targets = (model(x).argmax(1).numpy() + 3) % N_CLASSES
    full = targeted_pgd(model, x, targets, 0.5, 0.02, 60, **UNIT_BOUNDS)
    stopped = targeted_pgd(model, x, targets, 0.5, 0.02, 60, early_stop=True, **UNIT_BOUNDS)
    np.testing.assert_array_equal(stopped.first_success_step, full.first_success_step)
    for i, step in enumerate(stopped.first_success_step):
        at_first = targeted_pgd(model, x[i : i + 1], targets[i : i + 1], 0.5, 0.02, int(step), **UNIT_BOUNDS)
        torch.testing.assert_close(stopped.adversaries[i], at_first.adversaries[0], rtol=0, atol=1e-6)
    assert stopped.success.all()


def test_early_stop_ends_once_every_example_has_reached_its_target():
    model, x = tiny_cnn(), images(4, seed=3)
    targets = (model(x).argmax(1).numpy() + 3) % N_CLASSES
    within = targeted_pgd(model, x, targets, 0.5, 0.02, 60, early_stop=True, **UNIT_BOUNDS)
    assert within.first_success_step.max() < 60
    longer = targeted_pgd(model, x, targets, 0.5, 0.02, 200, early_stop=True, **UNIT_BOUNDS)  # the loop breaks before step 200
    assert torch.equal(longer.adversaries, within.adversaries)
    np.testing.assert_array_equal(longer.first_success_step, within.first_success_step)


def clean_target_and_another(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Targets for two inputs: the first its own clean prediction (reached at step 0), the second another class."""
    clean = model(x).argmax(1).numpy()
    return np.array([clean[0], (clean[1] + 3) % N_CLASSES])


def test_first_success_is_zero_at_the_clean_input_and_minus_one_if_never():
    model, x = tiny_cnn(), images(2, seed=3)
    frozen = targeted_pgd(model, x, clean_target_and_another(model, x), 0.0, 0.01, 3, **UNIT_BOUNDS)  # epsilon 0: nothing moves
    assert torch.equal(frozen.adversaries, x)
    assert frozen.first_success_step.tolist() == [0, -1]
    assert frozen.success.tolist() == [True, False]
    unstepped = targeted_pgd(model, x, clean_target_and_another(model, x), 0.1, 0.01, 0, **UNIT_BOUNDS)
    assert torch.equal(unstepped.adversaries, x) and unstepped.first_success_step.tolist() == [0, -1]


def test_early_stop_leaves_an_input_already_at_its_target_in_place():
    model, x = tiny_cnn(), images(2, seed=3)
    result = targeted_pgd(model, x, clean_target_and_another(model, x), 0.5, 0.02, 10, early_stop=True,
                          **UNIT_BOUNDS)
    assert torch.equal(result.adversaries[0], x[0]) and not torch.equal(result.adversaries[1], x[1])


def test_float64_bounds_give_the_same_float32_adversaries():
    model, x = tiny_cnn(), images(2, seed=4)
    single = targeted_pgd(model, x, [3, 7], 0.1, 0.05, 5, lower=per_channel(-0.9), upper=per_channel(0.9))
    double = targeted_pgd(model, x, [3, 7], 0.1, 0.05, 5, lower=per_channel(-0.9).double(), upper=per_channel(0.9).double())
    assert double.adversaries.dtype == torch.float32 and torch.equal(double.adversaries, single.adversaries)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_steps": -1}, "need n_steps >= 0, epsilon >= 0, step_size > 0; got -1, 0.1, 0.01"),
        ({"epsilon": -0.1}, "need n_steps >= 0, epsilon >= 0, step_size > 0; got 5, -0.1, 0.01"),
        ({"step_size": 0.0}, "need n_steps >= 0, epsilon >= 0, step_size > 0; got 5, 0.1, 0.0"),
        ({"targets": [1, 2, 3]}, "targets has shape (3,), expected (2,) like inputs"),
    ],
)
def test_bad_settings_are_named(settings, message):
    arguments = {"targets": [1, 2], "epsilon": 0.1, "step_size": 0.01, "n_steps": 5, **settings}
    with pytest.raises(ValueError, match=exactly(message)):
        targeted_pgd(tiny_cnn(), images(2), **UNIT_BOUNDS, **arguments)


def test_batch_size_does_not_change_adversaries():
    model, x = tiny_cnn(), images(4, seed=5)
    targets = np.array([3, 0, 9, 4])
    whole = targeted_pgd(model, x, torch.as_tensor(targets), 0.1, 0.01, 20, **UNIT_BOUNDS)  # tensor targets too
    halves = [targeted_pgd(model, x[i : i + 2], targets[i : i + 2], 0.1, 0.01, 20, **UNIT_BOUNDS) for i in (0, 2)]
    assert torch.equal(whole.adversaries, torch.cat([h.adversaries for h in halves]))
    np.testing.assert_array_equal(whole.first_success_step, np.concatenate([h.first_success_step for h in halves]))


def test_an_element_whose_gradient_is_at_captums_threshold_stays():
    """captum's FGSM moves only elements with |gradient| > 1e-6 (strictly): at 1e-6 it stays."""
    gradient = torch.tensor([1e-6, 2e-6, -1.0, 0.0])
    zeros = torch.zeros(4)
    stepped = _pgd_step(zeros, zeros, gradient, 1.0, 0.1, lower=-torch.ones(4), upper=torch.ones(4))
    assert stepped.tolist() == pytest.approx([0.0, -0.1, 0.1, 0.0])


def test_targets_of_any_integer_type_give_the_same_adversaries():
    model, x = tiny_cnn(), images(2, seed=4)
    as_long = targeted_pgd(model, x, torch.tensor([3, 7]), 0.1, 0.01, 5, **UNIT_BOUNDS)
    as_int32 = targeted_pgd(model, x, torch.tensor([3, 7], dtype=torch.int32), 0.1, 0.01, 5, **UNIT_BOUNDS)
    assert torch.equal(as_long.adversaries, as_int32.adversaries)


def test_training_mode_model_is_refused():
    model = tiny_cnn().train()
    with pytest.raises(ValueError, match=exactly(
        "targeted_pgd needs the model in eval mode (call model.eval()): batch norm or dropout "
        "in training mode would make each adversary depend on its batch")):
        targeted_pgd(model, images(1), [0], 0.1, 0.01, 1, **UNIT_BOUNDS)


def test_draw_targets_avoid_clean_prediction_and_are_uniform():
    ids = [f"img{i}" for i in range(9000)]
    clean = np.full(len(ids), 3)
    targets = draw_targets(21, ids, clean, N_CLASSES)
    assert not (targets == clean).any()
    counts = np.bincount(targets, minlength=N_CLASSES)
    assert counts[3] == 0
    assert chisquare(np.delete(counts, 3)).pvalue > 1e-3


def test_draw_targets_do_not_depend_on_the_batch():
    ids = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 41)]
    clean = np.arange(40) % N_CLASSES
    whole = draw_targets(21, ids, clean, N_CLASSES)
    pieces = np.concatenate([draw_targets(21, ids[i : i + 7], clean[i : i + 7], N_CLASSES) for i in range(0, 40, 7)])
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, draw_targets(22, ids, clean, N_CLASSES))


@pytest.mark.parametrize(
    ("clean", "n_classes", "message"),
    [
        ([N_CLASSES], N_CLASSES, f"clean_predictions must lie in 0..{N_CLASSES - 1}"),
        ([-1], N_CLASSES, f"clean_predictions must lie in 0..{N_CLASSES - 1}"),
        ([0, 0], N_CLASSES, "clean_predictions has shape (2,), expected (1,) like ids"),
        ([0], 1, "n_classes=1: a targeted attack needs at least 2 classes"),
    ],
)
def test_draw_targets_rejects_bad_predictions(clean, n_classes, message):
    with pytest.raises(ValueError, match=exactly(message)):
        draw_targets(0, ["a"], np.array(clean), n_classes)


def test_draw_targets_for_two_classes_and_no_item():
    assert draw_targets(0, ["a", "b"], np.array([0, 1]), 2).tolist() == [1, 0]
    assert draw_targets(0, [], np.array([], dtype=np.int64), 2).shape == (0,)
