"""Guided Backprop guides every ReLU-like activation: known answers and independent references."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from captum.attr import GuidedBackprop
from messages import exactly
from torch import nn

from advxai.explainers.guided import (
    UnguidableActivationError,
    audit_guided_activations,
    guided_backprop,
    guided_gradients,
)
from advxai.models import load_model

# The five paper architectures and EfficientNet-Lite0, at the smallest input each accepts.
ARCHITECTURES = {
    "alexnet": 63,
    "vgg16": 32,
    "resnet50": 32,
    "densenet161": 32,
    "inception_v3": 75,
    "efficientnet_lite0": 32,
}
# nn.ReLU modules only (in place, reused in ResNet): captum's GuidedBackprop is a correct reference.
CAPTUM_REFERENCE = {"alexnet", "vgg16", "resnet50"}
# Counted by hand: ResNet-50 stem + 16 bottlenecks × 3; DenseNet161 norm0 + 78 layers × 2 +
# 3 transitions + the functional ReLU in forward; Lite0 stem + 1 + 15 × 2 block ReLU6 + head.
KNOWN_COUNTS = {
    "resnet50": {"relu": 49, "relu6": 0, "clipped_relu": 0, "leaky_relu": 0},
    "densenet161": {"relu": 161, "relu6": 0, "clipped_relu": 0, "leaky_relu": 0},
    "efficientnet_lite0": {"relu": 0, "relu6": 33, "clipped_relu": 0, "leaky_relu": 0},
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def architecture(request: pytest.FixtureRequest) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(name, random-weight model, one input, its predicted class, its GBP), built once per module."""
    name = request.param
    model = load_model(name, weights=None).module
    size = ARCHITECTURES[name]
    inputs = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = model(inputs).argmax(1)
    return name, model, inputs, target, guided_gradients(model, inputs, target)


def plain_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inputs = inputs.detach().requires_grad_(True)
    logits = model(inputs)
    (gradients,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), inputs)
    return gradients


class ReferenceGuidedClamp(torch.autograd.Function):
    """Hook-free guided rectifier written independently of advxai.explainers.guided."""

    @staticmethod
    def forward(ctx, inputs, upper):  # noqa: ANN001, ANN205
        ctx.save_for_backward(inputs)
        ctx.upper = upper
        return torch.clamp(inputs, min=0.0) if upper is None else torch.clamp(inputs, 0.0, upper)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: ANN001, ANN205
        (inputs,) = ctx.saved_tensors
        opened = inputs > 0 if ctx.upper is None else (inputs > 0) & (inputs < ctx.upper)
        return torch.where(opened & (grad_output > 0), grad_output, torch.zeros_like(grad_output)), None


def reference_guided_clamp(inputs: torch.Tensor, upper: float | None) -> torch.Tensor:
    return ReferenceGuidedClamp.apply(inputs, upper)


class _Tracer(fx.Tracer):
    """Keeps EfficientNet's dynamic-padding convolutions (shape arithmetic) as leaves."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return type(module).__name__ == "Conv2dDynamicSamePadding" or super().is_leaf_module(module, qualified_name)


def _rectifier_upper(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[bool, float | None]:
    """(is a ReLU-like call, its upper clip) for one graph node."""
    if node.op == "call_module":
        module = modules[node.target]
        if type(module) is nn.ReLU:
            return True, None
        if type(module) is nn.ReLU6:
            return True, 6.0
    if node.op == "call_function" and node.target in (F.relu, torch.relu):
        return True, None
    if node.op == "call_function" and node.target is F.relu6:
        return True, 6.0
    return False, None


def guided_reference_model(model: nn.Module) -> tuple[fx.GraphModule, int]:
    """A traced copy of ``model`` with every ReLU/ReLU6 call rewritten to the reference rule."""
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    rewritten = 0
    for node in list(graph.nodes):
        is_rectifier, upper = _rectifier_upper(node, modules)
        if not is_rectifier:
            continue
        with graph.inserting_before(node):
            guided = graph.call_function(reference_guided_clamp, (node.args[0], upper))
        node.replace_all_uses_with(guided)
        graph.erase_node(node)
        rewritten += 1
    return fx.GraphModule(model, graph), rewritten


def test_guided_differs_from_saliency(architecture) -> None:
    name, model, inputs, target, guided = architecture
    plain = plain_gradients(model, inputs, target)
    assert guided.abs().max() > 0, name
    assert (guided - plain).abs().max() > 1e-3 * plain.abs().max(), name


def test_guided_matches_reference(architecture) -> None:
    name, model, inputs, target, guided = architecture
    if name in CAPTUM_REFERENCE:
        reference = GuidedBackprop(model).attribute(inputs.clone(), target=target)
    else:
        reference_model, rewritten = guided_reference_model(model)
        assert rewritten > 0
        reference = plain_gradients(reference_model, inputs, target)
    assert reference.abs().max() > 0
    torch.testing.assert_close(guided, reference, rtol=1e-5, atol=1e-6 * float(reference.abs().max()))


def test_audit_counts_every_rectifier_call(architecture) -> None:
    name, model, inputs, _, _ = architecture
    counts = audit_guided_activations(model, inputs)
    _, rewritten = guided_reference_model(model)
    assert sum(counts.values()) == rewritten, name
    if name in KNOWN_COUNTS:
        assert counts == KNOWN_COUNTS[name]


class HandmadeNet(nn.Module):
    """Two nn.ReLU (one reused twice), a functional relu, an in-place Tensor.relu_, a ReLU6 and a
    Hardtanh(0, 1): relu 5, relu6 1, clipped_relu 1."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 6)
        self.second = nn.Linear(6, 6)
        self.last = nn.Linear(6, 3)
        self.shared_relu = nn.ReLU(inplace=True)
        self.other_relu = nn.ReLU()
        self.relu6 = nn.ReLU6()
        self.clip = nn.Hardtanh(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared_relu(self.first(x))
        x = self.shared_relu(self.second(x))
        x = F.relu(self.other_relu(x))
        x = x * 2.0
        x.relu_()  # the side effect alone must take effect
        return self.last(self.clip(self.relu6(x)))


def test_audit_counts_on_handmade_net() -> None:
    net = HandmadeNet().eval()
    inputs = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    assert audit_guided_activations(net, inputs) == {"relu": 5, "relu6": 1, "clipped_relu": 1, "leaky_relu": 0}
    with torch.no_grad(), guided_backprop(net):
        guided_forward = net(inputs)
    torch.testing.assert_close(guided_forward, net(inputs).detach(), rtol=0, atol=0)


class Scale(nn.Module):
    """f(x) = Σ v · act(x), whose guided gradient is known in closed form."""

    def __init__(self, weights: list[float], activation: nn.Module) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.activation(x) * self.weights).sum(1, keepdim=True)


@pytest.mark.parametrize(
    ("activation", "inputs", "weights", "expected"),
    [
        # gradient passes where x > 0 and the incoming gradient v > 0
        (nn.ReLU(), [1.0, 2.0, -1.0, 3.0], [1.0, -1.0, 2.0, 0.5], [1.0, 0.0, 0.0, 0.5]),
        # ReLU6 additionally blocks x >= 6
        (nn.ReLU6(), [1.0, 7.0, 3.0, 6.0], [1.0, 2.0, -1.0, 4.0], [1.0, 0.0, 0.0, 0.0]),
        # LeakyReLU: negative incoming gradients are blocked, the rest scaled by the local slope
        (nn.LeakyReLU(0.1), [1.0, -2.0, -1.0, 3.0], [1.0, 2.0, -1.0, -0.5], [1.0, 0.2, 0.0, 0.0]),
    ],
)
def test_guided_rule_known_answer(activation, inputs, weights, expected) -> None:
    model = Scale(weights, activation)
    attributions = guided_gradients(model, torch.tensor([inputs]), 0)
    torch.testing.assert_close(attributions, torch.tensor([expected]))


class SideEffect(nn.Module):
    """f(x) = Σ v · act(x) through the activation's result, or through its side effect alone when in place."""

    def __init__(self, weights: torch.Tensor, activation: nn.Module, inplace: bool) -> None:
        super().__init__()
        self.register_buffer("weights", weights)
        self.activation, self.inplace = activation, inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x * 1.0  # not the leaf: an in-place activation may overwrite it
        result = self.activation(hidden)
        return ((hidden if self.inplace else result) * self.weights).sum(1, keepdim=True)


class Activated(SideEffect):
    """act(x) itself, as the result or through the side effect of an in-place call."""

    def __init__(self, activation: nn.Module, inplace: bool) -> None:
        super().__init__(torch.ones(()), activation, inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x * 1.0
        result = self.activation(hidden)
        return hidden if self.inplace else result


RECTIFIERS = {  # name: (activation given inplace, upper clip, slope below zero)
    "relu": (lambda inplace: nn.ReLU(inplace=inplace), None, None),
    "relu6": (lambda inplace: nn.ReLU6(inplace=inplace), 6.0, None),
    "hardtanh(0, 1)": (lambda inplace: nn.Hardtanh(0.0, 1.0, inplace=inplace), 1.0, None),
    "leaky_relu(0.1)": (lambda inplace: nn.LeakyReLU(0.1, inplace=inplace), None, 0.1),
    "leaky_relu(-0.5)": (lambda inplace: nn.LeakyReLU(-0.5, inplace=inplace), None, -0.5),
}


@pytest.mark.parametrize("inplace", [False, True], ids=["out_of_place", "in_place"])
@pytest.mark.parametrize("kind", list(RECTIFIERS))
def test_every_rectifier_in_place_or_not_has_the_guided_rule_and_its_plain_forward(kind, inplace) -> None:
    """The closed-form rule at the clip points themselves (0 and the upper clip), with incoming gradients of both signs."""
    make, upper, slope = RECTIFIERS[kind]
    x = torch.tensor([[-2.0, -0.0, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0] * 2])
    weights = torch.tensor([1.0, -1.0, 2.0, -0.5, 1.5, 0.25, 3.0, 1.0] + [-1.0, 1.0, -2.0, 0.5, -1.5, -0.25, -3.0, -1.0])
    model = SideEffect(weights, make(inplace), inplace)
    passing = weights.clamp(min=0.0)
    if slope is not None:
        expected = passing * torch.where(x > 0, 1.0, slope)
    else:
        opened = (x > 0) if upper is None else (x > 0) & (x < upper)
        expected = torch.where(opened, passing, 0.0)
    torch.testing.assert_close(guided_gradients(model, x, 0), expected, rtol=0, atol=0)
    with torch.no_grad(), guided_backprop(model):
        guided_forward = model(x)
    torch.testing.assert_close(guided_forward, model(x), rtol=0, atol=0)
    # element by element (the weighted sum above cancels between the halves), with autograd recording as when explaining
    activated = Activated(make(inplace), inplace)
    with guided_backprop(activated):
        recorded_forward = activated(x.requires_grad_(True))
    torch.testing.assert_close(recorded_forward, activated(x).detach(), rtol=0, atol=0)


def test_calls_outside_the_model_are_not_guided() -> None:
    model = Scale([1.0, 1.0], nn.ReLU())
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    with guided_backprop(model):
        outside = (torch.relu(x) * torch.tensor([-1.0, 1.0])).sum()
    (gradients,) = torch.autograd.grad(outside, x)
    torch.testing.assert_close(gradients, torch.tensor([[-1.0, 1.0]]))


@pytest.mark.parametrize("activation", [nn.SiLU(), nn.GELU(), nn.ELU(), nn.Hardtanh()])
def test_unguidable_activation_raises(activation: nn.Module) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), activation, nn.Linear(4, 2))
    inputs = torch.randn(1, 3)
    with pytest.raises(UnguidableActivationError, match=rf"in 3 \({type(activation).__name__}\)"):
        audit_guided_activations(model, inputs)
    with pytest.raises(UnguidableActivationError, match=type(activation).__name__):
        guided_gradients(model, inputs, 0)
    # the scope's global module hooks are gone with the context, raised or not
    hooks = torch.nn.modules.module
    assert not hooks._global_forward_pre_hooks and not hooks._global_forward_hooks


def test_audit_lists_every_unguidable_activation() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))
    with pytest.raises(UnguidableActivationError) as raised:
        audit_guided_activations(model, torch.randn(1, 3))
    assert "silu in 1 (SiLU)" in str(raised.value) and "gelu in 3 (GELU)" in str(raised.value)


def test_targets_are_checked() -> None:
    model = Scale([1.0, 1.0], nn.ReLU())
    with pytest.raises(ValueError, match="targets"):
        guided_gradients(model, torch.ones(2, 2), [0])
    with pytest.raises(ValueError, match="targets"):
        guided_gradients(model, torch.ones(2, 2), [0, 1])


def test_singing_voice_detector_is_guided() -> None:
    """The detector's LeakyReLUs are guided, so GBP differs from the plain gradient."""
    from advxai.svds.model import SVDS

    model = SVDS(generator=torch.Generator().manual_seed(0)).eval()
    inputs = torch.randn(2, 115, 80, generator=torch.Generator().manual_seed(1))
    counts = audit_guided_activations(model, inputs)
    assert counts["leaky_relu"] == 6

    class TwoClass(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detector = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.detector(x)
            return torch.cat([-z, z], dim=1)

    wrapped = TwoClass().eval()
    guided = guided_gradients(wrapped, inputs, 1)
    x = inputs.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(wrapped(x)[:, 1].sum(), x)
    assert not torch.allclose(guided, plain, atol=1e-6)


class _FinalReluAsWhere(nn.Module):
    """DenseNet's forward with its functional last ReLU written as ``torch.where``, which Guided
    Backprop does not recognise: the model's every other activation is one of its nn.ReLU modules."""

    def __init__(self, densenet: nn.Module) -> None:
        super().__init__()
        self.densenet = densenet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.densenet.features(x)
        out = torch.where(features > 0, features, 0.0)
        return self.densenet.classifier(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


def test_authors_setting_leaves_exactly_densenets_final_functional_relu_unguided() -> None:
    """authors_code.unguided_functional_relu (captum's rule, nn.ReLU modules only) and the default
    differ on DenseNet161, and only at its last ReLU: with that ReLU unguided by construction,
    guiding everything gives the authors' setting bit for bit."""
    from advxai.torchvision_import import import_torchvision

    torch.manual_seed(0)
    model = import_torchvision().models.densenet161(weights=None).eval()
    inputs = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = model(inputs).argmax(1)
    every_relu = guided_gradients(model, inputs, target)
    modules_only = guided_gradients(model, inputs, target, relu_modules_only=True)
    assert not torch.equal(every_relu, modules_only)
    assert torch.equal(modules_only, guided_gradients(_FinalReluAsWhere(model), inputs, target))
    assert audit_guided_activations(model, inputs)["relu"] == 161
    assert audit_guided_activations(model, inputs, relu_modules_only=True)["relu"] == 160


# --- error texts pinned whole (each written against a surviving mutant, tests/README.md) ---

GUIDABLE_HELP = (
    "Guided: ReLU, ReLU6, LeakyReLU and Hardtanh with min_val=0 (module or functional, in place or not); "
    "see advxai.explainers.guided for the unguidable list. Replace the activation or drop GBP for this model."
)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear, self.activation = nn.Linear(3, 3), nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class NestedAndFunctional(nn.Module):
    """A SiLU module two levels down, called twice, and a functional GELU in the model's own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(Block())
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        x = self.body[0].activation(x)
        return self.head(F.gelu(x))


def test_audit_names_each_unguidable_call_by_its_innermost_module_and_counts_it():
    with pytest.raises(UnguidableActivationError) as raised:
        audit_guided_activations(NestedAndFunctional(), torch.randn(2, 3))
    assert str(raised.value) == (
        "Guided Backprop cannot guide NestedAndFunctional: torch.nn.functional.silu in body.0.activation (SiLU) x2; "
        f"torch.nn.functional.gelu in NestedAndFunctional (NestedAndFunctional) x1. {GUIDABLE_HELP}"
    )


def test_a_functional_unguidable_call_in_the_models_own_forward_is_named_by_its_class():
    model = nn.Sequential(nn.Linear(3, 3))
    model.forward = lambda x: F.gelu(nn.Sequential.forward(model, x))  # the root module makes the call
    with pytest.raises(UnguidableActivationError, match=exactly(
        f"Guided Backprop cannot guide torch.nn.functional.gelu in Sequential (Sequential). {GUIDABLE_HELP}"
    )):
        guided_gradients(model, torch.randn(2, 3), 0)


def test_targets_errors_and_dtypes():
    model = Scale([1.0, 1.0, 1.0], nn.ReLU())
    with pytest.raises(ValueError, match=exactly("targets: expected one class per item, shape (2,), got (1,)")):
        guided_gradients(model, torch.ones(2, 3), [0])
    with pytest.raises(ValueError, match=exactly("targets: class indices must lie in [0, 1), got [0, 1]")):
        guided_gradients(model, torch.ones(2, 3), [0, 1])
    inputs = torch.tensor([[1.0, -1.0, 2.0], [3.0, 1.0, -2.0]])
    as_bytes = guided_gradients(model, inputs, torch.tensor([0, 0], dtype=torch.uint8))
    assert torch.equal(as_bytes, guided_gradients(model, inputs, [0, 0]))


class FailsOnOddWidths(nn.Module):
    """A model whose inner layer raises for inputs of odd width (a forward that fails part-way)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) if x.shape[1] % 2 == 0 else self.inner[0](torch.zeros(1)).view(2, 2)


def outside_gradients(x: torch.Tensor) -> torch.Tensor:
    """Plain gradients of calls made outside the model: a ReLU and a LeakyReLU given its slope by keyword."""
    outside = (torch.relu(x) * torch.tensor([-1.0, 1.0])).sum() + F.leaky_relu(-x, negative_slope=0.5).sum()
    return torch.autograd.grad(outside, x)[0]


def test_calls_outside_stay_plain_after_forwards_and_a_failed_forward() -> None:
    """The scope is left as each module's forward ends, also when it raises, and a module that is not
    the model's own, called outside it, does not enter it; calls outside keep their keyword arguments."""
    model = FailsOnOddWidths()
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    expected = torch.tensor([[-1.0, 1.0]]) - 0.5
    with guided_backprop(model):
        model(torch.ones(1, 2))
        assert torch.equal(outside_gradients(x), expected)
        with pytest.raises(RuntimeError):
            model(torch.ones(1, 3))
        nn.Identity()(x)  # a module of no model: the scope's hooks see it too
        assert torch.equal(outside_gradients(x), expected)


def test_authors_setting_keeps_keyword_arguments_of_the_calls_it_leaves_alone() -> None:
    class KeywordLeaky(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(x, negative_slope=0.5)

    x, model = torch.tensor([[-2.0, 3.0]]), KeywordLeaky()
    with torch.no_grad(), guided_backprop(model, relu_modules_only=True):
        assert torch.equal(model(x), torch.tensor([[-1.0, 3.0]]))


def test_a_clipped_rectifier_without_a_zero_floor_is_named_with_its_floor() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Hardtanh(-2.0, 2.0))
    with pytest.raises(UnguidableActivationError, match=exactly(
        f"Guided Backprop cannot guide torch.nn.functional.hardtanh(min_val=-2.0) in 1 (Hardtanh). {GUIDABLE_HELP}"
    )):
        guided_gradients(model, torch.randn(2, 3), 0)
