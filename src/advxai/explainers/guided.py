"""Guided Backprop that guides every ReLU-like activation of a model.

Captum's ``GuidedBackprop`` hooks ``nn.ReLU`` modules only, so functional ``F.relu`` (torchvision
Inception v3, DenseNet's last ReLU) and ``ReLU6`` (EfficientNet-Lite) silently keep their plain
gradient. Here one :class:`~torch.overrides.TorchFunctionMode` intercepts the activation *calls*
made during the model's forward, whether they come from a module or a functional call, in place
or not, and replaces them by an autograd function with the guided backward rule
(Springenberg et al. 2015): the gradient passes only where the activation passes its input
(``0 < x``, and ``x < max`` for clipped ReLUs) **and** the incoming gradient is positive.

Guided (counted by :func:`audit_guided_activations` under these kinds):

* ``relu``: ``nn.ReLU``, ``F.relu``, ``F.relu_``, ``torch.relu``, ``torch.relu_``,
  ``Tensor.relu``, ``Tensor.relu_``;
* ``relu6``: ``nn.ReLU6``, ``F.relu6`` and ``F.hardtanh(x, 0, 6)`` (``nn.ReLU6`` calls it);
* ``clipped_relu``: ``nn.Hardtanh`` / ``F.hardtanh`` with ``min_val == 0`` and another maximum;
* ``leaky_relu``: ``nn.LeakyReLU`` / ``F.leaky_relu`` (the singing-voice detector's activation):
  negative incoming gradients are zeroed (the guidance) and the rest is scaled by the
  activation's own slope (1 above zero, ``negative_slope`` below), which reduces to the ReLU rule
  for a zero slope.

Unguidable (raise :class:`UnguidableActivationError`): rectifier-like activations without a
zero floor, whose guided rule is not defined — SiLU, GELU, ELU, SELU, CELU, PReLU,
RReLU, Hardswish, Mish, Softplus, Threshold, and Hardtanh with ``min_val != 0``.

The authors' code (captum's ``GuidedBackprop``) guides ``nn.ReLU`` modules only. With
``relu_modules_only`` (the ``authors_code.unguided_functional_relu`` key; docs/decisions.md,
decision 22) a call is guided only where an ``nn.ReLU`` module makes it, and every other
rectifier call keeps its plain gradient: DenseNet's functional last ReLU, ReLU6, LeakyReLU.

Left with their plain gradient, as in the original method: squashing and gating functions
(sigmoid, tanh, hardsigmoid, softmax, GLU), which are not rectifiers. Activations written as
arithmetic (``x * torch.sigmoid(x)``), ``clamp``, or custom autograd functions cannot be told apart
from ordinary computation and are not recognised.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "GUIDED_KINDS",
    "UnguidableActivationError",
    "audit_guided_activations",
    "guided_backprop",
    "guided_gradients",
]

GUIDED_KINDS = ("relu", "relu6", "clipped_relu", "leaky_relu")


class UnguidableActivationError(RuntimeError):
    """The model evaluates an activation for which Guided Backprop has no guided rule."""


class _GuidedRectifier(torch.autograd.Function):
    """``clamp(x, 0, upper)`` whose backward passes ``max(grad, 0)`` where the clamp is open.

    It computes and saves what the native activation does: the clamp (in place for an in-place
    call), and the result (ReLU, in-place calls) or the input (``hardtanh``) for the backward,
    where one native kernel zeroes the gradient where the clamp is closed: ``0 < y < upper``
    exactly where ``0 < x < upper``. No mask of its own, no copy (benchmarks/README.md, "Guided
    Backprop at the native activations' cost").
    """

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, upper: float | None, inplace: bool) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(inputs)
            outputs = inputs.clamp_(min=0.0, max=upper)
        else:
            outputs = inputs.clamp(min=0.0, max=upper)
        ctx.upper = upper
        ctx.save_for_backward(outputs if inplace or upper is None else inputs)
        return outputs

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (opened_where,) = ctx.saved_tensors
        guided = grad_output.clamp(min=0.0)
        if ctx.upper is None:
            return torch.ops.aten.threshold_backward(guided, opened_where, 0.0), None, None
        return torch.ops.aten.hardtanh_backward(guided, opened_where, 0.0, ctx.upper), None, None


class _GuidedLeakyRectifier(torch.autograd.Function):
    """``leaky_relu(x, slope)`` whose backward passes ``max(grad, 0)`` times the local slope.

    As the native activation: in place for an in-place call, saving the result where its sign is
    the input's (a slope of at least 0), else the input.
    """

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, slope: float, inplace: bool) -> torch.Tensor:
        if inplace:
            # with a negative slope the result's sign is not the input's: keep the input
            signs = inputs.clone() if slope < 0 else None
            ctx.mark_dirty(inputs)
            outputs = F.leaky_relu_(inputs, slope)
            signs = outputs if signs is None else signs
        else:
            outputs, signs = F.leaky_relu(inputs, slope), inputs
        ctx.slope, ctx.saved_result = slope, signs is outputs
        ctx.save_for_backward(signs)
        return outputs

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (signs,) = ctx.saved_tensors
        return torch.ops.aten.leaky_relu_backward(grad_output.clamp(min=0.0), signs, ctx.slope, ctx.saved_result), None, None


@dataclass(frozen=True)
class _RectifierCall:
    """How to read one rectifier entry point's arguments.

    Args:
        name: the name shown in audits and errors.
        parameters: positional parameter names, in order.
        defaults: values of parameters the call may omit (``min_val``, ``max_val``, ``inplace``).
    """

    name: str
    parameters: tuple[str, ...]
    defaults: Mapping[str, Any]

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in."""
        bound = dict(self.defaults)
        bound.update(zip(self.parameters, args))
        bound.update(kwargs)
        return bound


# Built once at import, before mutmut can switch a mutant on: not mutated (tests/README.md, mutation testing).
def _rectifier_calls() -> dict[Callable[..., Any], _RectifierCall]:  # pragma: no mutate block
    relu = {"min_val": 0.0, "max_val": None, "inplace": False}
    relu6 = {"min_val": 0.0, "max_val": 6.0, "inplace": False}
    hardtanh = {"min_val": -1.0, "max_val": 1.0, "inplace": False}
    leaky = {"min_val": 0.0, "max_val": None, "inplace": False, "negative_slope": 0.01}
    entries = [
        (F.relu, "torch.nn.functional.relu", ("input", "inplace"), relu),
        (torch.relu, "torch.relu", ("input",), relu),
        (torch.relu_, "torch.relu_", ("input",), {**relu, "inplace": True}),
        (torch.Tensor.relu, "Tensor.relu", ("input",), relu),
        (torch.Tensor.relu_, "Tensor.relu_", ("input",), {**relu, "inplace": True}),
        (F.relu6, "torch.nn.functional.relu6", ("input", "inplace"), relu6),
        (torch._C._nn.relu6, "torch._C._nn.relu6", ("input",), relu6),
        (torch._C._nn.relu6_, "torch._C._nn.relu6_", ("input",), {**relu6, "inplace": True}),
        (F.hardtanh, "torch.nn.functional.hardtanh", ("input", "min_val", "max_val", "inplace"), hardtanh),
        (torch._C._nn.hardtanh, "torch._C._nn.hardtanh", ("input", "min_val", "max_val"), hardtanh),
        (F.hardtanh_, "torch.nn.functional.hardtanh_", ("input", "min_val", "max_val"), {**hardtanh, "inplace": True}),
        (F.leaky_relu, "torch.nn.functional.leaky_relu", ("input", "negative_slope", "inplace"), leaky),
        (F.leaky_relu_, "torch.nn.functional.leaky_relu_", ("input", "negative_slope"), {**leaky, "inplace": True}),
        (torch._C._nn.leaky_relu, "torch._C._nn.leaky_relu", ("input", "negative_slope"), leaky),
        (torch._C._nn.leaky_relu_, "torch._C._nn.leaky_relu_", ("input", "negative_slope"), {**leaky, "inplace": True}),
    ]
    return {function: _RectifierCall(name, parameters, defaults) for function, name, parameters, defaults in entries}


def _unguidable_calls() -> dict[Callable[..., Any], str]:  # pragma: no mutate block
    names = {
        F: ["silu", "gelu", "elu", "elu_", "selu", "celu", "prelu", "rrelu", "rrelu_",
            "hardswish", "mish", "softplus", "threshold", "threshold_"],
        torch: ["selu", "selu_", "celu", "celu_", "prelu", "rrelu", "rrelu_", "threshold", "threshold_"],
        torch._C._nn: ["silu", "silu_", "gelu", "gelu_", "elu", "elu_",
                       "rrelu_with_noise", "hardswish", "hardswish_", "mish", "mish_", "softplus"],
    }
    calls: dict[Callable[..., Any], str] = {}
    for namespace, attributes in names.items():
        for attribute in attributes:
            function = getattr(namespace, attribute, None)
            if function is not None:
                # Aliases (F.prelu is torch.prelu) keep the first, most familiar name.
                calls.setdefault(function, f"{namespace.__name__}.{attribute}")
    return calls


_RECTIFIERS = _rectifier_calls()
_UNGUIDABLE = _unguidable_calls()


class _ModuleScope:
    """Tracks which submodule of ``model`` is running, by two global module hooks.

    Global hooks, registered once per context, cost a fraction of two hooks on every submodule
    registered per pass (EfficientNet-Lite0's 138 modules: 0.8 ms of each pass on a CPU); the
    module names are looked up only for an error message.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        self._members: set[nn.Module] = set()
        self._stack: list[nn.Module] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _ModuleScope:
        self._members = set(self._model.modules())
        self._handles = [
            nn.modules.module.register_module_forward_pre_hook(self._enter_module),
            # always_call: the stack is unwound even when a forward raises.
            nn.modules.module.register_module_forward_hook(self._leave_module, always_call=True),
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()

    def _enter_module(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if module in self._members:
            self._stack.append(module)

    def _leave_module(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()

    @property
    def inside_model(self) -> bool:
        """Whether a forward of the model (or one of its submodules) is running."""
        return bool(self._stack)

    @property
    def in_relu_module(self) -> bool:
        """Whether the running submodule is an ``nn.ReLU`` (the only activation captum guides)."""
        return bool(self._stack) and isinstance(self._stack[-1], nn.ReLU)

    def current(self) -> str:
        """The running submodule as ``"path (ClassName)"``."""
        module = self._stack[-1]
        name = next(name for name, member in self._model.named_modules() if member is module)
        return f"{name or type(module).__name__} ({type(module).__name__})"


class _GuidedActivationMode(TorchFunctionMode):
    """Replaces rectifier calls made inside the model's forward by :class:`_GuidedRectifier`.

    Args:
        scope: tells whether a call happens inside the model and in which submodule.
        strict: raise at the first unguidable activation (else only record it).
        relu_modules_only: guide only the calls that ``nn.ReLU`` modules make, as captum does.
    """

    def __init__(self, scope: _ModuleScope, strict: bool, relu_modules_only: bool) -> None:
        super().__init__()
        self.scope = scope
        self.strict = strict
        self.relu_modules_only = relu_modules_only
        self.counts: collections.Counter[str] = collections.Counter({kind: 0 for kind in GUIDED_KINDS})
        self.unguidable: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch protocol)
        kwargs = kwargs or {}
        if not self.scope.inside_model:
            return func(*args, **kwargs)
        call = _RECTIFIERS.get(func)
        if call is not None:
            bound = call.bind(args, kwargs)
            if bound["min_val"] == 0:
                if self.relu_modules_only and not self.scope.in_relu_module:
                    return func(*args, **kwargs)  # captum's GuidedBackprop leaves it with its plain gradient
                return self._guided(bound)
            self._reject(f"{call.name}(min_val={bound['min_val']})")
        elif func in _UNGUIDABLE:
            self._reject(_UNGUIDABLE[func])
        return func(*args, **kwargs)

    def _guided(self, bound: Mapping[str, Any]) -> torch.Tensor:
        inputs, upper = bound["input"], bound["max_val"]
        # In place where the call is: its caller may rely on the side effect
        inplace = bool(bound["inplace"])
        if "negative_slope" in bound:
            self.counts["leaky_relu"] += 1
            return _GuidedLeakyRectifier.apply(inputs, float(bound["negative_slope"]), inplace)
        kind = "relu" if upper is None else "relu6" if upper == 6 else "clipped_relu"
        self.counts[kind] += 1
        return _GuidedRectifier.apply(inputs, None if upper is None else float(upper), inplace)

    def _reject(self, activation: str) -> None:
        where = f"{activation} in {self.scope.current()}"
        self.unguidable[where] += 1
        if self.strict:
            raise UnguidableActivationError(f"Guided Backprop cannot guide {where}. {_GUIDABLE_HELP}")


_GUIDABLE_HELP = (
    "Guided: ReLU, ReLU6, LeakyReLU and Hardtanh with min_val=0 (module or functional, in place or not); "
    "see advxai.explainers.guided for the unguidable list. Replace the activation or drop GBP for this model."
)


@contextlib.contextmanager
def _guided_mode(model: nn.Module, strict: bool, relu_modules_only: bool) -> Iterator[_GuidedActivationMode]:
    with _ModuleScope(model) as scope, _GuidedActivationMode(scope, strict, relu_modules_only) as mode:
        yield mode


@contextlib.contextmanager
def guided_backprop(model: nn.Module, relu_modules_only: bool = False) -> Iterator[collections.Counter[str]]:
    """Context in which every ReLU-like activation of ``model``'s forward has the guided backward.

    Only calls made while ``model`` (or one of its submodules) is running are replaced; the
    backward may run after the context has closed.

    Args:
        model: the network whose forward passes are guided.
        relu_modules_only: guide only ``nn.ReLU`` modules' calls, as captum (module docstring).

    Yields:
        collections.Counter: the number of guided activation calls so far, by kind.

    Raises:
        UnguidableActivationError: at the first unguidable activation the forward evaluates.
    """
    with _guided_mode(model, strict=True, relu_modules_only=relu_modules_only) as mode:
        yield mode.counts


def audit_guided_activations(model: nn.Module, example_input: torch.Tensor, relu_modules_only: bool = False) -> dict[str, int]:
    """Runs one forward of ``model`` under Guided Backprop and counts what was guided.

    Args:
        model: the network to audit.
        example_input: one input batch ``(N, C, *spatial)`` for the forward.
        relu_modules_only: count as :func:`guided_backprop` with this setting guides.

    Returns:
        dict[str, int]: guided activation calls by kind (every kind of ``GUIDED_KINDS`` present).

    Raises:
        UnguidableActivationError: listing every unguidable activation call found, by module.
    """
    with torch.no_grad(), _guided_mode(model, strict=False, relu_modules_only=relu_modules_only) as mode:
        model(example_input)
    if mode.unguidable:
        found = "; ".join(f"{where} x{count}" for where, count in mode.unguidable.items())
        raise UnguidableActivationError(
            f"Guided Backprop cannot guide {type(model).__name__}: {found}. {_GUIDABLE_HELP}"
        )
    return dict(mode.counts)


def guided_gradients(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | Sequence[int] | int, relu_modules_only: bool = False,
) -> torch.Tensor:
    """Guided Backprop attributions: the guided gradient of each item's target logit.

    Args:
        model: the network, returning logits ``(N, n_classes)``.
        inputs: the batch ``(N, C, *spatial)``.
        targets: one class index per item ``(N,)``, or one index for all items.
        relu_modules_only: guide only ``nn.ReLU`` modules' calls, as captum (module docstring).

    Returns:
        torch.Tensor: attributions with the shape of ``inputs``, detached.

    Raises:
        ValueError: if ``targets`` does not give one class per item.
        UnguidableActivationError: if the model evaluates an unguidable activation.
    """
    targets = torch.as_tensor(targets, dtype=torch.long, device=inputs.device)
    if targets.ndim == 0:
        targets = targets.expand(inputs.shape[0])
    if targets.shape != (inputs.shape[0],):
        raise ValueError(f"targets: expected one class per item, shape ({inputs.shape[0]},), got {tuple(targets.shape)}")
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad(), guided_backprop(model, relu_modules_only):
        logits = model(inputs)
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"targets: class indices must lie in [0, {logits.shape[1]}), got {targets.tolist()}")
    selected = logits.gather(1, targets[:, None]).sum()
    (gradients,) = torch.autograd.grad(selected, inputs)
    return gradients
