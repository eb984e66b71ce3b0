"""Small and large model families: plug-ins with 10 classes or another input size, a torchvision
model outside the paper's five with random weights, and a class count that does not fit the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fabricate import PLUGIN_MODULE, plugin_folder

from advxai.constants import ModelSizes
from advxai.models import load_model
from advxai.stages.image import attack_shard, clean_predictions
from advxai.stages.settings import ModelSpec, PgdSettings
from advxai.store import read_h5, write_h5


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_folder(tmp_path / "outside")))
    yield
    import sys

    sys.modules.pop(PLUGIN_MODULE, None)


def images_file(path, side: int, labels) -> str:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(labels), side, side, 3), dtype=np.uint8)
    write_h5(path, {"ids": [f"img{i}" for i in range(len(labels))], "labels": np.asarray(labels), "images": images}, stage="image_shard",
             params={})
    return str(path)


def spec(architecture: str, resize: int, crop: int, weights=None) -> ModelSpec:
    return ModelSpec(architecture=architecture, weights=weights, resize=resize, crop=crop, arithmetic="exact")


def model_jobs(tmp_path, model: ModelSpec, labels) -> dict[str, np.ndarray]:
    """The model's first two jobs on a two-image shard: clean predictions, then PGD."""
    images = images_file(tmp_path / "images.h5", model.crop, labels)
    clean, adversaries = str(tmp_path / "clean.h5"), str(tmp_path / "adversaries.h5")
    clean_predictions(images, clean, model=model, batch_size=2, device=torch.device("cpu"))
    pgd = PgdSettings(epsilon=0.5, step_size=0.1, steps=5, early_stop=False, seed=0)
    attack_shard(images, clean, adversaries, model=model, pgd=pgd, batch_size=2, device=torch.device("cpu"))
    return read_h5(adversaries)


def test_a_plugin_bundle_with_10_classes_at_32_px_runs_its_model_jobs(tmp_path, plugins):
    result = model_jobs(tmp_path, spec(f"{PLUGIN_MODULE}:ten", 36, 32), labels=[3, 9])
    assert result["perturbation"].shape == (2, 3, 32, 32)
    assert set(result["target"].tolist()) <= set(range(10)) and (result["target"] != result["clean_prediction"]).all()


def test_a_plugin_bundle_refuses_images_of_other_sizes_naming_the_config_keys(plugins):
    with pytest.raises(ValueError, match=r"declares input_size 32 and resize_size 36.* set image\.models\.<label>\.input_size: 32"):
        load_model(f"{PLUGIN_MODULE}:ten", weights=None, sizes=ModelSizes(resize=256, crop=224))


def test_a_bare_plugin_module_takes_the_configured_input_size(tmp_path, plugins):
    """A network that accepts only 48 px: its classes are counted at the configured size, not at 224."""
    bundle = load_model(f"{PLUGIN_MODULE}:fixed48", weights=None, sizes=ModelSizes(resize=56, crop=48))
    assert (bundle.input_size, bundle.resize_size, bundle.n_classes) == (48, 56, 1000)
    assert model_jobs(tmp_path, spec(f"{PLUGIN_MODULE}:fixed48", 56, 48), labels=[0, -1])["perturbation"].shape == (2, 3, 48, 48)


def test_a_torchvision_model_outside_the_papers_five_runs_with_random_weights(tmp_path):
    """MobileNetV3-Small at 64 px, weights null (nothing is downloaded)."""
    result = model_jobs(tmp_path, spec("mobilenet_v3_small", 72, 64), labels=[281, 967])
    assert result["perturbation"].shape == (2, 3, 64, 64) and np.abs(result["perturbation"]).max() <= 0.5 + 1e-6


def test_a_class_count_that_does_not_fit_the_labels_fails_at_the_first_job(tmp_path, plugins):
    images = images_file(tmp_path / "images.h5", 32, labels=[3, 281, -1])
    outside = r"'edge_models:ten' has 10 classes, but .*images\.h5 holds 1 image\(s\) labelled outside 0\.\.9, e\.g\. img1 with label 281"
    with pytest.raises(ValueError, match=outside):
        clean_predictions(images, str(tmp_path / "clean.h5"), model=spec(f"{PLUGIN_MODULE}:ten", 36, 32), batch_size=2,
                          device=torch.device("cpu"))
    assert not (tmp_path / "clean.h5").exists()


def test_a_bare_plugin_module_at_a_size_it_cannot_take_names_the_config_key(plugins):
    with pytest.raises(ValueError, match=r"'edge_models:fixed48' fails on a 64 px input .*image\.models\.<label>\.input_size"):
        load_model(f"{PLUGIN_MODULE}:fixed48", weights=None, sizes=ModelSizes(resize=72, crop=64))


@pytest.mark.slow
def test_a_vit_at_another_input_size_fails_at_the_first_job_naming_the_config_key(tmp_path):
    """torchvision's ViT takes 224 px only (random weights, nothing downloaded)."""
    images = images_file(tmp_path / "images.h5", 64, labels=[1])
    with pytest.raises(ValueError, match=r"'vit_b_16' cannot classify the 64 px images of .*Wrong image height.*input_size"):
        clean_predictions(images, str(tmp_path / "clean.h5"), model=spec("vit_b_16", 72, 64), batch_size=1, device=torch.device("cpu"))
