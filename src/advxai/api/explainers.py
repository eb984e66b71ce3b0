"""The explainers a caller of :func:`advxai.evaluate` names, sorted into what the engine runs.

* a built-in name (``"lime"``, ``"ig-sg"``, ...): the engine runs it, sharing passes within its family;
* a config entry (``{"name": ..., "captum": ...}`` or ``{"name": ..., "function": "module:function"}``);
* a captum attribution class or instance;
* a callable ``(model, inputs, targets) -> attributions`` of the inputs' shape, aggregated like the
  gradient explainers; or, where it takes a ``masks`` argument,
  ``(model, inputs, targets, masks) -> (N, S)`` segment scores (largest = most important).

A mapping ``{name: explainer}`` names them; otherwise a name comes from the class or function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..names import BUILTIN_EXPLAINERS

SegmentScores = Callable[..., Any]
"""``(model, inputs, targets, masks) -> (N, S)`` segment scores."""


@dataclass
class Explainers:
    """The requested explainers, in the caller's order: built-in names, engine extras, segment scorers."""

    builtin: list[str] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)  # engine specs: config entries, or {"name", "explainer"}
    segment_scorers: dict[str, SegmentScores] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        if name in self.names or name in ("magnitude", "magnitude-mean"):
            raise ValueError(f"explainer name {name!r} is used twice (or is a baseline's name)")
        self.names.append(name)


def _is_captum(value: Any) -> bool:
    try:
        from captum.attr import Attribution
    except ImportError:  # pragma: no cover - captum is a dependency
        return False
    return (inspect.isclass(value) and issubclass(value, Attribution)) or isinstance(value, Attribution)


def _captum_callable(value: Any) -> Callable:
    """captum's ``attribute`` for the explained class; a class is built on the model of each call."""
    if inspect.isclass(value):
        return lambda model, inputs, targets: value(model).attribute(inputs, target=targets)
    return lambda model, inputs, targets: value.attribute(inputs, target=targets)


def _default_name(value: Any) -> str:
    if _is_captum(value):
        return (value if inspect.isclass(value) else type(value)).__name__.lower()
    return getattr(value, "__name__", type(value).__name__)


def _takes_masks(function: Callable) -> bool:
    try:
        return "masks" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def sort_explainers(explainers: Sequence[Any] | Mapping[str, Any]) -> Explainers:
    """Sort ``explainers`` (see the module docstring); an error names the first one that is none of these."""
    named = list(explainers.items()) if isinstance(explainers, Mapping) else [(None, e) for e in explainers]
    if not named:
        raise ValueError("explainers: name at least one explainer")
    sorted_ = Explainers()
    for name, value in named:
        if isinstance(value, str):
            if value not in BUILTIN_EXPLAINERS:
                raise ValueError(f"explainers: unknown explainer {value!r}; built-in: {', '.join(BUILTIN_EXPLAINERS)}")
            sorted_.add(value)  # the engine keys its scores by the built-in name
            sorted_.builtin.append(value)
        elif isinstance(value, Mapping):
            spec = {**value, "name": value.get("name", name)}
            sorted_.add(spec["name"])
            sorted_.extras.append(spec)
        elif _is_captum(value) or callable(value):
            label = name or _default_name(value)
            sorted_.add(label)
            if not _is_captum(value) and _takes_masks(value):
                sorted_.segment_scorers[label] = value
            else:
                sorted_.extras.append(
                    {"name": label, "explainer": _captum_callable(value) if _is_captum(value) else value}
                )
        else:
            raise TypeError(
                f"explainers: {value!r} is neither a built-in name, a config entry, a captum attribution nor a callable"
            )
    return sorted_
