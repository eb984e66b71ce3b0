"""Config validation: every bad value gives one error naming its key, before any job runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from advxai import constants
from advxai.config_checks import ConfigError, check_config, model_sizes

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def load(*names: str) -> dict:
    config: dict = {}
    for name in names:
        _merge(config, yaml.safe_load((ROOT / name).read_text()))
    return config


def _merge(base: dict, overlay: dict) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@pytest.mark.parametrize("files", [("config.yaml",), ("config.yaml", "presets/test.yaml")])
def test_shipped_configs_are_valid(files):
    config = load(*files)
    validate(config, schema=SCHEMA)
    check_config(config)


def test_paper_preset_is_valid_against_the_schema():
    config = load("config.yaml", "presets/paper.yaml")
    validate(config, schema=SCHEMA)
    assert set(config["image"]["models"]) >= {"alexnet", "vgg16", "resnet50", "densenet161", "inception_v3"}
    assert config["image"]["explain"] == {**config["image"]["explain"], "lime_samples": 512, "noise_samples": 25, "ig_steps": 50}
    assert config["image"]["subset"]["fraction"] == 0.1 and config["audio"]["explain"]["lime_samples"] == 8192


def _invalid(mutate) -> str:
    config = load("config.yaml")
    mutate(config)
    with pytest.raises((WorkflowError, ConfigError)) as raised:
        validate(config, schema=SCHEMA)
        check_config(config)
    return str(raised.value)


def test_unknown_key_is_named():
    assert "lime_sample" in _invalid(lambda c: c["image"]["explain"].update(lime_sample=3))


def test_wrong_type_is_named():
    assert "shard_size" in _invalid(lambda c: c["image"].update(shard_size="eight"))


def test_batch_size_is_a_number_or_auto():
    config = load("config.yaml")
    config["image"]["batch_size"] = "auto"
    validate(config, schema=SCHEMA)
    assert "batch_size" in _invalid(lambda c: c["image"].update(batch_size="fast"))
    assert "batch_size" in _invalid(lambda c: c["image"].update(batch_size=0))


def test_arithmetic_is_exact_by_default_and_one_of_three():
    config = load("config.yaml")
    assert config["image"]["arithmetic"] == "exact"
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["image"]["properties"]["arithmetic"]
    assert schema == {"enum": list(constants.ARITHMETICS), "default": "exact"}
    for arithmetic in constants.ARITHMETICS:
        config["image"]["arithmetic"] = arithmetic
        validate(config, schema=SCHEMA)
    assert "arithmetic" in _invalid(lambda c: c["image"].update(arithmetic="fp16"))


def test_unknown_explainer_is_named():
    assert "saliency-xx" in _invalid(lambda c: c["image"]["explainers"].append("saliency-xx"))


def test_unknown_model_names_the_key():
    message = _invalid(lambda c: c["image"]["models"]["efficientnet_lite0"].update(architecture="resnet5O"))
    assert "image.models.efficientnet_lite0.architecture" in message and "resnet5O" in message


def test_model_label_data_is_reserved_for_the_image_data_folder():
    message = _invalid(lambda c: c["image"]["models"].update(data=c["image"]["models"]["efficientnet_lite0"]))
    assert "data" in message and "models" in message


def test_model_labels_may_contain_underscores():
    config = load("config.yaml")
    config["image"]["models"]["res__net_a"] = config["image"]["models"]["efficientnet_lite0"]
    validate(config, schema=SCHEMA)
    check_config(config)


def test_missing_dataset_path_names_the_key(tmp_path):
    message = _invalid(lambda c: c["image"].update(dataset="imagenet", imagenet_root=str(tmp_path / "nowhere")))
    assert "image.imagenet_root" in message


def test_unknown_captum_class_names_the_key():
    message = _invalid(lambda c: c["image"].update(extra_explainers=[{"name": "occ", "captum": "Occlusionn"}]))
    assert "image.extra_explainers[0].captum" in message


def test_model_sizes_follow_the_paper():
    assert model_sizes({"architecture": "inception_v3"}) == (299, 299)
    assert model_sizes({"architecture": "resnet50"}) == (256, 224)
    assert model_sizes({"architecture": "x:y", "input_size": 64, "resize_size": 72}) == (72, 64)


def test_paper_preset_runs_exactly_the_five_paper_models():
    config = load("config.yaml", "presets/paper.yaml")
    enabled = {label: entry["architecture"] for label, entry in config["image"]["models"].items() if entry.get("enabled", True)}
    assert enabled == {
        "alexnet": "alexnet",
        "vgg16": "vgg16",
        "resnet50": "resnet50",
        "densenet161": "densenet161",
        "inception_v3": "inception_v3",
    }


def test_experiment_seeds_must_be_trained_detectors():
    message = _invalid(lambda c: c["audio"].update(experiment_seeds=[7]))
    assert "audio.experiment_seeds" in message and "7" in message


def test_the_paper_preset_turns_on_every_behaviour_of_the_authors_code_and_the_default_none():
    """authors_code is the one place for the authors' code's behaviour (docs/decisions.md, decision 35)."""
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["authors_code"]["properties"]
    default, paper = load("config.yaml")["authors_code"], load("config.yaml", "presets/paper.yaml")["authors_code"]
    assert set(default) == set(paper) == set(schema) == {"unguided_functional_relu", "empty_fraction_selects_all"}
    assert not any(default.values()) and all(paper.values())
    assert all(schema[key]["default"] is False for key in schema)


def comments_at(path: str, key: str) -> str:
    """The comment lines right above the first line that sets ``key`` (e.g. ``"  segmentations:"``), and its own comment."""
    lines = (ROOT / path).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(key))
    above = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        above.append(line)
    return "\n".join([*reversed(above), lines[at].partition("#")[2]])


@pytest.mark.parametrize("path, key, cited", [
    ("config.yaml", "  segmentations:", "Decision 13"),  # the whole grid runs
    ("config.yaml", "  models:", "Decision 21"),  # no PGD hyper-parameter search
    ("config.yaml", "  attack:", "Decision 21"),
    ("config.yaml", "authors_code:", "decision 35"),
    ("config.yaml", "  unguided_functional_relu:", "Decision 22"),
])
def test_decisions_stand_beside_the_config_keys_they_concern(path, key, cited):
    assert cited in comments_at(path, key)


def test_the_paper_presets_subset_is_a_fraction_of_all_images_drawn_from_the_successful_ones():
    comment = comments_at("presets/paper.yaml", "    fraction:")
    assert "of all 50 000 images" in comment and "drawn from the successful adversaries" in comment


def test_paper_preset_attacks_one_detector_and_trains_five():
    config = load("config.yaml", "presets/paper.yaml")
    assert config["audio"]["seeds"] == [0, 1, 2, 3, 4] and len(config["audio"]["experiment_seeds"]) == 1


def test_the_paper_preset_and_the_schema_defaults_repeat_advxai_constants():
    """The paper's settings live in advxai.constants; the YAML files that repeat them must agree."""
    paper = load("presets/paper.yaml")
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]
    explain = {"lime_kernel_width": constants.LIME_KERNEL_WIDTH, "noise_samples": constants.NOISE_SAMPLES,
               "noise_std": constants.NOISE_STD, "ig_steps": constants.IG_STEPS}
    assert paper["image"]["explain"] == {**explain, "lime_samples": constants.IMAGE_LIME_SAMPLES}
    assert paper["audio"]["explain"] == {**explain, "lime_samples": constants.AUDIO_LIME_SAMPLES}
    image_explain = schema["image"]["properties"]["explain"]["properties"]
    assert {key: image_explain[key]["default"] for key in paper["image"]["explain"]} == paper["image"]["explain"]
    assert paper["image"]["pgd"]["steps"] == schema["image"]["properties"]["pgd"]["properties"]["steps"]["default"] == constants.PGD_STEPS
    assert paper["audio"]["attack"] == {"alpha": constants.ATTACK_ALPHA, "epsilon": constants.ATTACK_EPSILON,
                                        "lr": constants.ATTACK_LR, "max_iter": constants.ATTACK_MAX_ITER}
    assert paper["audio"]["train"] == {"epochs": constants.TRAIN_EPOCHS, "batches_per_epoch": constants.TRAIN_BATCHES_PER_EPOCH,
                                       "batch_size": constants.TRAIN_BATCH_SIZE, "lr": constants.TRAIN_LR,
                                       "lr_decay": constants.TRAIN_LR_DECAY}
    assert schema["audio"]["properties"]["median_filter"]["default"] == constants.MEDIAN_FILTER


def test_every_paper_default_is_defined_once_and_the_schema_engine_and_config_agree():
    """advxai.constants holds each paper default; the schema's defaults, the engine's and the stages' defaults
    repeat it, and config.yaml keeps it wherever it does not shrink a setting for the demo (its comments say which)."""
    import inspect

    from advxai.explainers.engine import ExplainSettings
    from advxai.explainers.lime import lime_explain
    from advxai.explainers.settings import ExplainerSettings
    from advxai.stages.settings import PgdSettings, SegmentationSettings

    paper = ExplainerSettings(lime_samples=constants.IMAGE_LIME_SAMPLES, lime_kernel_width=constants.LIME_KERNEL_WIDTH,
                              noise_samples=constants.NOISE_SAMPLES, noise_std=constants.NOISE_STD,
                              ig_steps=constants.IG_STEPS)
    assert ExplainSettings().explainer == ExplainerSettings.paper() == paper
    assert ExplainerSettings.paper("audio").lime_samples == constants.AUDIO_LIME_SAMPLES
    defaults = inspect.signature(lime_explain).parameters
    assert (defaults["n_samples"].default, defaults["kernel_width"].default) == (
        constants.IMAGE_LIME_SAMPLES, constants.LIME_KERNEL_WIDTH)
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["image"]["properties"]
    explain = {key: value["default"] for key, value in schema["explain"]["properties"].items()
               if key != "keep_attributions"}
    assert explain == paper.as_params()
    rect = {key: value["default"] for key, value in schema["rect"]["properties"].items()}
    assert rect == {"grid": SegmentationSettings.paper("rect").grid}
    slic = SegmentationSettings.paper("slic")
    assert {key: value["default"] for key, value in schema["slic"]["properties"].items()} == {
        "n_segments": slic.n_segments, "compactness": slic.compactness, "sigma": slic.sigma}
    assert schema["labelflip"]["properties"]["k"]["default"] == constants.LABELFLIP_K
    pgd_steps = PgdSettings(epsilon=0.1, step_size=0.1).steps
    assert schema["pgd"]["properties"]["steps"]["default"] == pgd_steps == constants.PGD_STEPS
    config = load("config.yaml")
    image, audio = config["image"], config["audio"]
    assert image["explain"]["lime_kernel_width"] == audio["explain"]["lime_kernel_width"] == constants.LIME_KERNEL_WIDTH
    assert image["explain"]["noise_std"] == audio["explain"]["noise_std"] == constants.NOISE_STD
    assert (image["rect"], image["slic"]) == ({"grid": constants.RECT_GRID}, {"n_segments": constants.SLIC_SEGMENTS,
                                              "compactness": constants.SLIC_COMPACTNESS, "sigma": constants.SLIC_SIGMA})
    assert (image["pgd"]["steps"], image["labelflip"]["k"]) == (constants.PGD_STEPS, constants.LABELFLIP_K)
    assert {key: audio["attack"][key] for key in ("alpha", "epsilon", "lr")} == {
        "alpha": constants.ATTACK_ALPHA, "epsilon": constants.ATTACK_EPSILON, "lr": constants.ATTACK_LR}
    assert audio["median_filter"] == constants.MEDIAN_FILTER
