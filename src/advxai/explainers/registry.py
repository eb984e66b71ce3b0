"""Explainer names, families and plug-in explainers (docs/method.md §7).

Built-in names are a contract used by configs, file layouts and tables:
``lime``, ``sal``, ``ig``, ``gbp`` and their NoiseTunnel ensembles ``<m>-sg`` (SmoothGrad),
``<m>-sg2`` (SmoothGrad²) and ``<m>-vg`` (VarGrad). The gradient explainers come in families that
share work: one family run computes the plain map and all requested ensembles from one set of
noisy passes. LIME is its own family because it must run once per segmentation.

Extra explainers come from the config, either a captum attribution class::

    {"name": "occlusion", "captum": "Occlusion",
     "init": {}, "attribute": {"sliding_window_shapes": [3, 8, 8]}}

or a plug-in function ``module:function`` with signature ``(model, inputs, targets) -> Tensor``::

    {"name": "mine", "function": "my_package.explain:attributions"}

Both return pixel attributions shaped like the inputs and are aggregated like the gradient maps.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the workflow reads the names at parse time, which must not import torch
    import torch
    from torch import nn

from advxai.names import AGGREGATIONS, BUILTIN_EXPLAINERS, ENSEMBLES, FAMILIES, GRADIENT_METHODS, LIME_FAMILY

__all__ = [
    "AGGREGATIONS",
    "BUILTIN_EXPLAINERS",
    "ENSEMBLES",
    "FAMILIES",
    "GRADIENT_METHODS",
    "LIME_FAMILY",
    "ExplainerFn",
    "family_of",
    "make_extra_explainer",
    "split_gradient_explainer",
    "validate_explainers",
]

ExplainerFn = Callable[["nn.Module", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""An extra explainer: ``(model, inputs (N, C, *spatial), targets (N,)) -> attributions like inputs``."""


def _unknown(name: str, valid: Iterable[str]) -> ValueError:
    return ValueError(f"unknown explainer '{name}'; valid explainers: {', '.join(valid)}")


def family_of(name: str) -> str:
    """The family of a built-in explainer: ``saliency``, ``ig``, ``gbp`` or ``lime``."""
    if name == LIME_FAMILY:
        return LIME_FAMILY
    for family, names in FAMILIES.items():
        if name in names:
            return family
    raise _unknown(name, BUILTIN_EXPLAINERS)


def split_gradient_explainer(name: str) -> tuple[str, str | None]:
    """``"sal-sg2"`` → ``("sal", "sg2")``, ``"ig"`` → ``("ig", None)``; ValueError for others."""
    if name == LIME_FAMILY or name not in BUILTIN_EXPLAINERS:
        raise _unknown(name, BUILTIN_EXPLAINERS[1:])
    method, _, ensemble = name.partition("-")
    return method, ensemble or None


def validate_explainers(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Check explainer names against the built-ins and the configured extra names.

    Returns:
        list[str]: the names, in order. Raises ValueError naming the first unknown or repeated
        name and listing the valid ones.
    """
    valid = (*BUILTIN_EXPLAINERS, *extra)
    names = list(names)
    seen: set[str] = set()
    for name in names:
        if name not in valid:
            raise _unknown(name, valid)
        if name in seen:
            raise ValueError(f"explainer '{name}' is listed twice")
        seen.add(name)
    return names


def _config_value(value: Any) -> Any:
    """Config (YAML/JSON) values to captum arguments: nested lists → tensors, flat lists → tuples."""
    if isinstance(value, Mapping):
        return {key: _config_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if any(isinstance(item, (list, tuple)) for item in value):
            import torch

            return torch.tensor(value)
        return tuple(value)
    return value


def _on_device(value: Any, device: torch.device) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _on_device(item, device) for key, item in value.items()}
    return value


def _captum_explainer(name: str, class_name: str, init: Mapping[str, Any], attribute: Mapping[str, Any]) -> ExplainerFn:
    import captum.attr

    cls = getattr(captum.attr, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, captum.attr.Attribution)):
        raise ValueError(f"explainer '{name}': '{class_name}' is not an attribution class in captum.attr")
    init_kwargs = _config_value(dict(init))
    attribute_kwargs = _config_value(dict(attribute))
    if "target" in attribute_kwargs:
        raise ValueError(f"explainer '{name}': 'target' is set by the workflow, remove it from 'attribute'")

    def explain(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        explainer = cls(model, **_on_device(init_kwargs, inputs.device))
        return explainer.attribute(inputs, target=targets, **_on_device(attribute_kwargs, inputs.device))

    explain.__name__ = name
    return explain


def _plugin_explainer(name: str, reference: str) -> ExplainerFn:
    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name:
        raise ValueError(f"explainer '{name}': function '{reference}' must have the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"explainer '{name}': cannot import module '{module_name}' ({error})") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"explainer '{name}': module '{module_name}' has no function '{function_name}'")
    return function


def make_extra_explainer(spec: Mapping[str, Any]) -> ExplainerFn:
    """Build a configured extra explainer (a captum class or a ``module:function`` plug-in).

    Args:
        spec (Mapping): ``{"name", "captum", "init", "attribute"}`` or ``{"name", "function"}``
            (from Python also ``{"name", "explainer": callable}``).
            In ``init``/``attribute``, lists become tuples (e.g. ``sliding_window_shapes``) and
            nested lists become tensors (e.g. ``feature_mask``), moved to the inputs' device.

    Returns:
        Callable: ``(model, inputs, targets) -> pixel attributions`` shaped like ``inputs``.
    """
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"extra explainer {dict(spec)!r} needs a non-empty 'name'")
    if name in BUILTIN_EXPLAINERS:
        raise ValueError(f"extra explainer '{name}' clashes with a built-in explainer name")
    kind = [key for key in ("captum", "function", "explainer") if key in spec]
    if len(kind) != 1:
        raise ValueError(f"extra explainer '{name}' needs exactly one of 'captum', 'function' or (from Python) 'explainer'")
    if kind == ["explainer"]:  # advxai.evaluate: the callable itself, which no config can hold
        if set(spec) != {"name", "explainer"} or not callable(spec["explainer"]):
            raise ValueError(f"extra explainer '{name}': 'explainer' must be a callable, beside 'name' only")
        return spec["explainer"]
    allowed = {"name", "captum", "init", "attribute"} if kind == ["captum"] else {"name", "function"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"extra explainer '{name}': unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    if kind == ["captum"]:
        return _captum_explainer(name, spec["captum"], spec.get("init") or {}, spec.get("attribute") or {})
    return _plugin_explainer(name, spec["function"])
