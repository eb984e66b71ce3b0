"""Parse-time checks of a workflow configuration that a JSON schema cannot express.

Each failure raises one :class:`ConfigError` naming the config key, before any job runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping

BUNDLED_MODELS = ("efficientnet_lite0",)


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def torchvision_classifiers() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


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


def model_sizes(entry: Mapping[str, Any]) -> tuple[int, int]:
    """(resize, crop) of a model entry: REFERENCE §5.2 (Inception v3: 299/299, others 256/224)."""
    default = (299, 299) if entry["architecture"] == "inception_v3" else (256, 224)
    return int(entry.get("resize_size", default[0])), int(entry.get("input_size", default[1]))


def _check_path(key: str, value: str | None) -> None:
    if not value:
        raise ConfigError(f"{key}: a path is required for this dataset")
    if not Path(value).exists():
        raise ConfigError(f"{key}: path '{value}' does not exist")


def image_item_count(image: Mapping[str, Any]) -> int:
    """How many images the image domain runs on (after ``max_images``)."""
    from .data.images import bundled_items, imagenet_val_items

    items = bundled_items() if image["dataset"] == "bundled" else imagenet_val_items(image["imagenet_root"])
    limit = image.get("max_images")
    return len(items) if limit is None else min(limit, len(items))


def check_extra_explainers(key: str, extras: list[Mapping[str, Any]]) -> None:
    from .explainers.registry import BUILTIN_EXPLAINERS

    names = [e["name"] for e in extras]
    for i, spec in enumerate(extras):
        if spec["name"] in BUILTIN_EXPLAINERS or names.count(spec["name"]) > 1:
            raise ConfigError(f"{key}[{i}].name: '{spec['name']}' clashes with another explainer name")
        if "captum" in spec:
            import captum.attr

            if not hasattr(captum.attr, spec["captum"]):
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
