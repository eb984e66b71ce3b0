"""What a workflow job's time grows with, from the configuration: the ``work`` of :mod:`advxai.plan`.

A pilot with cheaper settings (fewer images per shard, PGD steps, samples) prices the real run
when each job's time is its start-up plus a cost per unit of work. The units count the model
passes (or decoded images, audio seconds, training examples) a job makes, up to a factor that
is the same for the pilot and the plan and cancels out. They are approximations: they ignore,
e.g., that only successful adversaries enter the evaluation subsets, and how the batch size
changes a pass's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .names import FAMILIES

JAMENDO_SONGS = {"train": 61, "valid": 16, "test": 16}
JAMENDO_SONG_SECONDS = 230.0
"""Jamendo-VAD: 93 songs, about 6 h in all (Ramona et al. 2008); where the corpus is the real one
its size is not read (the plan must not need the data), these numbers stand in."""

SPLITS = ("train", "valid", "test")

Subsets = Mapping[str, tuple[float, float]]


def _songs(config: Mapping[str, Any], split: str) -> float:
    """Audio seconds of a split."""
    audio = config["audio"]
    if audio["corpus"] == "synthetic":
        return audio["synthetic"]["songs"][split] * audio["synthetic"]["seconds"]
    return JAMENDO_SONGS[split] * JAMENDO_SONG_SECONDS


def _explain_passes(settings: Mapping[str, Any], family: str) -> float:
    """Model passes per item of one explanation family: LIME's samples, a gradient family's
    plain pass and noisy passes (shared by SG, SG² and VarGrad), IG times its steps."""
    if family.startswith("lime"):
        return settings["lime_samples"]
    if family == "extra":
        return 1.0
    noisy = 1 + settings["noise_samples"]
    return noisy * settings["ig_steps"] if family == "ig" else noisy


def _image_families(image: Mapping[str, Any]) -> list[str]:
    requested = set(image["explainers"])
    families = [f for f, members in FAMILIES.items() if requested & set(members)]
    return families + (["lime"] if "lime" in requested else []) + (["extra"] if image["extra_explainers"] else [])


def _image_work(rule: str, wildcards: Mapping[str, str], config: Mapping[str, Any], subsets: Subsets | None) -> float:
    image = config["image"]
    items = image["shard_size"]
    if image["max_images"] is not None:
        items = min(items, image["max_images"])
    evaluated, localised = items * image["subset"]["fraction"], items * image["subset"]["localised_fraction"]
    if subsets is not None and wildcards.get("model") in subsets:  # a pilot's subsets as drawn, per shard
        evaluated, localised = subsets[wildcards["model"]]
    explain = image["explain"]
    all_families = sum(_explain_passes(explain, f) for f in _image_families(image))
    seg = wildcards.get("seg", "rect")
    ks = len(image["labelflip"]["rect_ks"] if seg == "rect" else image["labelflip"]["slic_fractions"])
    work: dict[str, Callable[[], float]] = {
        "image_shard": lambda: items,
        "image_clean_predictions": lambda: items,
        "image_attack": lambda: items * image["pgd"]["steps"],
        "image_segments": lambda: evaluated + localised,
        "image_explain": lambda: evaluated * _explain_passes(explain, wildcards.get("family", "lime")),
        "image_labelflip": lambda: evaluated * len(image["explainers"]) * (1 + ks),
        "image_refine": lambda: localised * len(image["localised"]["ks"]),
        "image_localised": lambda: localised * len(image["localised"]["ks"]) * all_families,
    }
    return work[rule]() if rule in work else 1.0


def _audio_work(rule: str, wildcards: Mapping[str, str], config: Mapping[str, Any]) -> float:
    audio = config["audio"]
    explain = audio["explain"]
    test_songs = audio["synthetic"]["songs"]["test"] if audio["corpus"] == "synthetic" else JAMENDO_SONGS["test"]
    excerpts = test_songs * audio["excerpts"]["per_song"] * 2  # both directions
    gradient = sum(_explain_passes(explain, f) for f in FAMILIES)
    passes = explain["lime_samples"] + gradient
    work: dict[str, Callable[[], float]] = {
        "audio_synthetic_corpus": lambda: sum(_songs(config, split) for split in SPLITS),
        "audio_features": lambda: _songs(config, wildcards.get("split", "train")),
        "audio_train_detector": lambda: audio["train"]["epochs"] * audio["train"]["batches_per_epoch"] * audio["train"]["batch_size"],
        "audio_evaluate_detector": lambda: _songs(config, "valid") + _songs(config, "test"),
        "audio_attack": lambda: _songs(config, "test") * audio["attack"]["max_iter"],
        "audio_excerpts": lambda: excerpts,
        "audio_explain": lambda: excerpts * passes,
        "audio_labelflip": lambda: excerpts * len(audio["explainers"]) * len(audio["labelflip_ks"]),
        "audio_refine": lambda: excerpts * len(audio["localised_ks"]),
        "audio_localised": lambda: excerpts * len(audio["localised_ks"]) * passes,
    }
    return work[rule]() if rule in work else 1.0


def job_work(rule: str, wildcards: Mapping[str, str], config: Mapping[str, Any], subsets: Subsets | None = None) -> float:
    """Units of work of one job of ``rule`` under ``config`` (1 for a rule whose cost is fixed).

    The evaluation subsets hold ``fraction`` of a shard's images where every adversary succeeds
    (as PGD does on the paper's trained models); ``subsets`` gives a pilot's subsets as drawn
    (model → items per shard in the label-flip and localised subsets), so that a pilot model
    whose adversaries failed (zero work) prices nothing and its jobs are priced from the others.
    """
    if "model" in wildcards or rule == "image_shard":
        return _image_work(rule, wildcards, config, subsets)
    return _audio_work(rule, wildcards, config)
