"""The audio domain's evaluation: excerpt selection, label flips, norm baseline, localised perturbations.

The known answers come from a detector that listens to one time–frequency tile (segment 7).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from messages import exactly
from stand_in_detector import CONTEXT, LOUD, QUIET, CentreBandDetector, flat_song, level_of
from torch import nn

from advxai.evaluation.baselines import magnitude
from advxai.evaluation.excerpts import excerpt_logits, excerpt_probabilities, explain_excerpts, select_excerpts
from advxai.evaluation.flips import ThresholdCrossing
from advxai.evaluation.labelflip import k_settings, label_flips
from advxai.evaluation.localised import NOT_KEPT, localised_experiment
from advxai.explainers.settings import ExplainerSettings
from advxai.seeding import numpy_rng
from advxai.segments import audio_grid
from advxai.svds.features import log_mel

THRESHOLD = 0.5


class SegmentSevenDetector(nn.Module):
    """Says "sing" iff the mean log-mel of segment 7 (frames 23..45, mel bins 60..79) exceeds -3."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.rows_seen = 0

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        self.rows_seen += logmel.shape[0]
        return self.scale * (logmel[:, 23:46, 60:80].mean(dim=(1, 2)) - (-3.0))[:, None]


def fabricated_song(name: str, n_frames: int, flipped_frames: list[int], loud_adv_frames: list[int], clean_level: float = QUIET):
    """Clean song near ``clean_level`` (frames differ slightly); the adversary flips only ``loud_adv_frames``."""
    clean = flat_song(clean_level * (1 + 0.01 * (np.arange(n_frames) % 7)))
    adversarial = np.pad(clean, ((CONTEXT, CONTEXT), (0, 0)))
    for frame in loud_adv_frames:
        adversarial[frame + CONTEXT] = LOUD if clean_level == QUIET else QUIET
    flipped = np.zeros(n_frames, dtype=bool)
    flipped[flipped_frames] = True
    return name, clean, adversarial, flipped


def test_select_excerpts_keeps_exactly_the_valid_pairs(bank):
    model = CentreBandDetector().eval()
    # frame 10 starts before the song, 195 ends after it, 120's adversary is not loud: only 100 is valid
    song = fabricated_song("a", 200, [10, 100, 120, 195], loud_adv_frames=[100, 10, 195])
    excerpts = select_excerpts([song], model, bank, threshold=THRESHOLD, direction=1, seed=7)
    assert excerpts.frame.tolist() == [100] * 10  # draws with replacement
    assert excerpts.ids.tolist() == [f"a#100#{j}" for j in range(10)]
    clean, adversarial = song[1], song[2]
    expected_clean = log_mel(torch.from_numpy(clean[100 - CONTEXT : 100 + CONTEXT + 1]), bank).numpy()
    expected_adv = log_mel(torch.from_numpy(adversarial[100 : 100 + 115]), bank).numpy()
    np.testing.assert_array_equal(excerpts.clean_logmel[0], expected_clean)
    np.testing.assert_array_equal(excerpts.adv_logmel[3], expected_adv)
    np.testing.assert_array_equal(excerpts.delta[0], expected_adv - expected_clean)
    assert np.all(excerpts.adv_prob > THRESHOLD) and np.all(excerpts.clean_prob <= THRESHOLD)
    # a "sing" song has no frame attacked towards "sing"
    loud_song = fabricated_song("b", 200, [100], loud_adv_frames=[100], clean_level=LOUD)
    assert len(select_excerpts([loud_song], model, bank, threshold=THRESHOLD, direction=1, seed=7)) == 0
    towards_silence = select_excerpts([loud_song], model, bank, threshold=THRESHOLD, direction=0, seed=7, per_song=2)
    assert towards_silence.frame.tolist() == [100, 100]


def test_select_excerpts_draws_are_seeded_per_song(bank):
    model = CentreBandDetector().eval()
    song_a = fabricated_song("a", 200, [60, 100], loud_adv_frames=[60, 100])
    song_b = fabricated_song("b", 180, [5, 70, 90], loud_adv_frames=[70, 90])
    forward = select_excerpts([song_a, song_b], model, bank, threshold=THRESHOLD, direction=1, seed=3, per_song=4)
    backward = select_excerpts([song_b, song_a], model, bank, threshold=THRESHOLD, direction=1, seed=3, per_song=4)
    for name in ("a", "b"):
        np.testing.assert_array_equal(forward.frame[forward.song == name], backward.frame[backward.song == name])
        np.testing.assert_array_equal(forward.adv_logmel[forward.song == name], backward.adv_logmel[backward.song == name])
    # the contract: candidates drawn with replacement from numpy_rng(seed, "excerpts-<direction>", song)
    candidates = np.array([5, 70, 90])
    draws = candidates[numpy_rng(3, "excerpts-1", "b").integers(0, 3, size=100_000)]
    assert forward.frame[forward.song == "b"].tolist() == [f for f in draws if f != 5][:4]
    # max_draws bounds the search
    few = select_excerpts([song_b], model, bank, threshold=THRESHOLD, direction=1, seed=3, max_draws=3)
    assert len(few) == int(np.sum(draws[:3] != 5))


def test_select_excerpts_draws_only_frames_attacked_towards_the_direction(bank):
    """Frames flipped the other way (clean "sing" when drawing towards "sing") are not even drawn."""
    model = CentreBandDetector().eval()
    levels = np.where((np.arange(200) >= 80) & (np.arange(200) < 90), LOUD, QUIET)  # frames 80..89 sing
    clean = flat_song(levels)
    adversarial = np.pad(clean, ((CONTEXT, CONTEXT), (0, 0)))
    adversarial[[70 + CONTEXT, 100 + CONTEXT]] = LOUD
    adversarial[[84 + CONTEXT, 86 + CONTEXT]] = QUIET
    flipped = np.isin(np.arange(200), [70, 84, 86, 100])
    excerpts = select_excerpts([("s", clean, adversarial, flipped)], model, bank, threshold=THRESHOLD, direction=1, seed=5, per_song=6)
    draws = np.array([70, 100])[numpy_rng(5, "excerpts-1", "s").integers(0, 2, size=6)]
    assert excerpts.frame.tolist() == draws.tolist()


def test_excerpts_reach_the_edges_of_the_song_but_not_past_them(bank):
    """The clean excerpt [f - 57, f + 58) must lie in the song: f = 57 and f = T - 58 are the outermost frames."""
    song = fabricated_song("a", 200, [56, 57, 142, 143], loud_adv_frames=[56, 57, 142, 143])
    excerpts = select_excerpts([song], CentreBandDetector().eval(), bank, threshold=THRESHOLD, direction=1, seed=7, per_song=30)
    assert set(excerpts.frame.tolist()) == {57, 142}


def test_a_song_without_excerpts_is_skipped_and_a_float64_bank_is_used_in_float32(bank):
    model = CentreBandDetector().eval()
    songs = [fabricated_song("barren", 200, [100], loud_adv_frames=[])]
    songs += [fabricated_song(name, 200, [frame], loud_adv_frames=[frame]) for name, frame in (("a", 100), ("b", 90))]
    single = select_excerpts(songs, model, bank, threshold=THRESHOLD, direction=1, seed=7, per_song=2)
    assert single.ids.tolist() == ["a#100#0", "a#100#1", "b#90#0", "b#90#1"]
    assert single.clean_prob.shape == single.adv_prob.shape == (4,) and np.all(single.adv_prob > THRESHOLD)
    as_float64 = [(name, clean.astype(np.float64), adversarial.astype(np.float64), flipped) for name, clean, adversarial, flipped in songs]
    double = select_excerpts(as_float64, model, bank.astype(np.float64), threshold=THRESHOLD, direction=1, seed=7, per_song=2)
    assert double.adv_logmel.dtype == double.clean_logmel.dtype == np.float32
    np.testing.assert_array_equal(double.adv_logmel, single.adv_logmel)
    np.testing.assert_array_equal(double.clean_logmel, single.clean_logmel)


def test_a_clean_frame_exactly_at_the_threshold_counts_as_no_sing(bank):
    """P(sing) > τ is "sing": a clean frame at P = τ exactly is attacked towards "sing" and kept."""
    at_level = level_of(0.03, bank)
    model = CentreBandDetector(level=at_level).eval()
    clean = flat_song(np.where(np.arange(200) == 100, 0.03, QUIET))
    adversarial = np.pad(clean, ((CONTEXT, CONTEXT), (0, 0)))
    adversarial[100 + CONTEXT] = LOUD
    song = ("s", clean, adversarial, np.arange(200) == 100)
    excerpts = select_excerpts([song], model, bank, threshold=THRESHOLD, direction=1, seed=5, per_song=2)
    assert excerpts.clean_prob.tolist() == [0.5, 0.5] and excerpts.frame.tolist() == [100, 100]
    assert len(select_excerpts([song], model, bank, threshold=THRESHOLD, direction=1, seed=5, max_draws=1)) == 1


@pytest.mark.parametrize(
    ("part", "value", "message"),
    [
        (1, np.zeros(200, np.float32), "song 'a': clean spectrogram must be (T, bins), got shape (200,)"),
        (2, np.zeros((200, 513), np.float32), "song 'a': padded adversary must have shape (314, 513), got (200, 513)"),
        (3, np.zeros(200), "song 'a': flipped must be a bool array of shape (200,), got float64 (200,)"),
        (3, np.zeros(199, bool), "song 'a': flipped must be a bool array of shape (200,), got bool (199,)"),
    ],
)
def test_select_excerpts_names_the_bad_song(bank, part, value, message):
    song = list(fabricated_song("a", 200, [100], loud_adv_frames=[100]))
    song[part] = value
    with pytest.raises(ValueError, match=exactly(message)):
        select_excerpts([tuple(song)], CentreBandDetector().eval(), bank, threshold=THRESHOLD, direction=1, seed=7)


def test_select_excerpts_settings_at_their_bounds(bank):
    model, song = CentreBandDetector().eval(), fabricated_song("a", 200, [100], loud_adv_frames=[100])
    one = select_excerpts([song], model, bank, threshold=THRESHOLD, direction=1, seed=7, per_song=1)
    assert one.ids.tolist() == ["a#100#0"]
    none = select_excerpts([song], model, bank, threshold=THRESHOLD, direction=1, seed=7, max_draws=0)
    assert none.clean_logmel.shape == none.adv_logmel.shape == (0, 115, 80) and none.adv_logmel.dtype == np.float32
    assert none.ids.dtype.kind == none.song.dtype.kind == "U" and none.frame.dtype == np.int64
    assert none.clean_prob.dtype == none.adv_prob.dtype == np.float64 and none.adv_prob.shape == (0,)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"direction": 2}, "direction must be 1 (no sing -> sing) or 0 (sing -> no sing), got 2"),
        ({"per_song": 0}, "need per_song >= 1 and max_draws >= 0, got per_song=0, max_draws=100000"),
        ({"max_draws": -1}, "need per_song >= 1 and max_draws >= 0, got per_song=10, max_draws=-1"),
        ({"songs": 2}, "song names must be unique (they seed the draws), got ['a', 'a']"),
        ({"train": True}, "select_excerpts needs the detector in eval mode (BatchNorm running statistics); call model.eval()"),
    ],
)
def test_select_excerpts_names_the_bad_setting(bank, settings, message):
    model = CentreBandDetector().train(settings.pop("train", False))
    songs = [fabricated_song("a", 200, [100], loud_adv_frames=[100])] * settings.pop("songs", 1)
    with pytest.raises(ValueError, match=exactly(message)):
        select_excerpts(songs, model, bank, **{"threshold": THRESHOLD, "direction": 1, "seed": 7, **settings})


def test_explain_excerpts_names_the_bad_input():
    message = "explain_excerpts needs the detector in eval mode (BatchNorm running statistics); call model.eval()"
    with pytest.raises(ValueError, match=exactly(message)):
        explain_excerpts(SegmentSevenDetector().train(), np.zeros((1, 115, 80)), [1], ["x"], explainers=["sal"])
    with pytest.raises(ValueError, match=exactly("excerpts_logmel must be (N, frames, mels), got shape (115, 80)")):
        explain_excerpts(SegmentSevenDetector().eval(), np.zeros((115, 80)), [1], ["x"], explainers=["sal"])


def test_two_class_wrappers_known_answer():
    model, (clean, _) = SegmentSevenDetector().eval(), seven_data(n_items=2)
    logit = model(clean)
    torch.testing.assert_close(excerpt_logits(model)(clean[:, None]), torch.cat([-logit, logit], 1), rtol=0, atol=0)
    p = torch.sigmoid(logit)
    torch.testing.assert_close(excerpt_probabilities(model)(clean[:, None]), torch.cat([1 - p, p], 1), rtol=0, atol=0)


def seven_data(n_items: int = 3, target: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean log-mel excerpts and their adversaries: segment 7 moves across the detector's level;
    decoy segments 2 and 4 move by a quarter as much, which the detector does not hear."""
    rng = np.random.default_rng(0)
    mask = audio_grid()
    base = -5.0 if target == 1 else -1.0
    clean = (base + 0.1 * rng.standard_normal((n_items, 115, 80))).astype(np.float32)
    step = np.select([mask == 7, np.isin(mask, (2, 4))], [4.0, 1.0], 0.0) * (1 if target == 1 else -1)
    return torch.from_numpy(clean), torch.from_numpy(clean + step[None].astype(np.float32))


def grid_masks(n_items: int) -> torch.Tensor:
    return torch.from_numpy(audio_grid()).expand(n_items, 115, 80)


def norm(clean: torch.Tensor, adversarial: torch.Tensor) -> np.ndarray:
    return magnitude(clean, adversarial, grid_masks(len(clean)), 20)


def flips_of(model, clean, adversarial, target, rankings, ks, batch_size=256) -> dict[str, np.ndarray]:
    n = len(clean)
    per_item_k = k_settings(ks, [], np.full(n, 20)).per_item
    return label_flips(model, ThresholdCrossing(np.full(n, target), THRESHOLD), clean, adversarial, grid_masks(n), np.full(n, 20), rankings,
                       per_item_k, batch_size)


@pytest.mark.parametrize("target", [1, 0])
def test_label_flips_known_answer(target):
    model = SegmentSevenDetector().eval()
    clean, adversarial = seven_data(target=target)
    seven_last = np.tile(np.where(np.arange(20) == 7, -1.0, np.arange(20.0)), (3, 1))
    flips = flips_of(model, clean, adversarial, target, {"norm": norm(clean, adversarial), "seven-last": seven_last}, list(range(1, 21)))
    assert flips["norm"].shape == (3, 20) and flips["norm"].all()  # segment 7 carries the largest norm
    # without segment 7 the decoys alone flip nothing; with every segment the whole adversary flips
    assert not flips["seven-last"][:, :19].any() and flips["seven-last"][:, 19].all()


def test_label_flips_predict_identical_hybrids_once():
    model = SegmentSevenDetector().eval()
    clean, adversarial = seven_data()
    scores = norm(clean, adversarial)
    table = flips_of(model, clean, adversarial, 1, {"a": scores, "b": scores.copy()}, [1, 2, 2], batch_size=4)
    assert model.rows_seen == 2 * 4  # two distinct selected sets per item: 6 rows in two passes of 4
    np.testing.assert_array_equal(table["a"], table["b"])


def test_norm_scores_known_answer():
    mask = audio_grid()
    delta = np.zeros((2, 115, 80), np.float32)
    delta[0, 0, 0] = 3.0  # segment 0
    delta[0, 114, 79] = -2.0  # segment 19
    delta[1][mask == 5] = 0.5  # all 23 x 20 entries of segment 5
    scores = norm(torch.zeros(2, 115, 80), torch.from_numpy(delta))
    expected = np.zeros((2, 20))
    expected[0, 0], expected[0, 19], expected[1, 5] = 9.0, 4.0, 0.25 * 23 * 20
    np.testing.assert_allclose(scores, expected)


def test_explain_excerpts_scores_the_target_class():
    model = SegmentSevenDetector().eval()
    _, adversarial = seven_data(n_items=2)
    settings = dict(explainers=["lime", "sal", "ig"], settings=ExplainerSettings.paper("audio", lime_samples=64, ig_steps=4), seed=1)
    towards_sing = explain_excerpts(model, adversarial, np.ones(2), ["x", "y"], **settings)
    towards_silence = explain_excerpts(model, adversarial, np.zeros(2), ["x", "y"], **settings)
    assert list(towards_sing) == ["lime", "sal", "ig"]
    for scores in towards_sing.values():
        assert scores.shape == (2, 20) and (scores.argmax(axis=1) == 7).all()
    # class-0 LIME coefficients are exactly -w; gradient scores are mean_abs, the same for both
    np.testing.assert_allclose(towards_silence["lime"], -towards_sing["lime"], atol=1e-12)
    np.testing.assert_allclose(towards_silence["sal"], towards_sing["sal"])
    assert np.all(towards_sing["sal"][:, np.arange(20) != 7] == 0)
    empty = explain_excerpts(model, adversarial[:0], np.zeros(0), [], **settings)
    assert all(scores.shape == (0, 20) for scores in empty.values())


class MeanDetector(nn.Module):
    """Logit = mean of the excerpt's log-mel to the power ``power``, for any number of mel bands."""

    def __init__(self, scale: float = 1.0, power: int = 1):
        super().__init__()
        self.scale, self.power = nn.Parameter(torch.tensor(scale)), power

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.scale * (logmel**self.power).mean(dim=(1, 2))[:, None]


def test_explain_excerpts_defaults_seeds_and_mel_bands():
    model, (_, adversarial) = MeanDetector(power=2).eval(), seven_data(n_items=1)  # its gradient depends on the noise
    default = explain_excerpts(model, adversarial, [1], ["x"], explainers=["sal-sg"], seed=1)["sal-sg"]
    paper_settings = ExplainerSettings.paper("audio")
    paper = explain_excerpts(model, adversarial, [1], ["x"], explainers=["sal-sg"], seed=1, settings=paper_settings)["sal-sg"]
    np.testing.assert_array_equal(default, paper)  # no settings: the paper's audio settings
    assert not np.array_equal(default, explain_excerpts(model, adversarial, [1], ["x"], explainers=["sal-sg"], seed=2)["sal-sg"])
    forty_bands = explain_excerpts(MeanDetector().eval(), np.zeros((1, 115, 40)), [1], ["x"], explainers=["sal"])["sal"]
    assert forty_bands.shape == (1, 20)


def test_audio_lime_regresses_probabilities_not_logits():
    """A detector saturated at P(sing) = 0 gives LIME nothing to explain, however its logit moves."""
    saturated = MeanDetector(scale=100.0).eval()
    excerpts = -5.0 + np.random.default_rng(0).random((1, 115, 80)).astype(np.float32)
    settings = ExplainerSettings.paper("audio", lime_samples=64)
    lime = explain_excerpts(saturated, excerpts, [1], ["x"], explainers=["lime"], settings=settings)["lime"]
    assert np.abs(lime).max() < 1e-12


@pytest.mark.parametrize(
    ("targets", "ids", "message"),
    [
        ([1], ["x", "y"], "targets must be 2 values in {0, 1}, got [1]"),
        ([1, 2], ["x", "y"], "targets must be 2 values in {0, 1}, got [1, 2]"),
        ([1, 0], ["x"], "ids: expected 2 item ids, got 1"),
    ],
)
def test_explain_excerpts_names_bad_targets_and_ids(targets, ids, message):
    with pytest.raises(ValueError, match=exactly(message)):
        explain_excerpts(SegmentSevenDetector().eval(), np.zeros((2, 115, 80)), targets, ids, explainers=["sal"])


def localised_run(model, clean, adversarial, ks, explain):
    n = len(clean)
    return localised_experiment(model, ThresholdCrossing(np.ones(n, int), THRESHOLD), clean, adversarial, grid_masks(n), np.full(n, 20),
                                ["p", "q"], ks, lambda inputs, classes, ids, _masks, _counts: explain(inputs, classes, ids),
                                ["lime", "sal", "ig"], 256)


def test_localised_recovers_the_single_segment_the_detector_hears():
    model = SegmentSevenDetector().eval()
    clean, adversarial = seven_data(n_items=2)
    explain = functools.partial(explain_excerpts, model, explainers=["lime", "sal", "ig"],
                                settings=ExplainerSettings.paper("audio", lime_samples=64, ig_steps=4), seed=0)
    results = localised_run(model, clean, adversarial, (1, 3), explain)
    one, three = results[1], results[3]
    assert one.kept.all() and np.flatnonzero(one.truth[0]).tolist() == [7] and np.all(one.decisions > THRESHOLD)
    assert one.recovered["lime"].tolist() == [1, 1] and one.recovered["sal"].tolist() == [1, 1]
    # k = 3: the truth is segment 7 and the two decoys; the gradients see only segment 7, so they
    # recover exactly one of the three (their other picks are zero-score ties, segments 19 and 18)
    assert [np.flatnonzero(row).tolist() for row in three.truth] == [[2, 4, 7]] * 2 and three.kept.all()
    assert three.recovered["sal"].tolist() == [1, 1] and three.recovered["ig"].tolist() == [1, 1]


def test_localised_explains_nothing_when_nothing_flips():
    model = SegmentSevenDetector().eval()
    clean, adversarial = seven_data(n_items=2)

    def unused(*args):
        raise AssertionError("explain ran without a kept excerpt")

    weak = localised_run(model, clean, clean + (adversarial - clean) / 100, (1,), unused)
    assert not weak[1].kept.any() and weak[1].recovered["sal"].tolist() == [NOT_KEPT] * 2


def test_flip_tests_of_both_domains():
    """Images: any change of the argmax. Audio: P(sing) on the target's side of τ (strictly)."""
    from advxai.evaluation.flips import ClassChange

    images = ClassChange(np.array([3, 5]))
    decisions = images.decide(torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0]])).numpy()
    assert decisions.tolist() == [3, 1]
    np.testing.assert_array_equal(images.flipped(np.array([[3, 4], [5, 5]])), [[False, True], [False, False]])
    audio = ThresholdCrossing(np.array([1, 0]), 0.5)
    np.testing.assert_allclose(audio.decide(torch.tensor([[0.0], [np.log(3.0)]])).numpy(), [0.5, 0.75])
    np.testing.assert_array_equal(audio.flipped(np.array([[0.5, 0.6], [0.4, 0.5]])), [[False, True], [True, False]])
    assert audio.explained_class(np.array([0.6, 0.4])).tolist() == [1, 0]


def test_a_direction_without_excerpts_gives_empty_results():
    """One attack direction may keep no excerpt: both experiments return empty arrays."""
    model = SegmentSevenDetector().eval()
    clean, adversarial = seven_data(n_items=2)
    clean, adversarial = clean[:0], adversarial[:0]
    assert norm(clean, adversarial).shape == (0, 20)
    assert flips_of(model, clean, adversarial, 1, {"norm": norm(clean, adversarial)}, [1, 20])["norm"].shape == (0, 2)
    empty = localised_experiment(model, ThresholdCrossing(np.ones(0, int), THRESHOLD), clean, adversarial, grid_masks(0), np.full(0, 20),
                                 [], [1], lambda *args: {}, ["sal"], 256)
    assert empty[1].kept.shape == (0,) and empty[1].recovered["sal"].shape == (0,)


def test_explain_excerpts_seed_defaults_to_zero():
    model, (_, adversarial) = MeanDetector(power=2).eval(), seven_data(n_items=1)
    default = explain_excerpts(model, adversarial, [1], ["x"], explainers=["sal-sg"])["sal-sg"]
    np.testing.assert_array_equal(default, explain_excerpts(model, adversarial, [1], ["x"], explainers=["sal-sg"], seed=0)["sal-sg"])
