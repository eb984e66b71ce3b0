"""Audio experiments: excerpt selection, label flips, norm baseline, localised perturbations."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from advxai.audio_experiments import (
    explain_excerpts,
    label_flip_table,
    label_flips,
    localised,
    norm_scores,
    select_excerpts,
)
from advxai.seeding import numpy_rng
from advxai.segments import audio_grid
from advxai.svds.features import log_mel, mel_filterbank

CONTEXT = 57
BAND = 10
LEVEL = float(np.log(0.03))
QUIET, LOUD = 0.01, 0.05
THRESHOLD = 0.5


class CentreBandDetector(nn.Module):
    """SVDS-shaped stand-in: P(sing) of window ``[j, j+115)`` rises with its centre frame's band-10 log-mel."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.scale * (logmel[:, CONTEXT : logmel.shape[1] - CONTEXT, BAND] - LEVEL)


class SegmentSevenDetector(nn.Module):
    """Says "sing" iff the mean log-mel of segment 7 (frames 23..45, mel bins 60..79) exceeds -3."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.rows_seen = 0

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        self.rows_seen += logmel.shape[0]
        return self.scale * (logmel[:, 23:46, 60:80].mean(dim=(1, 2)) - (-3.0))[:, None]


@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    return mel_filterbank()


def flat_song(levels: np.ndarray) -> np.ndarray:
    """A linear spectrogram whose frame t has magnitude levels[t] in every bin (so in every mel band)."""
    return np.repeat(np.asarray(levels, np.float32)[:, None], 513, axis=1)


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


def seven_data(n_items: int = 3, target: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Clean log-mel excerpts and a perturbation that moves only segment 7 across the level."""
    rng = np.random.default_rng(0)
    mask = audio_grid()
    base = -5.0 if target == 1 else -1.0
    clean = (base + 0.1 * rng.standard_normal((n_items, 115, 80))).astype(np.float32)
    delta = np.where(mask == 7, 4.0 if target == 1 else -4.0, 0.0)[None].repeat(n_items, 0).astype(np.float32)
    return clean, delta


@pytest.mark.parametrize("target", [1, 0])
def test_label_flips_known_answer(target):
    model, mask = SegmentSevenDetector().eval(), audio_grid()
    clean, delta = seven_data(target=target)
    targets = np.full(3, target)
    ks = list(range(1, 21))
    norm = label_flips(model, clean, delta, targets, norm_scores(delta, mask), mask, ks, THRESHOLD)
    assert norm.shape == (20, 3) and norm.all()
    seven_last = np.tile(np.where(np.arange(20) == 7, -1.0, np.arange(20.0)), (3, 1))
    ranked_last = label_flips(model, clean, delta, targets, seven_last, mask, ks, THRESHOLD)
    assert not ranked_last[:19].any() and ranked_last[19].all()


def test_label_flip_table_predicts_identical_hybrids_once():
    model, mask = SegmentSevenDetector().eval(), audio_grid()
    clean, delta = seven_data()
    scores = norm_scores(delta, mask)
    table = label_flip_table(model, clean, delta, np.ones(3), {"a": scores, "b": scores.copy()}, mask, [1, 2, 2], THRESHOLD, batch_size=4)
    assert model.rows_seen == 2 * 4  # two distinct selected sets per item: 6 rows in two passes of 4
    np.testing.assert_array_equal(table["a"], table["b"])


def test_norm_scores_known_answer():
    mask = audio_grid()
    delta = np.zeros((2, 115, 80))
    delta[0, 0, 0] = 3.0  # segment 0
    delta[0, 114, 79] = -2.0  # segment 19
    delta[1][mask == 5] = 0.5  # all 23 x 20 entries of segment 5
    scores = norm_scores(delta, mask)
    expected = np.zeros((2, 20))
    expected[0, 0], expected[0, 19], expected[1, 5] = 9.0, 4.0, 0.25 * 23 * 20
    np.testing.assert_allclose(scores, expected)


def test_explain_excerpts_scores_the_target_class():
    model = SegmentSevenDetector().eval()
    clean, delta = seven_data(n_items=2)
    adversarial = torch.from_numpy(clean + delta)
    settings = dict(explainers=["lime", "sal", "ig"], lime_samples=64, ig_steps=4, seed=1)
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


def test_localised_recovers_the_single_perturbed_segment():
    model = SegmentSevenDetector().eval()
    clean, delta = seven_data(n_items=2)
    explain = functools.partial(explain_excerpts, model, explainers=["lime", "sal"], lime_samples=64, seed=0)
    results = localised(model, clean, delta, np.ones(2), ["p", "q"], ks=(1, 3), explain=explain, threshold=THRESHOLD)
    assert results[1]["kept"].all() and np.all(results[1]["probability"] > THRESHOLD)
    assert results[1]["recovered"]["lime"].tolist() == [1, 1]
    assert results[1]["recovered"]["sal"].tolist() == [1, 1]
    assert all(0 <= r <= 3 for r in results[3]["recovered"]["lime"])
    # nothing survives when the perturbation is too weak: explain still sees an (empty) batch
    weak = localised(model, clean, delta / 100, np.ones(2), ["p", "q"], ks=(1,), explain=explain, threshold=THRESHOLD)
    assert not weak[1]["kept"].any() and weak[1]["recovered"]["sal"].shape == (0,)
