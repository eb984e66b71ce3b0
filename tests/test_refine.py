"""The refine step and stage: planted perturbations whose top-k segments and flips are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advxai.evaluation.flips import ClassChange, ThresholdCrossing
from advxai.evaluation.localised import NOT_KEPT, Refinement, explain_refined, localised_experiment, refine
from advxai.segments import audio_grid
from advxai.stages.examples import choose_examples

QUADRANTS = torch.from_numpy((2 * (np.arange(8)[:, None] >= 4) + (np.arange(8)[None, :] >= 4)).astype(np.int64))


def _quadrant_inputs(magnitudes: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean zeros and adversaries that add ``magnitudes[i][q]`` to every pixel of quadrant ``q`` of item ``i``."""
    clean = torch.zeros(len(magnitudes), 1, 8, 8)
    masks = QUADRANTS.expand(len(magnitudes), 8, 8).clone()
    adversarial = (
        torch.tensor(magnitudes, dtype=torch.float32)
        .reshape(-1, 4)[torch.arange(len(magnitudes))[:, None, None], masks]
        .unsqueeze(1)
    )
    return clean, adversarial, masks


def _quadrant3_detector(inputs: torch.Tensor) -> torch.Tensor:
    """Class 1 once quadrant 3 (bottom right) carries a perturbation above 0.5, else class 0."""
    signal = inputs[:, 0, 4:, 4:].mean((1, 2))
    return torch.stack([torch.full_like(signal, 0.5), signal], dim=1)


def test_refine_keeps_the_planted_top_k_segments_and_tests_whether_they_still_flip():
    # item 0: quadrant 3 strongest, then 1, 0, 2; item 1: quadrant 3 weakest
    clean, adversarial, masks = _quadrant_inputs([[0.8, 0.9, 0.7, 1.0], [1.0, 0.9, 0.8, 0.7]])
    refined = refine(
        _quadrant3_detector,
        ClassChange(np.zeros(2, int)),
        clean,
        adversarial,
        masks,
        np.array([4, 4]),
        [1, 3],
        batch_size=1,
    )
    assert refined[1].segment_ids().tolist() == [[3], [0]]
    assert refined[3].segment_ids().tolist() == [[0, 1, 3], [0, 1, 2]]
    assert refined[1].decisions.tolist() == [1, 0] and refined[1].kept.tolist() == [True, False]
    assert refined[3].kept.tolist() == [True, False]  # item 1's quadrant 3 is never among its top 3


def test_refine_on_audio_tiles_under_the_threshold_test():
    """Three planted time-frequency tiles of decreasing energy; the detector hears only tile 17."""
    grid = torch.from_numpy(audio_grid())
    clean = torch.zeros(1, *grid.shape)
    adversarial = clean.clone()
    for tile, value in ((5, 3.0), (12, 2.0), (17, 1.0)):
        adversarial[0][grid == tile] = value
    def detector(x):  # P(sing) > 0.5 once tile 17 is loud
        return (x[:, grid == 17].mean(1, keepdim=True) - 0.5) * 10

    refined = refine(
        detector, ThresholdCrossing(np.ones(1, int), 0.5), clean, adversarial, grid[None], np.array([20]), [1, 2, 3], 4
    )
    assert [refined[k].segment_ids().tolist() for k in (1, 2, 3)] == [[[5]], [[5, 12]], [[5, 12, 17]]]
    assert [bool(refined[k].kept[0]) for k in (1, 2, 3)] == [False, False, True]


def test_stored_segment_ids_give_back_the_ground_truth_for_items_with_fewer_segments_than_k():
    clean, adversarial, masks = _quadrant_inputs([[0.8, 0.9, 0.7, 1.0]])
    masks = torch.where(masks >= 2, masks - 2, masks)  # two segments (columns) only
    refined = refine(
        _quadrant3_detector, ClassChange(np.zeros(1, int)), clean, adversarial, masks, np.array([2]), [3], 1, width=5
    )
    truth = refined[3].truth
    assert truth.shape == (1, 5) and truth[0, :2].all()  # both real segments, and one absent id
    back = Refinement.from_segment_ids(refined[3].segment_ids(), 5, refined[3].decisions, refined[3].kept)
    np.testing.assert_array_equal(back.truth, truth)


def test_explaining_cached_refinements_gives_the_counts_of_the_whole_experiment():
    """The localised stage now reads refinements from a file: split in two steps, the counts are those of one run."""
    clean, adversarial, masks = _quadrant_inputs([[0.8, 0.9, 0.7, 1.0], [0.9, 0.1, 0.2, 0.8], [0.1, 0.2, 0.3, 0.9]])
    flip_test = ClassChange(np.zeros(3, int))

    def explain(
        inputs, classes, ids, item_masks, counts
    ):  # ranks quadrants by the refined input's mean, reversed on odd ids
        means = torch.stack([inputs[:, 0][item_masks == q].view(len(inputs), -1).mean(1) for q in range(4)], 1).numpy()
        return {"mean": means, "reversed": -means}

    whole = localised_experiment(
        _quadrant3_detector,
        flip_test,
        clean,
        adversarial,
        masks,
        np.full(3, 4),
        ["a", "b", "c"],
        [1, 2],
        explain,
        ["mean", "reversed"],
        2,
    )
    cached = refine(_quadrant3_detector, flip_test, clean, adversarial, masks, np.full(3, 4), [1, 2], 2)
    stored = {
        k: Refinement.from_segment_ids(r.segment_ids(), r.truth.shape[1], r.decisions, r.kept)
        for k, r in cached.items()
    }
    split = explain_refined(
        flip_test, clean, adversarial, masks, np.full(3, 4), ["a", "b", "c"], stored, explain, ["mean", "reversed"]
    )
    for k in (1, 2):
        assert {e: v.tolist() for e, v in split[k].recovered.items()} == {
            e: v.tolist() for e, v in whole[k].recovered.items()
        }
    assert split[1].recovered["mean"].tolist() == [
        1,
        NOT_KEPT,
        1,
    ]  # the refined input is nonzero exactly on the truth; b no longer flips
    assert split[2].recovered["reversed"].tolist()[0] == 0


def test_example_choice_is_seeded_per_item_and_validated():
    candidates = [f"img{i}" for i in range(20)]
    chosen = choose_examples(candidates, 5, seed=3, scope="m")
    assert len(chosen) == 5 and chosen == choose_examples(
        candidates[::-1], 5, seed=3, scope="m"
    )  # independent of order
    assert chosen[:2] == choose_examples(candidates, 2, seed=3, scope="m")
    assert chosen != choose_examples(candidates, 5, seed=4, scope="m") and chosen != choose_examples(
        candidates, 5, seed=3, scope="other"
    )
    assert choose_examples(candidates, 5, seed=3, scope="m", wanted=["img7", "img2"]) == ["img7", "img2"]
    with pytest.raises(ValueError, match=r"image\.examples\.ids.*'nope'"):
        choose_examples(candidates, 5, seed=3, scope="m", wanted=["nope"])


def test_a_direction_without_excerpts_stores_empty_refinements(tmp_path):
    """An attack direction may have no excerpt (the test preset's detector has none for one of them)."""
    from advxai.stages.refined_files import read_refinements, refinement_arrays
    from advxai.store import write_h5

    empty = refine(
        _quadrant3_detector, ClassChange(np.zeros(0, int)), *_quadrant_inputs([]), np.zeros(0, int), [1, 3], 4
    )
    arrays = refinement_arrays(empty, np.zeros(0, int), "d/")
    assert arrays["d/k3/segment_ids"].shape == (0, 3)
    write_h5(tmp_path / "r.h5", {"d/ids": np.zeros(0, str), "d/width": 3, **arrays}, stage="refine", params={})
    assert read_refinements(str(tmp_path / "r.h5"), [1, 3], [], prefix="d/")[3].truth.shape == (0, 3)
