"""Image stages on fabricated shard files: subsets, label-flip settings, typed settings, provenance checks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from advxai import batching
from advxai.batching import CPU_CANDIDATES
from advxai.data.model_inputs import to_model_input
from advxai.evaluation.flips import ClassChange
from advxai.evaluation.labelflip import k_settings, label_flips
from advxai.evaluation.selection import pad_scores
from advxai.evaluation.subsets import subset_size
from advxai.report.tables import slic_segments_table
from advxai.segments import slic
from advxai.stages import image as image_stages
from advxai.stages import image_shards, image_subset_reader, refined_files
from advxai.stages import refine as refine_stages
from advxai.stages.image import labelflip_shard, localised_shard
from advxai.stages.image_segments import segment_shard
from advxai.stages.image_subset_reader import ShardFiles
from advxai.stages.image_subsets import draw_subsets
from advxai.stages.settings import (
    ExplainerSettings,
    ExplainFamilySettings,
    LabelflipSettings,
    LocalisedSettings,
    ModelSpec,
    PgdSettings,
    RefineSettings,
    SegmentationSettings,
    SubsetSettings,
)
from advxai.store import BatchCheckpoint, ProvenanceError, read_h5, require_params, write_h5


def _adversary_shards(tmp_path, n_images: int, shard_size: int) -> list[str]:
    ids = [f"img{i:03d}" for i in range(n_images)]
    success = np.arange(n_images) % 5 != 0  # every fifth attack failed
    paths = []
    for start in range(0, n_images, shard_size):
        path = tmp_path / f"shard{start}.h5"
        write_h5(path, {"ids": ids[start : start + shard_size], "success": success[start : start + shard_size]}, stage="attack", params={})
        paths.append(str(path))
    return paths



def _refined(shard, segments_file, output, localised, batch_size=4):
    """The refine stage's file that a localised job of these settings reads (at a fixed forward batch where the job's
    is auto: the planted model's decisions do not depend on it)."""
    path = f"{output}.refined.h5"
    refine_stages.refine_shard(shard, segments_file, path, model=PLANTED,
                               refine_settings=RefineSettings(localised.segmentation, localised.ks),
                               batch_size=batch_size, device=torch.device("cpu"))
    return path


def _localise(shard, segments_file, output, **kwargs):
    """Refine, then run the localised job on the refined file, as the workflow does."""
    batch_size = kwargs["batch_size"] if isinstance(kwargs["batch_size"], int) else 4
    localised_shard(shard, segments_file, _refined(shard, segments_file, output, kwargs["localised"], batch_size), output, **kwargs)

def test_subsets_are_seeded_sized_and_independent_of_sharding(tmp_path):
    params = {"fraction": 0.1, "localised_fraction": 0.1, "seed": 3, "model": "m"}
    results = []
    for shard_size in (7, 50, 200):
        folder = tmp_path / str(shard_size)
        folder.mkdir()
        draw_subsets(_adversary_shards(folder, 200, shard_size), str(folder / "subset.h5"), subset=SubsetSettings.from_params(params))
        results.append(read_h5(folder / "subset.h5"))
    first = results[0]
    for other in results[1:]:
        np.testing.assert_array_equal(first["labelflip_ids"], other["labelflip_ids"])
        np.testing.assert_array_equal(first["localised_ids"], other["localised_ids"])
    assert len(first["labelflip_ids"]) == 20 == subset_size(0.1, 200)  # 10 % of all images, as the paper's 5000 of 50 000
    assert int(first["n_adversaries"]) == 160 and int(first["n_images"]) == 200
    failed = {f"img{i:03d}" for i in range(0, 200, 5)}
    assert not failed & set(first["labelflip_ids"]) and not failed & set(first["localised_ids"])
    assert set(first["labelflip_ids"]) != set(first["localised_ids"])  # separately seeded


def test_k_settings_fixed_k_and_sweeps():
    settings = k_settings([3, 1, 16], [0.5, 1.0], np.array([16, 11]))
    np.testing.assert_array_equal(settings.k, [3, 1, 16, 0, 0])
    assert np.isnan(settings.fraction[:3]).all() and settings.fraction[3:].tolist() == [0.5, 1.0]
    np.testing.assert_array_equal(settings.per_item, [[3, 1, 16, 8, 16], [3, 1, 16, 5, 11]])


def test_settings_name_the_missing_key():
    with pytest.raises(ValueError, match=r"params: missing key 'image\.labelflip\.k'"):
        LabelflipSettings.from_params({"segmentation": "rect", "ks": [1], "fractions": []})
    with pytest.raises(ValueError, match=r"'image\.<rect\|slic>\.grid'"):
        SegmentationSettings.from_params({"method": "rect"})
    # IG needs its steps; a family without IG does not
    gradient = {"family": "ig", "explainers": ["ig", "ig-sg"], "seed": 1, "keep_attributions": False, "segmentations": ["rect"],
                "noise_samples": 2, "noise_std": 1.0}
    with pytest.raises(ValueError, match=r"'image\.explain\.ig_steps'"):
        ExplainFamilySettings.from_params(gradient)
    saliency = ExplainFamilySettings.from_params({**gradient, "family": "saliency", "explainers": ["sal"]})
    assert saliency.explainer == ExplainerSettings() and saliency.segmentations == ("rect",)
    with pytest.raises(ValueError, match=r"'image\.explain\.lime_samples'"):
        LocalisedSettings.from_params({"segmentation": "slic", "ks": [1], "explainers": ["lime"], "extra": [], "seed": 0})
    # the authors' code's switches come from their own section
    with pytest.raises(ValueError, match=r"'authors_code\.empty_fraction_selects_all'"):
        LabelflipSettings.from_params({"segmentation": "slic", "k": 3, "ks": [], "fractions": [0.1]})
    with pytest.raises(ValueError, match=r"'authors_code\.unguided_functional_relu'"):
        ExplainFamilySettings.from_params({**gradient, "family": "gbp", "explainers": ["gbp"]})
    guided = ExplainFamilySettings.from_params({**gradient, "family": "gbp", "explainers": ["gbp"], "unguided_functional_relu": True})
    assert guided.explainer.unguided_functional_relu is True and guided.as_params()["unguided_functional_relu"] is True


def test_stale_input_is_refused(tmp_path):
    path = tmp_path / "adv.h5"
    write_h5(path, {"ids": ["a"]}, stage="attack", params={"model": {"architecture": "resnet50", "weights": "IMAGENET1K_V1"}})
    with pytest.raises(ProvenanceError, match="adv.h5"):
        require_params(path, {"model": {"architecture": "resnet50", "weights": None}})


# ------------------------------------------------------------------ images with fewer segments than k
SIDE = 8
GRAY = 128  # uint8 value of every clean pixel


def _gray_channel0() -> float:
    return float(to_model_input(np.full((1, 1, 1, 3), GRAY, np.uint8))[0, 0, 0, 0])


class _ShareOfRaisedPixels(torch.nn.Module):
    """Class 1 once more than 60 % of the pixels of channel 0 lie 1 above the clean gray, else class 0."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raised = (inputs[:, 0] - _gray_channel0()).flatten(1).mean(1)
        return torch.stack([torch.zeros_like(raised), 100 * (raised - 0.6)], dim=1)


def share_of_raised_pixels() -> torch.nn.Module:
    return _ShareOfRaisedPixels()


PLANTED = ModelSpec(architecture=f"{__name__}:share_of_raised_pixels", weights="DEFAULT", resize=SIDE, crop=SIDE, arithmetic="exact")
HALVES = np.repeat(np.arange(2)[:, None], SIDE // 2, axis=0).repeat(SIDE, axis=1)  # 2 segments: top, bottom
QUADRANTS = (2 * (np.arange(SIDE)[:, None] >= SIDE // 2) + (np.arange(SIDE)[None, :] >= SIDE // 2)).astype(int)  # 4 segments


def _planted_shard(tmp_path, masks: list[np.ndarray]) -> tuple[ShardFiles, str]:
    """A shard whose adversaries raise channel 0 by 1 everywhere, with the given segment maps (all in both subsets)."""
    n = len(masks)
    ids = [f"img{i}" for i in range(n)]
    paths = {name: str(tmp_path / f"{name}.h5") for name in ("images", "adversaries", "subset", "segments")}
    write_h5(paths["images"], {"ids": ids, "labels": np.zeros(n, int), "images": np.full((n, SIDE, SIDE, 3), GRAY, np.uint8)},
             stage="image_shard", params={})
    perturbation = np.zeros((n, 3, SIDE, SIDE), np.float32)
    perturbation[:, 0] = 1.0
    write_h5(paths["adversaries"], {"ids": ids, "perturbation": perturbation, "clean_prediction": np.zeros(n, int),
                                    "final_prediction": np.ones(n, int), "success": np.ones(n, bool)},
             stage="attack", params={"model": PLANTED.as_params()})
    write_h5(paths["subset"], {"labelflip_ids": ids, "localised_ids": ids}, stage="subsets", params={})
    write_h5(paths["segments"], {"ids": ids, "masks": np.stack(masks).astype(np.int16),
                                 "n_segments": np.array([m.max() + 1 for m in masks])}, stage="segments", params={})
    return ShardFiles(images=paths["images"], adversaries=paths["adversaries"], subset=paths["subset"]), paths["segments"]


def test_labelflip_keeps_images_with_fewer_segments_than_k(tmp_path):
    """An image of 2 segments at k = 3 gets its full adversary back (a flip) and is counted; k = 1 adds back one half (no flip)."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    output = str(tmp_path / "labelflip.h5")
    labelflip_shard(shard, segments_file, [], output, model=PLANTED,
                    labelflip=LabelflipSettings(segmentation="slic", k=3, ks=(1,), fractions=()), batch_size=4, device=torch.device("cpu"))
    stored = read_h5(output)
    np.testing.assert_array_equal(stored["k"], [3, 1])
    for baseline in ("magnitude", "magnitude-mean"):
        np.testing.assert_array_equal(stored[f"flips/{baseline}/-"], [[True, False], [True, False]])  # 3 quadrants = 75 % > 60 %
    np.testing.assert_array_equal(stored["fewer_segments"], [[True, False], [False, False]])


def test_an_empty_fraction_selects_no_segment_or_as_the_authors_every_segment():
    """⌊p · n⌋ = 0 (p = 0.1 of 5 segments, 0.2 of 4): k = 0 by default; k = n with the authors' seg[-0:]."""
    n_segments, fractions = np.array([5, 4, 12, 20]), [0.1, 0.2, 1.0]
    ours = k_settings([3], fractions, n_segments)
    authors = k_settings([3], fractions, n_segments, empty_fraction_selects_all=True)
    np.testing.assert_array_equal(ours.per_item, [[3, 0, 1, 5], [3, 0, 0, 4], [3, 1, 2, 12], [3, 2, 4, 20]])
    np.testing.assert_array_equal(authors.per_item, [[3, 5, 1, 5], [3, 4, 4, 4], [3, 1, 2, 12], [3, 2, 4, 20]])
    np.testing.assert_array_equal(ours.k, authors.k)


@pytest.mark.parametrize("authors_code", [False, True])
def test_an_empty_fraction_is_no_flip_or_as_the_authors_the_whole_adversary(tmp_path, authors_code):
    """p = 0.1 of 2 or 4 segments adds back nothing (no flip), or with the authors' behaviour the whole adversary (a flip)."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    output = str(tmp_path / "labelflip.h5")
    settings = LabelflipSettings(segmentation="slic", k=1, ks=(), fractions=(0.1, 1.0), empty_fraction_selects_all=authors_code)
    labelflip_shard(shard, segments_file, [], output, model=PLANTED, labelflip=settings, batch_size=4, device=torch.device("cpu"))
    stored = read_h5(output)
    flips = stored["flips/magnitude/-"]  # settings: k = 1, p = 0.1, p = 1.0
    np.testing.assert_array_equal(flips[:, 1], [authors_code, authors_code])
    np.testing.assert_array_equal(flips[:, 2], [True, True])  # p = 1.0: the whole adversary either way


def test_the_fewer_segments_flag_is_strictly_fewer_than_k(tmp_path):
    """An image with exactly k segments is not flagged; one with fewer is, in both experiments.
    Fails if either stage flags ``n_segments <= k``."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    output = str(tmp_path / "labelflip.h5")
    labelflip_shard(shard, segments_file, [], output, model=PLANTED,
                    labelflip=LabelflipSettings(segmentation="slic", k=2, ks=(4,), fractions=()), batch_size=4, device=torch.device("cpu"))
    np.testing.assert_array_equal(read_h5(output)["fewer_segments"], [[False, True], [False, False]])
    output = str(tmp_path / "localised.h5")
    params = {"explainers": ["sal"], "extra": [], "ks": [2, 4], "segmentation": "slic", "seed": 0}
    _localise(shard, segments_file, output, model=PLANTED, localised=LocalisedSettings.from_params(params), batch_size=4,
              device=torch.device("cpu"))
    stored = read_h5(output)
    np.testing.assert_array_equal(stored["k2/fewer_segments"], [False, False])
    np.testing.assert_array_equal(stored["k4/fewer_segments"], [True, False])


def test_label_flips_select_from_rankings_wider_than_their_items_need():
    """A slice of a shard may hold only items with few segments, while its rankings keep the shard's width."""
    clean = to_model_input(np.full((2, SIDE, SIDE, 3), GRAY, np.uint8))
    adversarial = clean.clone()
    adversarial[:, 0] += 1
    narrow = np.array([[0.0, 1.0], [1.0, 0.0]])
    rankings = {"narrow": narrow, "wide": pad_scores(narrow, 4)}
    flips = label_flips(share_of_raised_pixels(), ClassChange(np.zeros(2, int)), clean, adversarial,
                        torch.from_numpy(np.stack([HALVES, HALVES])), np.array([2, 2]), rankings, np.array([[1, 2], [1, 2]]), 4)
    np.testing.assert_array_equal(flips["narrow"], [[False, True], [False, True]])  # one half: 50 %; both: 100 %
    np.testing.assert_array_equal(flips["wide"], flips["narrow"])


def test_labelflip_tables_do_not_depend_on_the_batch_size(tmp_path):
    """Slices of one item (batch 1) and one slice of all (batch 8) give the same flips."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS, QUADRANTS, HALVES, QUADRANTS])
    settings = LabelflipSettings(segmentation="slic", k=1, ks=(2, 3), fractions=(0.5,))
    stored = []
    for batch_size in (1, 8):
        output = str(tmp_path / f"labelflip{batch_size}.h5")
        labelflip_shard(shard, segments_file, [], output, model=PLANTED, labelflip=settings, batch_size=batch_size,
                        device=torch.device("cpu"))
        stored.append(read_h5(output))
    assert stored[0].keys() == stored[1].keys()
    for name in stored[0]:
        np.testing.assert_array_equal(stored[0][name], stored[1][name], err_msg=name)
    np.testing.assert_array_equal(stored[0]["flips/magnitude/-"][:, 2],
                                  [True, True, True, True, True])  # k = 3: every segment of a halved image


def test_localised_keeps_images_with_fewer_segments_than_k(tmp_path):
    """k = 1 needs only 1 segment (2 exist); at k = 3 the refined input is the full adversary, explained and counted."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES])
    output = str(tmp_path / "localised.h5")
    params = {"explainers": ["sal"], "extra": [], "ks": [1, 3], "segmentation": "slic", "seed": 0}
    _localise(shard, segments_file, output, model=PLANTED, localised=LocalisedSettings.from_params(params), batch_size=4,
              device=torch.device("cpu"))
    stored = read_h5(output)
    np.testing.assert_array_equal(stored["k1/kept"], [False])  # one half: 50 % raised, no flip
    np.testing.assert_array_equal(stored["k3/kept"], [True])
    np.testing.assert_array_equal(stored["k1/fewer_segments"], [False])
    np.testing.assert_array_equal(stored["k3/fewer_segments"], [True])
    # Both real segments and the same absent id rank in the truth and in saliency's top 3 (absent ids rank last).
    np.testing.assert_array_equal(stored["k3/recovered/sal"], [3])


def test_refine_stage_stores_the_planted_top_k_and_the_localised_stage_reads_it(tmp_path):
    """Quadrants 3, 1, 0, 2 raised by 1, 0.9, 0.8, 0.7: k = 3 raises 67.5 % (a flip), k = 1 25 %. The halves tie: the
    later id wins; at k = 3 they have fewer segments and the refined input is the full adversary."""
    shard, segments_file = _planted_shard(tmp_path, [QUADRANTS, HALVES])
    stored = read_h5(shard.adversaries)
    stored["perturbation"][0, 0] = np.array([0.8, 0.9, 0.7, 1.0])[QUADRANTS]
    write_h5(shard.adversaries, stored, stage="attack", params={"model": PLANTED.as_params()})
    localised = LocalisedSettings.from_params({"explainers": ["sal"], "extra": [], "ks": [1, 3], "segmentation": "slic", "seed": 0})
    output = str(tmp_path / "localised.h5")
    refined = read_h5(_refined(shard, segments_file, output, localised))
    assert refined["k1/segment_ids"].tolist() == [[3], [1]] and refined["k3/segment_ids"].tolist() == [[0, 1, 3], [0, 1, 3]]
    assert refined["k1/prediction"].tolist() == [0, 0] and refined["k3/prediction"].tolist() == [1, 1]
    assert refined["k1/flipped"].tolist() == [False, False] and refined["k3/flipped"].tolist() == [True, True]
    assert refined["k3/fewer_segments"].tolist() == [False, True] and int(refined["width"]) == 4
    assert refined_files.refined_sources(f"{output}.refined.h5") == {"adversaries": shard.adversaries, "segments": segments_file}
    localised_shard(shard, segments_file, f"{output}.refined.h5", output, model=PLANTED, localised=localised, batch_size=4,
                    device=torch.device("cpu"))
    assert read_h5(output)["k3/kept"].tolist() == [True, True] and read_h5(output)["k1/recovered/sal"].tolist() == [-1, -1]
    other = LocalisedSettings.from_params({"explainers": ["sal"], "extra": [], "ks": [1, 2], "segmentation": "slic", "seed": 0})
    with pytest.raises(ProvenanceError, match="refined.h5"):  # a refine file of other ks is stale
        localised_shard(shard, segments_file, f"{output}.refined.h5", output, model=PLANTED, localised=other, batch_size=4,
                        device=torch.device("cpu"))


def test_table6_counts_the_slic_segments_of_every_successful_adversary(tmp_path):
    """The segments job keeps maps for the subset only, but counts SLIC segments of all successful adversaries."""
    rng = np.random.default_rng(0)
    ids = ["img0", "img1", "img2", "img3"]
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    perturbation = rng.normal(0, 0.05, (4, 3, 32, 32)).astype(np.float32)
    paths = {name: str(tmp_path / f"{name}.h5") for name in ("images", "adversaries", "subset", "segments")}
    write_h5(paths["images"], {"ids": ids, "labels": np.zeros(4, int), "images": images}, stage="image_shard", params={})
    write_h5(paths["adversaries"], {"ids": ids, "perturbation": perturbation, "clean_prediction": np.zeros(4, int),
                                    "final_prediction": np.ones(4, int), "success": np.array([True, False, True, True])},
             stage="attack", params={})
    write_h5(paths["subset"], {"labelflip_ids": ["img0"], "localised_ids": ["img3"]}, stage="subsets", params={})
    slic_params = {"n_segments": 16, "compactness": 10.0, "sigma": 1.0}
    segment_shard(paths["images"], paths["adversaries"], paths["subset"], paths["segments"],
                  segmentation=SegmentationSettings.from_params({"method": "slic", **slic_params}))

    stored = read_h5(paths["segments"])
    adversaries = (to_model_input(images) + torch.from_numpy(perturbation)).numpy()
    expected = [int(slic(adversaries[i], **slic_params).max()) + 1 for i in (0, 2, 3)]
    assert stored["ids"].tolist() == ["img0", "img3"] and stored["masks"].shape == (2, 32, 32)  # maps: the subsets only
    assert stored["n_segments"].tolist() == [expected[0], expected[2]]
    assert stored["adversary_ids"].tolist() == ["img0", "img2", "img3"]  # counts: every successful adversary
    table = slic_segments_table({"m": [paths["segments"]]})
    assert table.n.tolist() == [3]
    assert table["mean"].iloc[0] == pytest.approx(np.mean(expected)) and table["max"].iloc[0] == max(expected)


# ------------------------------------------------------------------ batch_size: auto
def test_auto_batch_size_is_measured_recorded_and_gives_the_results_of_a_fixed_size(tmp_path):
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS, HALVES])
    params = {"explainers": ["sal", "lime"], "extra": [], "ks": [1, 3], "segmentation": "slic", "seed": 0, "lime_samples": 8,
              "lime_kernel_width": 0.25}
    outputs = {setting: str(tmp_path / f"localised-{setting}.h5") for setting in (4, "auto")}
    for setting, output in outputs.items():
        _localise(shard, segments_file, output, model=PLANTED, localised=LocalisedSettings.from_params(params), batch_size=setting,
                        device=torch.device("cpu"))
    with h5py.File(outputs["auto"]) as handle:
        assert handle.attrs["batch_size"] in CPU_CANDIDATES
    fixed, auto = read_h5(outputs[4]), read_h5(outputs["auto"])
    assert fixed.keys() == auto.keys()
    for name in fixed:
        np.testing.assert_array_equal(auto[name], fixed[name], err_msg=name)  # the planted model's decisions do not depend on the batch


def test_auto_sizes_forward_only_jobs_by_forward_passes(tmp_path, monkeypatch):
    """LIME and the label flips make forwards only: their jobs time forwards, the gradient families forward+backward."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    measured: dict[str, bool] = {}
    job = ""

    def recording(setting, module, shape, device, *, backward):
        measured[job] = backward
        return 2

    monkeypatch.setattr(batching, "choose_batch_size", recording)
    cpu = torch.device("cpu")
    for job in ("saliency", "lime_slic"):
        family = ExplainFamilySettings.from_params({"family": job, "explainers": ["sal"] if job == "saliency" else ["lime"], "seed": 0,
                                                    "segmentations": ["slic"], "noise_samples": 2, "noise_std": 1.0,
                                                    "keep_attributions": False, "lime_samples": 8, "lime_kernel_width": 0.25})
        image_stages.explain_shard(shard, {"slic": segments_file}, str(tmp_path / f"{job}.h5"), model=PLANTED, explain=family,
                                   batch_size="auto", device=cpu)
    job = "labelflip"
    labelflip_shard(shard, segments_file, [str(tmp_path / "lime_slic.h5")], str(tmp_path / "labelflip.h5"), model=PLANTED,
                    batch_size="auto", labelflip=LabelflipSettings(segmentation="slic", k=1, ks=(), fractions=()), device=cpu)
    assert measured == {"saliency": True, "lime_slic": False, "labelflip": False}


@pytest.mark.parametrize("explainers", [["lime"], ["lime", "sal"]])
def test_auto_sizes_the_localised_jobs_forwards_and_gradient_passes_apart(tmp_path, monkeypatch, explainers):
    """Its hybrid predictions and LIME run at the forward size, its gradient explainers at the forward+backward size."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    sizes = {False: 4, True: 1}  # forward, forward+backward
    monkeypatch.setattr(batching, "choose_batch_size", lambda setting, module, shape, device, *, backward: sizes[backward])
    batches: dict[str, set[int]] = {"lime": set(), "gradients": set(), "hybrids": set()}
    real_explain, real_refine = image_stages.explain_all, refine_stages.refine

    def explain_recording(*args, **kwargs):
        settings = args[7]  # explain_all(model, inputs, targets, ids, masks, n_segments, explainers, settings, ...)
        batches["lime"].add(settings.lime_batch_size)
        batches["gradients"].add(settings.batch_size)
        return real_explain(*args, **kwargs)

    def refine_recording(*args, **kwargs):
        batches["hybrids"].add(args[-1])  # refine(model, flip_test, clean, adversarial, masks, n_segments, ks, batch_size, width=)
        return real_refine(*args, **kwargs)

    monkeypatch.setattr(image_stages, "explain_all", explain_recording)
    monkeypatch.setattr(refine_stages, "refine", refine_recording)
    # k = 3 keeps 3 of 4 quadrants (75 % raised, a flip) and all of the halves: both items are re-explained
    settings = LocalisedSettings.from_params({"explainers": explainers, "extra": [], "ks": [3], "segmentation": "slic", "seed": 0,
                                              "lime_samples": 8, "lime_kernel_width": 0.25, "noise_samples": 2, "noise_std": 1.0,
                                              "ig_steps": 2})
    output = tmp_path / "localised.h5"
    _localise(shard, segments_file, str(output), model=PLANTED, localised=settings, batch_size="auto", device=torch.device("cpu"))
    gradient_batch = 1 if "sal" in explainers else 4  # LIME alone needs no forward+backward size
    assert batches == {"lime": {4}, "gradients": {gradient_batch}, "hybrids": {4}}
    with h5py.File(output) as handle:
        assert (handle.attrs["batch_size"], handle.attrs["forward_batch_size"]) == (gradient_batch, 4)


def test_lime_passes_hold_the_authors_16_rows_on_a_cpu_and_at_least_16_on_a_gpu_where_the_config_gives_a_number(tmp_path, monkeypatch):
    """Other pass sizes can slow LIME below captum's pattern on a CPU; ``auto`` keeps the size it measured (the fastest)."""
    settings = ((1, 1), (8, 8), (16, 16), (64, 64), ("auto", 2), ("auto", 64))
    assert [batching.lime_batch_size(setting, rows, "cpu") for setting, rows in settings] == [16, 16, 16, 16, 2, 64]
    assert [batching.lime_batch_size(setting, rows, torch.device("cuda")) for setting, rows in settings] == [16, 16, 16, 64, 2, 64]
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    lime_rows: list[int] = []
    real_explain = image_stages.explain_all

    def recording(*args, **kwargs):
        lime_rows.append(args[7].lime_batch_size)  # explain_all(..., explainers, settings, ...)
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(image_stages, "explain_all", recording)
    family = ExplainFamilySettings.from_params({"family": "lime_slic", "explainers": ["lime"], "seed": 0, "segmentations": ["slic"],
                                                "keep_attributions": False, "lime_samples": 8, "lime_kernel_width": 0.25})
    image_stages.explain_shard(shard, {"slic": segments_file}, str(tmp_path / "lime.h5"), model=PLANTED, explain=family, batch_size=2,
                               device=torch.device("cpu"))
    localised = LocalisedSettings.from_params({"explainers": ["lime"], "extra": [], "ks": [3], "segmentation": "slic", "seed": 0,
                                               "lime_samples": 8, "lime_kernel_width": 0.25})
    _localise(shard, segments_file, str(tmp_path / "localised.h5"), model=PLANTED, localised=localised, batch_size=2,
              device=torch.device("cpu"))
    assert lime_rows and set(lime_rows) == {16}
    with h5py.File(tmp_path / "lime.h5") as explained, h5py.File(tmp_path / "localised.h5") as relocalised:
        assert (explained.attrs["batch_size"], explained.attrs["lime_batch_size"]) == (2, 16)
        assert [relocalised.attrs[key] for key in ("batch_size", "forward_batch_size", "lime_batch_size")] == [2, 2, 16]


def test_gradient_passes_hold_a_numbered_batch_size_on_a_cpu_and_at_least_16_rows_on_a_gpu():
    """On a GPU a pass of a few rows costs about what one of 25 does: fewer rows than 16 would make more passes than captum."""
    settings = ((1, 1), (4, 4), (16, 16), (64, 64), ("auto", 2), ("auto", 64))
    assert [batching.explanation_batch_size(setting, rows, "cpu") for setting, rows in settings] == [1, 4, 16, 64, 2, 64]
    assert [batching.explanation_batch_size(setting, rows, torch.device("cuda")) for setting, rows in settings] == [16, 16, 16, 64, 2, 64]
    assert [batching.explanation_batch_size(setting, rows, "cuda:1") for setting, rows in settings] == [16, 16, 16, 64, 2, 64]


def test_explanation_jobs_size_their_gradient_passes_by_explanation_batch_size(tmp_path, monkeypatch):
    """The GPU floor reaches the jobs: here a stand-in rule that makes 3 rows of a configured 2."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    asked: list[tuple] = []

    def three_rows(setting, backward_batch, device):
        asked.append((setting, backward_batch, torch.device(device).type))
        return 3

    monkeypatch.setattr(image_stages, "explanation_batch_size", three_rows)
    cpu = torch.device("cpu")
    family = ExplainFamilySettings.from_params({"family": "saliency", "explainers": ["sal"], "seed": 0, "segmentations": ["slic"],
                                                "keep_attributions": False, "noise_samples": 2, "noise_std": 1.0})
    image_stages.explain_shard(shard, {"slic": segments_file}, str(tmp_path / "sal.h5"), model=PLANTED, explain=family, batch_size=2,
                               device=cpu)
    localised = LocalisedSettings.from_params({"explainers": ["sal", "lime"], "extra": [], "ks": [3], "segmentation": "slic", "seed": 0,
                                               "lime_samples": 8, "lime_kernel_width": 0.25, "noise_samples": 2, "noise_std": 1.0,
                                               "ig_steps": 2})
    _localise(shard, segments_file, str(tmp_path / "localised.h5"), model=PLANTED, localised=localised, batch_size=2, device=cpu)
    assert asked == [(2, 2, "cpu")] * 2
    with h5py.File(tmp_path / "sal.h5") as explained, h5py.File(tmp_path / "localised.h5") as relocalised:
        assert explained.attrs["batch_size"] == 3
        assert [relocalised.attrs[key] for key in ("batch_size", "forward_batch_size", "lime_batch_size")] == [3, 2, 16]


@pytest.mark.cuda
def test_explanation_jobs_on_a_gpu_raise_a_small_batch_size_to_16_rows_for_every_explainer(tmp_path):
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    cuda = torch.device("cuda")
    family = ExplainFamilySettings.from_params({"family": "saliency", "explainers": ["sal", "sal-sg"], "seed": 0, "segmentations": ["slic"],
                                                "keep_attributions": False, "noise_samples": 2, "noise_std": 1.0})
    image_stages.explain_shard(shard, {"slic": segments_file}, str(tmp_path / "sal.h5"), model=PLANTED, explain=family, batch_size=2,
                               device=cuda)
    localised = LocalisedSettings.from_params({"explainers": ["sal", "lime"], "extra": [], "ks": [3], "segmentation": "slic", "seed": 0,
                                               "lime_samples": 8, "lime_kernel_width": 0.25, "noise_samples": 2, "noise_std": 1.0,
                                               "ig_steps": 2})
    _localise(shard, segments_file, str(tmp_path / "localised.h5"), model=PLANTED, localised=localised, batch_size=2, device=cuda)
    with h5py.File(tmp_path / "sal.h5") as explained, h5py.File(tmp_path / "localised.h5") as relocalised:
        assert explained.attrs["batch_size"] == 16
        assert [relocalised.attrs[key] for key in ("batch_size", "forward_batch_size", "lime_batch_size")] == [16, 2, 16]


def test_a_resumed_auto_job_keeps_the_batch_size_it_measured_first(tmp_path, monkeypatch):
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    output = str(tmp_path / "localised.h5")
    settings = LocalisedSettings.from_params({"explainers": ["sal"], "extra": [], "ks": [1], "segmentation": "slic", "seed": 0})
    refined = _refined(shard, segments_file, output, settings)
    checkpoint = BatchCheckpoint(output, {"model": PLANTED.as_params(), "localised": settings.as_params()},
                                 inputs=[*shard.paths, segments_file, refined])
    assert checkpoint.kept("batch_size", lambda: 2) == 2  # what the killed run measured
    assert checkpoint.kept("forward_batch_size", lambda: 4) == 4

    def measure_again(*args, **kwargs):
        raise AssertionError("a resumed job must not measure again")

    monkeypatch.setattr(batching, "choose_batch_size", measure_again)
    localised_shard(shard, segments_file, refined, output, model=PLANTED, localised=settings, batch_size="auto", device=torch.device("cpu"))
    with h5py.File(output) as handle:
        assert (handle.attrs["batch_size"], handle.attrs["forward_batch_size"]) == (2, 4)
    assert not checkpoint.path.exists()


def test_evaluation_jobs_read_their_inputs_a_batch_at_a_time(tmp_path, monkeypatch):
    """The explain, localised and label-flip stages hold one batch of inputs and segment maps, never the shard's subset."""
    masks = [HALVES, QUADRANTS] * 4
    shard, segments_file = _planted_shard(tmp_path, masks)
    ids = [f"img{i}" for i in range(len(masks))]
    chosen = ids[1::2] + ids[:1]  # rows 0, 1, 3, 5, 7: not one contiguous run
    write_h5(shard.subset, {"labelflip_ids": chosen, "localised_ids": chosen}, stage="subsets", params={})
    reads: list[tuple[str, int]] = []
    read_rows = image_subset_reader.read_h5_rows

    def recording(path, names, rows):
        reads.extend((name, len(rows)) for name in names)
        return read_rows(path, names, rows)

    monkeypatch.setattr(image_subset_reader, "read_h5_rows", recording)
    monkeypatch.setattr(image_shards, "read_h5_rows", recording)
    explain = ExplainFamilySettings.from_params({"family": "saliency", "explainers": ["sal", "sal-sg"], "seed": 0,
                                                 "segmentations": ["slic"], "noise_samples": 2, "noise_std": 1.0,
                                                 "keep_attributions": False})
    image_stages.explain_shard(shard, {"slic": segments_file}, str(tmp_path / "explain.h5"), model=PLANTED, explain=explain,
                               batch_size=2, device=torch.device("cpu"))
    localised = LocalisedSettings.from_params({"explainers": ["sal"], "extra": [], "ks": [1], "segmentation": "slic", "seed": 0})
    _localise(shard, segments_file, str(tmp_path / "localised.h5"), model=PLANTED, localised=localised, batch_size=2,
                    device=torch.device("cpu"))
    labelflip_shard(shard, segments_file, [str(tmp_path / "explain.h5")], str(tmp_path / "labelflip.h5"), model=PLANTED,
                    labelflip=LabelflipSettings(segmentation="slic", k=1, ks=(2,), fractions=()), batch_size=2, device=torch.device("cpu"))

    large = {"images", "perturbation", "masks"}
    assert {name for name, _ in reads} >= large
    assert max(rows for name, rows in reads if name in large) == 2
    assert read_h5(str(tmp_path / "explain.h5"))["ids"].tolist() == [i for i in ids if i in chosen]  # in shard order



def _kill_on_call(monkeypatch, name: str, call: int) -> None:
    """Make ``image_stages.<name>`` raise ``KeyboardInterrupt`` on its ``call``-th call, as a kill inside the job would."""
    original, calls = getattr(image_stages, name), []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(image_stages, name, killed)


def _labelflip_job(tmp_path, shard, segments_file, output: str) -> None:
    labelflip_shard(shard, segments_file, [], output, model=PLANTED,
                    labelflip=LabelflipSettings(segmentation="slic", k=1, ks=(2, 3), fractions=(0.5,)), batch_size=2,
                    device=torch.device("cpu"))


def test_a_killed_labelflip_job_resumes_to_the_identical_file(tmp_path, monkeypatch):
    masks = [HALVES, QUADRANTS, QUADRANTS, HALVES, QUADRANTS]
    shard, segments_file = _planted_shard(tmp_path, masks)
    reference, output = str(tmp_path / "reference.h5"), str(tmp_path / "labelflip.h5")
    _labelflip_job(tmp_path, shard, segments_file, reference)
    with monkeypatch.context() as patch:
        _kill_on_call(patch, "label_flips", 2)
        with pytest.raises(KeyboardInterrupt):
            _labelflip_job(tmp_path, shard, segments_file, output)
    assert Path(f"{output}.partial.h5").exists()
    with monkeypatch.context() as patch:
        _kill_on_call(patch, "label_flips", 3)  # the first slice is reused: a third call would be a slice computed twice
        _labelflip_job(tmp_path, shard, segments_file, output)
    assert Path(reference).read_bytes() == Path(output).read_bytes()
    assert not Path(f"{output}.partial.h5").exists()


def test_finished_batches_of_other_adversaries_are_not_reused(tmp_path, monkeypatch):
    """A job killed, then rerun after its adversaries were rewritten (a changed attack), computes every batch afresh."""
    shard, segments_file = _planted_shard(tmp_path, [QUADRANTS] * 4)
    output = str(tmp_path / "labelflip.h5")
    with monkeypatch.context() as patch:
        _kill_on_call(patch, "label_flips", 2)
        with pytest.raises(KeyboardInterrupt):
            _labelflip_job(tmp_path, shard, segments_file, output)
    weaker = read_h5(shard.adversaries)
    weaker["perturbation"][:2, 0, SIDE // 2 :] = 0  # the first two adversaries raise the top half only: no flip at k = 2 of 4
    write_h5(shard.adversaries, weaker, stage="attack", params={"model": PLANTED.as_params()})
    _labelflip_job(tmp_path, shard, segments_file, output)
    flips = read_h5(output)["flips/magnitude/-"]
    np.testing.assert_array_equal(flips[:, 1], [False, False, False, False])  # k = 2: half of the pixels
    np.testing.assert_array_equal(flips[:, 2], [False, False, True, True])  # k = 3: all the first two have is 2 quadrants


def test_every_file_a_resumable_job_reads_is_bound_to_its_checkpoint(tmp_path, monkeypatch):
    """A side file is reused only with the same inputs: each job names every file it opens (docs/exactness.md)."""
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    clean = str(tmp_path / "clean.h5")
    image_stages.clean_predictions(shard.images, clean, model=PLANTED, batch_size=2, device=torch.device("cpu"))
    opened: set[str] = set()
    bound: dict[str, set[str]] = {}
    file_class, checkpoint_class = h5py.File, image_stages.BatchCheckpoint

    def recording_file(name, mode="r", *args, **kwargs):
        if mode == "r" and not str(name).endswith(".partial.h5"):
            opened.add(str(name))
        return file_class(name, mode, *args, **kwargs)

    def recording_checkpoint(output, params, inputs=()):
        bound[str(output)] = {str(path) for path in inputs}
        return checkpoint_class(output, params, inputs)

    monkeypatch.setattr(h5py, "File", recording_file)
    monkeypatch.setattr(image_stages, "BatchCheckpoint", recording_checkpoint)
    monkeypatch.setattr(refine_stages, "BatchCheckpoint", recording_checkpoint)
    cpu = torch.device("cpu")
    localised = LocalisedSettings.from_params({"explainers": ["sal"], "extra": [], "ks": [1], "segmentation": "slic", "seed": 0})
    refine_settings = RefineSettings(localised.segmentation, localised.ks)
    explain = ExplainFamilySettings.from_params({"family": "saliency", "explainers": ["sal"], "seed": 0, "segmentations": ["slic"],
                                                 "noise_samples": 2, "noise_std": 1.0, "keep_attributions": False})
    pgd = PgdSettings.from_params({"epsilon": 0.1, "step_size": 0.05, "steps": 2, "early_stop": False, "seed": 0})
    jobs = {
        "attack": lambda out: image_stages.attack_shard(shard.images, clean, out, model=PLANTED, pgd=pgd, batch_size=2, device=cpu),
        "explain": lambda out: image_stages.explain_shard(shard, {"slic": segments_file}, out, model=PLANTED, explain=explain,
                                                          batch_size=2, device=cpu),
        "refine": lambda out: refine_stages.refine_shard(shard, segments_file, out, model=PLANTED, refine_settings=refine_settings,
                                                         batch_size=2, device=cpu),
        "localised": lambda out: localised_shard(shard, segments_file, str(tmp_path / "refine.h5"), out, model=PLANTED, batch_size=2,
                                                 device=cpu, localised=localised),
        "labelflip": lambda out: labelflip_shard(shard, segments_file, [str(tmp_path / "explain.h5")], out, model=PLANTED, batch_size=2,
                                                 device=cpu, labelflip=LabelflipSettings(segmentation="slic", k=1, ks=(), fractions=())),
    }
    for name, job in jobs.items():
        opened.clear()
        output = str(tmp_path / f"{name}.h5")
        job(output)
        assert opened - {output}, name
        assert opened - {output} <= bound[output], f"{name} reads files its checkpoint does not know: {opened - {output} - bound[output]}"


def test_labelflip_reads_the_scores_of_its_segmentation_and_no_pixel_maps(tmp_path, monkeypatch):
    shard, segments_file = _planted_shard(tmp_path, [HALVES, QUADRANTS])
    explain = ExplainFamilySettings.from_params({"family": "saliency", "explainers": ["sal"], "seed": 0, "segmentations": ["slic", "rect"],
                                                 "noise_samples": 2, "noise_std": 1.0, "keep_attributions": True})
    explanations = str(tmp_path / "explain.h5")
    image_stages.explain_shard(shard, {"slic": segments_file, "rect": segments_file}, explanations, model=PLANTED, explain=explain,
                               batch_size=2, device=torch.device("cpu"))
    assert any(name.startswith("attributions/") for name in read_h5(explanations))
    read: list[str] = []
    read_whole = image_stages.read_h5

    def recording(path, names=None):
        arrays = read_whole(path, names)
        if path == explanations:
            read.extend(arrays)
        return arrays

    monkeypatch.setattr(image_stages, "read_h5", recording)
    labelflip_shard(shard, segments_file, [explanations], str(tmp_path / "labelflip.h5"), model=PLANTED, batch_size=2,
                    device=torch.device("cpu"), labelflip=LabelflipSettings(segmentation="slic", k=1, ks=(), fractions=()))
    assert sorted(read) == ["ids", "scores/sal/slic/mean", "scores/sal/slic/mean_abs", "scores/sal/slic/mean_pos"]
    assert sorted(name for name in read_h5(str(tmp_path / "labelflip.h5")) if name.startswith("flips/sal")) == [
        "flips/sal/mean", "flips/sal/mean_abs", "flips/sal/mean_pos"]


def test_an_item_missing_from_a_file_is_named_with_the_file():
    np.testing.assert_array_equal(image_shards.rows_of(["b", "c", "a"], ["a", "b", "c"], "x.h5"), [1, 2, 0])
    with pytest.raises(ValueError, match=r"segments\.h5 holds no item \['d'\]"):
        image_shards.rows_of(["a", "d"], ["a", "b", "c"], "segments.h5")
