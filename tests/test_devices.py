"""Device hygiene on the CPU: functions that accept tensors convert them explicitly.

Under the ``strict_host`` fixture ``np.asarray(tensor)`` raises as it does for a CUDA tensor, so
these tests fail where a CUDA run would (e.g. ``audio_explain`` with targets made on the GPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advxai.arrays import to_numpy
from advxai.attacks.pgd import draw_targets
from advxai.evaluation.baselines import magnitude
from advxai.evaluation.excerpts import explain_excerpts
from advxai.evaluation.flips import ThresholdCrossing, reaches_target
from advxai.evaluation.labelflip import label_flips
from advxai.evaluation.localised import localised_experiment
from advxai.explainers import aggregate
from advxai.explainers.settings import ExplainerSettings
from advxai.segments import audio_grid
from advxai.svds.model import SVDS


@pytest.fixture(scope="module")
def detector() -> SVDS:
    return SVDS(generator=torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def excerpts() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(3, 115, 80, generator=generator) - 3
    return clean, 0.3 * torch.randn(3, 115, 80, generator=generator)


def test_strict_host_refuses_implicit_conversion(strict_host):
    with pytest.raises(TypeError, match="CUDA"):
        np.asarray(torch.ones(2))
    np.testing.assert_array_equal(to_numpy(torch.ones(2)), [1.0, 1.0])


def test_explain_excerpts_takes_targets_as_a_tensor(strict_host, detector, excerpts):
    """The audio_explain stage passes targets made on the model's device (``torch.full(..., device=)``)."""
    settings = dict(explainers=["sal", "lime"], settings=ExplainerSettings.paper("audio", lime_samples=16, noise_samples=2, ig_steps=2),
                    seed=0, batch_size=8)
    ids = ["a", "b", "c"]
    from_tensor = explain_excerpts(detector, excerpts[0], torch.tensor([1, 0, 1]), ids, **settings)
    from_array = explain_excerpts(detector, excerpts[0].numpy(), np.array([1, 0, 1]), ids, **settings)
    assert from_tensor.keys() == from_array.keys() == {"sal", "lime"}
    for name in from_tensor:
        assert from_tensor[name].shape == (3, 20)
        np.testing.assert_array_equal(from_tensor[name], from_array[name])


def test_label_flips_and_localised_take_tensors(strict_host, detector, excerpts):
    clean, delta = excerpts
    adversarial = clean + delta
    masks = torch.from_numpy(audio_grid()).expand(3, 115, 80)
    flip_test = ThresholdCrossing(torch.tensor([1, 0, 1]), 0.5)  # targets made as a tensor
    scores = {"norm": magnitude(clean, adversarial, masks, 20)}
    np.testing.assert_array_equal(scores["norm"], magnitude(clean.numpy(), adversarial.numpy(), masks.numpy(), 20))
    flips = label_flips(detector, flip_test, clean, adversarial, masks, np.full(3, 20), scores, np.array([[1, 20]] * 3), 8)
    reference = label_flips(detector, ThresholdCrossing(np.array([1, 0, 1]), 0.5), clean, adversarial, masks, np.full(3, 20), scores,
                            np.array([[1, 20]] * 3), 8)
    np.testing.assert_array_equal(flips["norm"], reference["norm"])

    def by_norm(inputs, classes, ids, item_masks, n_segments):
        return {"norm": magnitude(torch.zeros_like(inputs), inputs, item_masks, 20)}

    found = localised_experiment(detector, flip_test, clean, adversarial, masks, np.full(3, 20), ["a", "b", "c"], [1], by_norm, ["norm"], 8)
    assert found[1].kept.dtype == bool and found[1].decisions.shape == (3,)


def test_other_tensor_inputs(strict_host):
    np.testing.assert_array_equal(reaches_target(torch.tensor([0.9, 0.1]), torch.tensor([1, 1]), 0.5), [True, False])
    np.testing.assert_array_equal(
        draw_targets(0, ["x", "y"], torch.tensor([3, 4]), 10), draw_targets(0, ["x", "y"], np.array([3, 4]), 10)
    )
    scores = aggregate(torch.ones(1, 1, 2, 2), torch.tensor([[[0, 0], [1, 1]]]), 2)
    np.testing.assert_array_equal(scores["mean"], [[1.0, 1.0]])



def test_use_device_changes_no_cuda_setting_on_the_cpu():
    from advxai.runtime import use_device

    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32)
    before = flags()
    assert use_device("cpu") == torch.device("cpu")
    assert flags() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_use_device_cuda_without_a_gpu_names_the_config_key():
    from advxai.runtime import use_device

    with pytest.raises(RuntimeError, match="config key 'device' is 'cuda'"):
        use_device("cuda")


def test_exact_cuda_arithmetic_sets_the_exact_flags_and_restores_the_previous_ones():
    from advxai.runtime import EXACT_CUDA, exact_cuda_arithmetic

    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    before = flags()
    with exact_cuda_arithmetic():
        assert flags() == EXACT_CUDA == (False, False, True, False)
    assert flags() == before
