"""Parse-time checks of a workflow configuration that a JSON schema cannot express.

Each failure raises one :class:`ConfigError` naming the config key, before any job runs.
The checks run while Snakemake parses the workflow, so they import neither torch nor
torchvision nor captum: model and attribution names are read from those packages' sources.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .constants import BUNDLED_MODELS, ModelSizes, architecture_sizes
from .names import BUILTIN_EXPLAINERS


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package '{package}' is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _decorator_name(decorator: ast.expr) -> str | None:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)


@functools.cache
def torchvision_classifiers() -> list[str]:
    """What ``torchvision.models.list_models(module=torchvision.models)`` returns, without importing
    torchvision: the functions decorated with ``@register_model`` in ``torchvision/models/*.py``
    (the classification builders; detection, segmentation etc. live in sub-packages)."""
    names = set()
    for source in _package_dir("torchvision").joinpath("models").glob("*.py"):
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and any(_decorator_name(d) == "register_model" for d in node.decorator_list):
                names.add(node.name)
    return sorted(names)


@functools.cache
def captum_attributions() -> frozenset[str]:
    """The names ``captum.attr`` exports, read from its ``__init__.py`` without importing captum."""
    tree = ast.parse(_package_dir("captum").joinpath("attr", "__init__.py").read_text(encoding="utf-8"))
    return frozenset(alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names)


def check_architecture(key: str, architecture: str) -> None:
    """Fail unless ``architecture`` is a torchvision classifier, a bundled model or an importable plug-in."""
    if ":" in architecture:
        module = architecture.split(":", 1)[0]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{key}: plug-in module '{module}' cannot be imported (architecture '{architecture}')")
        return
    if architecture in BUNDLED_MODELS or architecture in torchvision_classifiers():
        return
    raise ConfigError(
        f"{key}: unknown model '{architecture}'; use a torchvision classification model name "
        f"(torchvision.models.list_models()), one of {list(BUNDLED_MODELS)}, or 'module:function'"
    )


def model_sizes(entry: Mapping[str, Any]) -> ModelSizes:
    """(resize, crop) of a model entry: its ``resize_size`` / ``input_size``, else its architecture's
    (:func:`advxai.constants.architecture_sizes`)."""
    default = architecture_sizes(entry["architecture"])
    return ModelSizes(resize=int(entry.get("resize_size", default.resize)), crop=int(entry.get("input_size", default.crop)))


def _check_path(key: str, value: str | None) -> None:
    if not value:
        raise ConfigError(f"{key}: a path is required for this dataset")
    if not Path(value).exists():
        raise ConfigError(f"{key}: path '{value}' does not exist")


def check_extra_explainers(key: str, extras: list[Mapping[str, Any]]) -> None:
    names = [e["name"] for e in extras]
    for i, spec in enumerate(extras):
        if spec["name"] in BUILTIN_EXPLAINERS or names.count(spec["name"]) > 1:
            raise ConfigError(f"{key}[{i}].name: '{spec['name']}' clashes with another explainer name")
        if "captum" in spec:
            if spec["captum"] not in captum_attributions():
                raise ConfigError(f"{key}[{i}].captum: captum.attr has no attribution class '{spec['captum']}'")
        elif importlib.util.find_spec(spec["function"].split(":")[0]) is None:
            raise ConfigError(f"{key}[{i}].function: module of '{spec['function']}' cannot be imported")


def check_config(config: Mapping[str, Any]) -> None:
    """All parse-time checks of a validated config."""
    image = config.get("image", {})
    if image.get("enabled", True):
        enabled = {label: entry for label, entry in image["models"].items() if entry.get("enabled", True)}
        if not enabled:
            raise ConfigError("image.models: no model is enabled")
        for label, entry in enabled.items():
            check_architecture(f"image.models.{label}.architecture", entry["architecture"])
        if image["dataset"] == "imagenet":
            _check_path("image.imagenet_root", image.get("imagenet_root"))
        check_extra_explainers("image.extra_explainers", image.get("extra_explainers", []))
        if not image.get("explainers") and not image.get("extra_explainers"):
            raise ConfigError("image.explainers: name at least one explainer")
        for ks_key in ("rect_ks",):
            grid = image["rect"]["grid"]
            too_big = [k for k in image["labelflip"][ks_key] + [image["labelflip"]["k"]] if k > grid * grid]
            if "rect" in image["segmentations"] and too_big:
                raise ConfigError(f"image.labelflip.{ks_key}: k={too_big[0]} exceeds the {grid * grid} rectangles")
    audio = config.get("audio", {})
    if audio.get("enabled", True) and audio.get("corpus") == "jamendo":
        _check_path("audio.jamendo_root", audio.get("jamendo_root"))
    untrained = [s for s in audio.get("experiment_seeds") or [] if s not in audio.get("seeds", [])]
    if untrained:
        raise ConfigError(f"audio.experiment_seeds: {untrained} are not among the trained detector seeds audio.seeds {audio.get('seeds')}")
