"""Known answers for behaviours that change results silently when they slip: each test fails on a
plausible one-line bug (named in its docstring), and runs in milliseconds.

Tie-breaking of top-k, which item's ground truth a recovered count is compared with, the
fewer-than-k flag and the denominator, the stage names behind every per-item seed, atomic HDF5
writes, the two magnitude baselines, and Table 1's adversarial top-1 where attacks failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from messages import exactly

from advxai.attacks.pgd import TARGET_STAGE, draw_targets
from advxai.evaluation.baselines import MAGNITUDE, MAGNITUDE_MEAN, magnitude, magnitude_scores, segment_reduce
from advxai.evaluation.flips import ClassChange, ThresholdCrossing, reaches_target
from advxai.evaluation.labelflip import k_settings, label_flips
from advxai.evaluation.localised import NOT_KEPT, Refinement, localised_experiment
from advxai.evaluation.selection import hybrid, pad_scores, selection_width, top_k
from advxai.evaluation.subsets import LABELFLIP_STAGE, LOCALISED_STAGE, draw_subset, evaluation_subsets, subset_size
from advxai.explainers.gradients import draw_noise
from advxai.explainers.lime import _draw_samples
from advxai.explainers.settings import ExplainerSettings
from advxai.report import tables
from advxai.segments import ABSENT
from advxai.store import read_h5, write_csv, write_h5


# ------------------------------------------------------------------ ties in top-k
def test_ties_in_top_k_go_to_the_later_segment_id():
    """As the authors' ascending argsort: among equal scores the later id is selected first.
    Fails if ties go to the earlier id (a descending sort) or to an unstable order."""
    scores = np.array([[1.0, 1.0, 1.0, 0.0, 1.0], [2.0, 5.0, 2.0, 2.0, ABSENT]])
    np.testing.assert_array_equal(top_k(scores, 1), [[False, False, False, False, True], [False, True, False, False, False]])
    np.testing.assert_array_equal(top_k(scores, 2), [[False, False, True, False, True], [False, True, False, True, False]])
    np.testing.assert_array_equal(top_k(scores, 3), [[False, True, True, False, True], [False, True, True, True, False]])
    # 20 equal scores (numpy's sort switches algorithm above 16): still the last k ids
    np.testing.assert_array_equal(np.flatnonzero(top_k(np.zeros((1, 20)), 3)[0]), [17, 18, 19])


def test_nan_and_absent_rank_last_and_k_zero_selects_nothing():
    scores = np.array([[np.nan, -5.0, ABSENT, -7.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[False, True, False, True]])
    assert not top_k(scores, 0).any()
    with pytest.raises(ValueError, match="outside 0..4"):
        top_k(scores, 5)
    with pytest.raises(ValueError, match="outside 0..4"):
        top_k(scores, np.array([-1]))
    with pytest.raises(ValueError, match=r"unknown reduction 'max' \(sum, mean\)"):
        segment_reduce(np.ones((1, 2)), np.zeros((1, 2), int), 1, "max")


# ------------------------------------------------------------------ the localised experiment: whose truth a count is compared with
class _SumAboveTwo(torch.nn.Module):
    """Class 1 once the input's sum exceeds 2, else class 0."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        total = inputs.flatten(1).sum(1)
        return torch.stack([torch.full_like(total, 2.0), total], dim=1)


def _localised_case():
    """Three items of four one-pixel segments (plus a three-pixel one at id 0): the middle one's
    refined adversary does not flip at k = 1, so items 0 and 2 are explained and counted."""
    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [0, 1]], [[0, 0], [0, 1]]])  # id 0: 3 pixels, id 1: 1 pixel
    masks = torch.cat([masks, torch.tensor([[[2, 3]]] * 3)], dim=1)  # (3, 3, 2): ids 2 and 3 below
    clean = torch.zeros(3, 1, 3, 2)
    adversarial = torch.zeros(3, 1, 3, 2)
    adversarial[0, 0, 0, 0] = adversarial[0, 0, 0, 1] = adversarial[0, 0, 1, 0] = 1.0  # item 0: id 0, 3 × 1² (sum 3, mean 1)
    adversarial[0, 0, 2, 1] = 1.5  # item 0: id 3, 1.5² = 2.25 (sum 2.25 < 3, mean 2.25 > 1)
    adversarial[1, 0, 1, 1] = 1.2  # item 1: id 1 alone, sum 1.2 < 2: no flip
    adversarial[2, 0, 2, 0] = 2.5  # item 2: id 2
    adversarial[2, 0, 2, 1] = 0.5
    return masks, clean, adversarial


def test_localised_counts_each_item_against_its_own_perturbed_segments():
    """Fails if the kept items' counts are compared with the truth of the first rows (``truth[:len(rows)]``)
    or of all rows, if the truth is ranked by the mean instead of the sum, or if the explain
    function is handed other items' ids or classes."""
    masks, clean, adversarial = _localised_case()
    calls = []

    def oracle(inputs, classes, ids, item_masks, n_segments):
        """Scores = the refined input's per-segment sum: finds exactly the segments kept."""
        calls.append((list(ids), classes.tolist(), n_segments.tolist()))
        values = inputs[:, 0].flatten(1)
        return {"oracle": np.stack([np.bincount(m.flatten().numpy(), weights=v.numpy(), minlength=4) for m, v in zip(item_masks, values)])}

    results = localised_experiment(_SumAboveTwo(), ClassChange(np.zeros(3, int)), clean, adversarial, masks, np.full(3, 4),
                                   ["a", "b", "c"], [1], oracle, ["oracle"], batch_size=2)
    result = results[1]
    np.testing.assert_array_equal(result.truth, [[True, False, False, False], [False, True, False, False], [False, False, True, False]])
    np.testing.assert_array_equal(result.kept, [True, False, True])
    np.testing.assert_array_equal(result.recovered["oracle"], [1, NOT_KEPT, 1])
    assert calls == [(["a#localised-k1", "c#localised-k1"], [1, 1], [4, 4])]


# ------------------------------------------------------------------ fewer segments than k: flagged, kept, in the denominator
def test_selection_width_keeps_items_with_fewer_segments_than_k():
    """An item of 2 segments at k = 3 selects both (its absent id ranks last) and stays a row."""
    assert selection_width(np.array([2, 4]), np.array([3, 3])) == 4
    assert selection_width(np.array([2, 2]), np.array([3, 1])) == 3
    scores = np.array([[0.5, 0.1, ABSENT], [0.2, 0.9, 0.4]])
    np.testing.assert_array_equal(top_k(scores, 3)[0], [True, True, True])  # the hybrid is the full adversary


def test_pad_scores_widens_with_absent_in_float64_and_leaves_wide_scores_alone():
    padded = pad_scores(np.array([[1, 2], [3, 4]]), 4)
    assert padded.dtype == np.float64 and padded.tolist() == [[1, 2, ABSENT, ABSENT], [3, 4, ABSENT, ABSENT]]
    same = pad_scores(np.array([[1, 2, 3]]), 3)
    assert same.dtype == np.float64 and same.tolist() == [[1, 2, 3]]
    assert pad_scores(np.array([[1.5, 2.5, 3.5]]), 2).tolist() == [[1.5, 2.5, 3.5]]  # never narrowed
    assert selection_width(np.array([], dtype=int), np.array([3])) == 3  # an empty slice still selects up to k
    assert selection_width(np.array([2, 5]), np.array([], dtype=int)) == 5  # no k setting: the widest item


def _labelflip_file(path, flips: list[list[bool]], fewer: list[list[bool]], n_segments: list[int]) -> str:
    write_h5(path, {"ids": np.array([f"i{j}" for j in range(len(flips))], dtype=str), "n_segments": np.array(n_segments),
                    "k": np.array([3]), "fraction": np.array([np.nan]), "per_item_k": np.full((len(flips), 1), 3),
                    "fewer_segments": np.array(fewer), "flips/sal/mean_abs": np.array(flips)}, stage="labelflip", params={})
    return str(path)


def test_items_with_fewer_segments_stay_in_the_label_flip_denominator(tmp_path):
    """Two of five images have fewer than 3 segments (and flip, their hybrid being the whole adversary):
    the rate is 3 / 5 over all five, not 1 / 3 over the others. Fails if the table drops them."""
    shard = _labelflip_file(tmp_path / "lf.h5", [[True], [True], [False], [True], [False]], [[True], [True], [False], [False], [False]],
                            [2, 1, 5, 6, 9])
    row = tables.labelflip_rows("m", "slic", [shard])[0]
    assert (row["n"], row["label_flip_rate"]) == (5, 0.6)


def test_localised_histogram_counts_items_with_fewer_segments(tmp_path):
    """Recovered counts of fewer-segment items are in the histogram; only NOT_KEPT (-1) is left out."""
    write_h5(tmp_path / "lo.h5", {"ids": np.array(["a", "b", "c", "d"]), "ks": np.array([3]),
                                   "k3/kept": np.array([True, True, True, False]), "k3/recovered/sal": np.array([3, 1, 0, NOT_KEPT]),
                                   "k3/fewer_segments": np.array([True, False, False, False])},
             stage="localised", params={})
    table = tables.localised_table({("m", "slic"): [str(tmp_path / "lo.h5")]})
    assert table["count"].tolist() == [1, 1, 0, 1] and table.fraction.tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])


def test_a_flip_test_refuses_decisions_of_other_items():
    with pytest.raises(ValueError, match=r"decisions of shape \(3,\) do not belong to the test's 2 items"):
        ClassChange(np.array([0, 1])).flipped(np.array([0, 1, 1]))


def test_hybrid_refuses_masks_that_fit_no_input_shape():
    with pytest.raises(ValueError, match=r"masks \(1, 2, 2\) fit neither .* got \(1, 1, 1, 2, 2\)"):
        hybrid(torch.zeros(1, 1, 1, 2, 2), torch.ones(1, 1, 1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long),
               torch.ones(1, 1, dtype=torch.bool))


# ------------------------------------------------------------------ the stage names behind the per-item seeds
def test_stage_names_are_pinned():
    """A rename of a stage name changes every draw of that stage; the draws below are pinned too."""
    assert (TARGET_STAGE, LABELFLIP_STAGE, LOCALISED_STAGE) == ("pgd-target", "subset-labelflip", "subset-localised")


def test_pgd_targets_are_pinned():
    targets = draw_targets(3, ["img0", "img1", "img2", "img3"], np.array([0, 1, 2, 999]), 1000)
    assert targets.tolist() == [717, 695, 931, 269]


def test_lime_samples_are_pinned():
    """Drawn from numpy_rng(seed, "lime", id): one generator per item, rows of Bernoulli(0.5)."""
    drawn = _draw_samples(["img0", "img1"], [5, 3], 4, 3, include_unperturbed=False)
    assert [rows.astype(int).tolist() for rows in drawn] == [
        [[0, 1, 0, 1, 0], [0, 1, 1, 1, 1], [0, 1, 1, 0, 1], [0, 0, 0, 1, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1]],
    ]
    with_unperturbed = _draw_samples(["img0"], [5], 3, 3, include_unperturbed=True)[0]
    assert with_unperturbed.astype(int).tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 1, 1, 0, 1]]  # audioLIME's row 0


def test_noise_tunnel_draws_are_pinned():
    """Drawn from torch_generator(seed, "noise", id), scaled by the standard deviation σ (not σ²)."""
    noise = draw_noise(["img0", "img1"], (2,), 2, 0.5, 3)
    expected = [[[-0.5825520157814026, -0.3649420142173767], [-0.12017743289470673, 0.10589250922203064]],
                [[-0.2553606927394867, -0.28239181637763977], [-0.0730319693684578, -0.19741205871105194]]]
    np.testing.assert_allclose(noise.numpy(), expected, rtol=1e-6)


def test_evaluation_subsets_are_pinned():
    ids = [f"img{i}" for i in range(20)]
    subsets = evaluation_subsets(ids, [i % 4 != 0 for i in range(20)], fraction=0.2, localised_fraction=0.15, seed=3, model="tiny")
    assert subsets.labelflip == ["img2", "img5", "img7", "img11"]
    assert subsets.localised == ["img10", "img13", "img17"]
    assert (subsets.n_items, subsets.n_adversaries) == (20, 15)


def test_subset_sizes_and_draws_known_answers():
    """10 % of 50 000 is 5 000; a fraction that rounds to nothing still draws one item; a draw of
    more than there are takes them all, in candidate order; no candidate, no draw."""
    assert (subset_size(0.1, 50_000), subset_size(0.01, 10), subset_size(0.25, 10), subset_size(1.0, 4)) == (5000, 1, 2, 4)
    assert draw_subset(["a", "b", "c"], 5, 0, LABELFLIP_STAGE, "m") == ["a", "b", "c"]
    assert draw_subset([], 3, 0, LABELFLIP_STAGE, "m") == []
    drawn = draw_subset([f"x{i}" for i in range(50)], 10, 0, LABELFLIP_STAGE, "m")
    assert len(set(drawn)) == 10 and drawn == sorted(drawn, key=lambda name: int(name[1:]))  # without replacement, in order


# ------------------------------------------------------------------ atomic writes
class _Unstorable:
    """An array element h5py cannot store: the write fails after the first datasets are in the file."""


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_partial(tmp_path):
    """Fails if write_h5 writes in place (the previous file would be truncated) or leaves its temporary file."""
    path = tmp_path / "out.h5"
    write_h5(path, {"x": np.arange(3)}, stage="s", params={"run": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_h5(path, {"x": np.arange(5), "y": np.ones(2), "z": np.array([_Unstorable()], dtype=object)}, stage="s", params={"run": 2})
    assert path.read_bytes() == before and read_h5(path)["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]
    with pytest.raises(TypeError):
        write_h5(tmp_path / "new.h5", {"x": np.arange(5), "z": np.array([_Unstorable()], dtype=object)}, stage="s", params={})
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]  # no final file, no partial one


def test_a_csv_write_that_fails_midway_leaves_nothing(tmp_path):
    class Failing(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            with open(args[0], "w") as handle:
                handle.write("model,n\nhalf")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_csv(Failing({"model": ["m"], "n": [1]}), tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the two magnitude baselines
def test_magnitude_sums_and_magnitude_mean_averages_the_squared_perturbation():
    """Segment 0 has 3 pixels perturbed by 1, segment 1 one pixel by 1.5 (and 2 channels): the sum
    ranks segment 0 first, the mean segment 1. Fails if the two are swapped or computed alike."""
    masks = np.array([[[0, 0], [0, 1]]])
    clean = np.zeros((1, 2, 2, 2))
    adversarial = np.zeros((1, 2, 2, 2))
    adversarial[0, 0] = [[1.0, 1.0], [1.0, 1.5]]
    adversarial[0, 1, 0, 0] = 2.0  # channel 1 adds 4 to segment 0
    scores = magnitude_scores(clean, adversarial, masks, 3)
    np.testing.assert_array_equal(scores[MAGNITUDE], [[7.0, 2.25, ABSENT]])
    np.testing.assert_array_equal(scores[MAGNITUDE_MEAN], [[7.0 / 6, 2.25 / 2, ABSENT]])
    np.testing.assert_array_equal(magnitude(clean, adversarial, masks, 3), scores[MAGNITUDE])
    assert (MAGNITUDE, MAGNITUDE_MEAN) == ("magnitude", "magnitude-mean")  # the names of the table rows
    sums_differ = magnitude_scores(np.zeros((1, 2, 2)), np.array([[[1.0, 1.0], [1.0, 1.5]]]), masks, 2)
    assert top_k(sums_differ[MAGNITUDE], 1).tolist() == [[True, False]]
    assert top_k(sums_differ[MAGNITUDE_MEAN], 1).tolist() == [[False, True]]


# ------------------------------------------------------------------ Table 1 where some attacks failed
def test_table1_adversarial_top1_keeps_the_clean_prediction_where_the_attack_failed(tmp_path):
    """Images: labels 0, 1, 2 and one unlabelled; attacks on images 0 and 2 succeed. Image 1's
    attack failed, so its clean (correct) prediction counts, not the failed attack's final one.
    Fails if the adversarial top-1 reads final_prediction everywhere, counts the unlabelled image,
    or counts failed attacks as adversaries."""
    path = tmp_path / "adversaries.h5"
    write_h5(path, {"labels": np.array([0, 1, 2, -1]), "clean_prediction": np.array([0, 1, 5, 3]),
                    "final_prediction": np.array([7, 8, 9, 3]), "success": np.array([True, False, True, False])}, stage="attack", params={})
    table = tables.accuracy_table({"m": [str(path)]})
    row = table.iloc[0]
    assert row.n_images == 4 and row.n_adversaries == 2
    assert row.clean_top1 == pytest.approx(200 / 3) and row.adv_top1 == pytest.approx(100 / 3)


def test_k_settings_are_integer_counts_even_without_any_setting():
    settings = k_settings([1], [0.5], np.array([3, 10]))
    assert settings.per_item.tolist() == [[1, 1], [1, 5]] and settings.per_item.dtype.kind == "i"
    assert settings.k.tolist() == [1, 0] and np.isnan(settings.fraction[0]) and settings.fraction[1] == 0.5
    none = k_settings([], [], np.array([3, 10]))
    assert none.per_item.shape == (2, 0) and none.per_item.dtype.kind == "i" and none.fraction.dtype == np.float64


def test_refinement_round_trips_through_its_segment_ids():
    refinement = Refinement.from_segment_ids([[4, 1], [0, 2]], width=6, decisions=[3, 5], kept=[True, False])
    assert refinement.truth.dtype == bool and refinement.kept.dtype == bool
    assert refinement.truth.tolist() == [[False, True, False, False, True, False], [True, False, True, False, False, False]]
    assert refinement.segment_ids().tolist() == [[1, 4], [0, 2]]
    assert refinement.rows(np.array([1])).segment_ids().tolist() == [[0, 2]]
    nothing = Refinement(truth=np.zeros((0, 6), bool), decisions=np.zeros(0, int), kept=np.zeros(0, bool))
    assert nothing.segment_ids().shape == (0, 0)


def test_label_flips_names_a_ranking_of_other_items_and_answer_bool_for_no_item():
    clean = torch.zeros(3, 1, 2, 2)
    masks = torch.zeros(3, 2, 2, dtype=torch.long)
    flip_test = ClassChange(np.zeros(3, int))
    settings = k_settings([1], [], np.ones(3, int)).per_item
    with pytest.raises(ValueError, match=exactly("ranking 'sal' scores 2 items, expected 3")):
        label_flips(torch.nn.Flatten(), flip_test, clean, clean, masks, np.ones(3, int), {"sal": np.zeros((2, 1))}, settings, 4)
    none = label_flips(torch.nn.Flatten(), ClassChange(np.zeros(0, int)), clean[:0], clean[:0], masks[:0], np.ones(0, int),
                       {"sal": np.zeros((0, 1))}, settings[:0], 4)
    assert none["sal"].shape == (0, 1) and none["sal"].dtype == bool


def test_threshold_crossing_at_the_threshold_and_its_errors():
    crossing = ThresholdCrossing(np.array([1, 0]), 0.5)
    assert crossing.explained_class(np.array([0.5, 0.75])).tolist() == [0, 1]  # P = τ is "no sing"
    with pytest.raises(ValueError, match=exactly("targets must be 0 or 1, got values [0 2]")):
        reaches_target(np.array([0.2, 0.7]), np.array([0, 2]), 0.5)


def test_settings_keys_of_lime_beside_an_ensemble():
    assert ExplainerSettings.keys_for(["lime", "sal-sg"]) == ["lime_samples", "lime_kernel_width", "noise_samples", "noise_std"]
