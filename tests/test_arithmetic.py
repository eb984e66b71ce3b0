"""``image.arithmetic``: exact leaves the model alone; tf32 and bf16 stay close to it (docs/exactness.md).

On a CPU ``tf32`` is the channels_last layout alone, so it must agree with exact to float32
round-off: relative 1e-5 of the largest magnitude, element by element. ``bf16`` runs the forward
in bfloat16 (an 8-bit mantissa, 4e-3 per rounding): its logits agree to 1e-2 of the largest
logit (measured 2e-3 on the tiny network below), but a gradient element changes wholly where a
bf16 rounding moves an activation across its kink, so its gradients are compared as a whole: a
relative error norm of at most 0.1 (measured 0.044; the largest single element 0.13 of the
largest magnitude).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from advxai import constants
from advxai.arithmetic import FastArithmetic, with_arithmetic
from advxai.explainers.engine import ExplainSettings, explain_all
from advxai.explainers.guided import audit_guided_activations, guided_gradients
from advxai.explainers.settings import ExplainerSettings
from advxai.models import load_model
from advxai.runtime import CUDA_ARITHMETIC, EXACT_CUDA, cuda_arithmetic, use_device
from advxai.segments import rectangles

FLOAT32_ROUND_OFF = 1e-5
BF16_LOGITS = 1e-2
BF16_GRADIENT_NORM = 0.1
SIDE = 32


def tiny_network(seed: int = 0) -> nn.Module:
    """Conv, BatchNorm, ReLU6 (EfficientNet-Lite's activation), functional-style ReLU, pooling, linear; eval mode."""
    torch.manual_seed(seed)
    network = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), norm=nn.BatchNorm2d(8), relu6=nn.ReLU6(),
        conv2=nn.Conv2d(8, 16, 3, stride=2, padding=1), relu=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(2), flatten=nn.Flatten(), head=nn.Linear(64, 10),
    ))
    with torch.no_grad():  # running statistics other than 0/1, so that BatchNorm does something
        network.norm.running_mean.uniform_(-0.5, 0.5)
        network.norm.running_var.uniform_(0.5, 2.0)
    return network.eval().requires_grad_(False)


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


TARGETS = torch.tensor([0, 3, 5, 9])


def logits_and_gradients(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.clone().requires_grad_(True)
    logits = model(inputs)
    (gradients,) = torch.autograd.grad(logits.gather(1, TARGETS[: len(inputs), None]).sum(), inputs)
    return logits.detach(), gradients


def assert_close(values: torch.Tensor, exact: torch.Tensor, relative: float) -> None:
    """Element by element, within ``relative`` of the largest magnitude of ``exact``."""
    scale = float(exact.abs().max())
    np.testing.assert_allclose(values.numpy(), exact.numpy(), rtol=0, atol=relative * scale)


def assert_gradients_close(gradients: torch.Tensor, exact: torch.Tensor, arithmetic: str) -> None:
    if arithmetic == "tf32":
        assert_close(gradients, exact, FLOAT32_ROUND_OFF)
    else:
        assert float((gradients - exact).norm() / exact.norm()) <= BF16_GRADIENT_NORM


def test_exact_is_the_module_itself_with_bitwise_equal_logits_and_gradients():
    network = tiny_network()
    assert with_arithmetic(network, "exact") is network
    plug_in = f"{__name__}:tiny_network"
    plain = load_model(plug_in).module
    exact = load_model(plug_in, arithmetic="exact").module
    assert type(exact) is type(plain) and not isinstance(exact, FastArithmetic)
    assert isinstance(load_model(plug_in, arithmetic="bf16").module, FastArithmetic)
    for a, b in zip(logits_and_gradients(plain, images()), logits_and_gradients(exact, images())):
        assert torch.equal(a, b)


@pytest.mark.parametrize("arithmetic", ["tf32", "bf16"])
def test_fast_arithmetic_stays_close_to_exact_and_returns_float32(arithmetic):
    exact_logits, exact_gradients = logits_and_gradients(tiny_network(), images())
    fast = with_arithmetic(tiny_network(), arithmetic)
    assert isinstance(fast, FastArithmetic) and not fast.training
    assert fast.network.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    logits, gradients = logits_and_gradients(fast, images())
    assert logits.dtype == gradients.dtype == torch.float32
    assert gradients.is_contiguous()  # the caller's layout, not the network's channels_last
    assert_close(logits, exact_logits, FLOAT32_ROUND_OFF if arithmetic == "tf32" else BF16_LOGITS)
    assert_gradients_close(gradients, exact_gradients, arithmetic)
    if arithmetic == "bf16":  # bf16 really ran: not float32 round-off
        assert not torch.allclose(logits, exact_logits, rtol=0, atol=FLOAT32_ROUND_OFF * float(exact_logits.abs().max()))


@pytest.mark.parametrize("arithmetic", ["tf32", "bf16"])
def test_guided_backprop_guides_the_same_activations_through_the_wrapper(arithmetic):
    exact = tiny_network()
    fast = with_arithmetic(tiny_network(), arithmetic)
    x = images()
    guided_calls = {"relu": 1, "relu6": 1, "clipped_relu": 0, "leaky_relu": 0}
    assert audit_guided_activations(fast, x[:1]) == audit_guided_activations(exact, x[:1]) == guided_calls
    expected = guided_gradients(exact, x, TARGETS)
    guided = guided_gradients(fast, x, TARGETS)
    assert guided.dtype == torch.float32 and (guided != 0).any()
    assert_gradients_close(guided, expected, arithmetic)


@pytest.mark.parametrize("arithmetic", ["tf32", "bf16"])
def test_the_explanation_engine_ranks_segments_alike_through_the_wrapper(arithmetic):
    """All 13 explainers and LIME's forward passes run through the wrapper; tf32 (channels_last
    on a CPU) gives exact's scores to round-off, bf16 keeps each item's segment ranking nearly."""
    from scipy.stats import spearmanr

    x, ids = images(2), ["a", "b"]
    masks = {"rect": torch.from_numpy(rectangles(SIDE, SIDE, 4)).long().expand(2, SIDE, SIDE)}
    counts = {"rect": np.array([16, 16])}
    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=32, noise_samples=2, ig_steps=4), seed=0, batch_size=8)
    names = ["lime", "sal", "ig", "gbp", "sal-sg", "sal-sg2", "sal-vg", "ig-sg", "ig-sg2", "ig-vg", "gbp-sg", "gbp-sg2", "gbp-vg"]
    exact = explain_all(tiny_network(), x, TARGETS[:2], ids, masks, counts, names, settings)
    fast = explain_all(with_arithmetic(tiny_network(), arithmetic), x, TARGETS[:2], ids, masks, counts, names, settings)
    correlations = []
    for name in names:
        for aggregation, values in exact[name]["rect"].items():
            ours = fast[name]["rect"][aggregation]
            if arithmetic == "tf32":
                # LIME's least squares amplifies round-off of nearly equal predictions
                assert_close(torch.from_numpy(ours), torch.from_numpy(values), 1e-3 if name == "lime" else 1e-4)
            correlations += [spearmanr(a, b).statistic for a, b in zip(values, ours)]
    # measured with bf16: Spearman 0.945 at worst, 0.996 on average over items × explainers × aggregations
    assert min(correlations) > (0.999 if arithmetic == "tf32" else 0.9)
    assert np.mean(correlations) > (0.9999 if arithmetic == "tf32" else 0.99)


def test_fast_arithmetic_refuses_exact_and_unknown_names():
    with pytest.raises(ValueError, match="'tf32' or 'bf16'"):
        FastArithmetic(tiny_network(), "exact")
    with pytest.raises(ValueError, match="image.arithmetic"):
        with_arithmetic(tiny_network(), "fp16")


def current_flags() -> tuple[bool, bool, bool, bool]:
    backends = torch.backends
    return backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.deterministic, backends.cudnn.benchmark


@pytest.mark.parametrize("arithmetic, expected", [
    ("exact", (False, False, True, False)),  # float32, deterministic kernels, no autotuner
    ("tf32", (True, True, False, True)),  # TF32, the autotuner's fastest kernels
    ("bf16", (True, True, False, True)),  # the same around bf16 autocast
])
def test_cuda_arithmetic_sets_each_mode_s_flags_and_restores_the_previous_ones(arithmetic, expected):
    assert tuple(CUDA_ARITHMETIC) == constants.ARITHMETICS and CUDA_ARITHMETIC["exact"] == EXACT_CUDA
    before = current_flags()
    with cuda_arithmetic(arithmetic):
        assert current_flags() == CUDA_ARITHMETIC[arithmetic] == expected
    assert current_flags() == before


@pytest.mark.parametrize("arithmetic", constants.ARITHMETICS)
def test_use_device_sets_no_flag_on_the_cpu(arithmetic):
    before = current_flags()
    assert use_device("cpu", arithmetic) == torch.device("cpu")
    assert current_flags() == before


def test_an_unknown_arithmetic_names_the_config_key():
    with pytest.raises(ValueError, match="image.arithmetic"):
        use_device("cpu", "fp16")
