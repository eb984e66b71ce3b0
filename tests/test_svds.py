"""The singing-voice detector: features, network, inference, storage, training, evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from advxai.store import BatchCheckpoint, read_h5, write_h5
from advxai.svds.evaluate import THRESHOLD_GRID, auroc_over_grid, binary_metrics, median_smooth, tune_threshold
from advxai.svds.features import log_mel, mel_peak_bins, stft_magnitude
from advxai.svds.model import SVDS, ZeroMeanConv2d, load_detector, predict_song, save_detector
from advxai.svds.train import (
    DEFAULT_AUGMENT,
    ExcerptSampler,
    random_filter_gains,
    stretch_shift,
    train_detector,
    window_frames,
)


def random_eval_model(seed: int = 0) -> SVDS:
    """A random SVDS in eval mode with non-trivial BatchNorm running statistics."""
    model = SVDS(generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# features


def test_mel_filterbank_has_the_documented_properties(bank):
    assert bank.shape == (513, 80)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(np.flatnonzero(bank.any(axis=1)), np.arange(2, 372))
    _, peak_bins = mel_peak_bins()
    assert len(peak_bins) == 82
    assert list(peak_bins[:4]) == [2, 3, 4, 5] and list(peak_bins[-3:]) == [348, 360, 372]
    assert peak_bins[-1] == 513 * 2 * 8000 // 22050  # bin_mel_max
    # the band peaks where its top corner is: band 40's largest weight sits at peak bin 41
    assert np.argmax(bank[:, 40]) in (peak_bins[41] - 1, peak_bins[41])


def test_mel_filterbank_triangle_formula_on_one_band(bank):
    peaks_hz, peak_bins = mel_peak_bins()
    bin_hz = np.linspace(0, 11025, 513)
    left, top, right = peak_bins[50:53]
    triangle = np.zeros(513)
    triangle[left:top] = (bin_hz[left:top] - peaks_hz[50]) / (top - left)
    triangle[top:right] = (peaks_hz[52] - bin_hz[top:right]) / (right - top)
    np.testing.assert_allclose(bank[:, 50], triangle / triangle.sum(), rtol=1e-5)


def test_stft_magnitude_matches_librosa():
    import librosa

    waveform = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    spec = stft_magnitude(waveform)
    assert spec.shape == (1 + 5000 // 315, 513)
    reference = np.abs(librosa.stft(waveform, n_fft=1024, hop_length=315, window="hann", center=True, pad_mode="reflect")).T
    np.testing.assert_allclose(spec, reference, rtol=1e-4, atol=1e-4)


def test_log_mel_known_answers_and_gradient(bank):
    ones = torch.ones(3, 513, requires_grad=True)
    out = log_mel(ones, bank)
    torch.testing.assert_close(out, torch.zeros(3, 80), atol=1e-6, rtol=0)  # every filter sums to 1
    out.sum().backward()
    # d/dx Σ_b log(x·fb_b) at x = 1 is Σ_b fb_b (the denominators are 1)
    torch.testing.assert_close(ones.grad[0], torch.from_numpy(bank.sum(axis=1)), atol=1e-5, rtol=1e-5)
    assert torch.allclose(log_mel(torch.zeros(2, 513), bank), torch.full((2, 80), float(np.log(1e-7))))


# ---------------------------------------------------------------------------------------------
# network


def excerpt_form_reference(model: SVDS, log_mel_input: torch.Tensor) -> torch.Tensor:
    """docs/method.md §1.4's layer table on 115 frames: stride-3 pools and flattened dense layers."""
    x = F.batch_norm(log_mel_input.transpose(1, 2), model.freq_norm.running_mean, model.freq_norm.running_var, eps=1e-4)
    x = x.transpose(1, 2).unsqueeze(1)
    zero_mean = model.conv1.weight - model.conv1.weight.mean(dim=(2, 3), keepdim=True)
    x = F.leaky_relu(model.bn1(F.conv2d(x, zero_mean)), 0.01)
    x = F.leaky_relu(model.bn2(F.conv2d(x, model.conv2.weight, model.conv2.bias)), 0.01)
    x = F.max_pool2d(x, 3, stride=3)
    assert x.shape[1:] == (32, 37, 25)
    x = F.leaky_relu(model.bn3(F.conv2d(x, model.conv3.weight, model.conv3.bias)), 0.01)
    x = F.leaky_relu(model.bn4(F.conv2d(x, model.conv4.weight, model.conv4.bias)), 0.01)
    x = F.max_pool2d(x, 3, stride=3).flatten(1)
    assert x.shape[1] == 4928
    x = F.linear(x, model.fc1.weight.flatten(1), model.fc1.bias)
    x = F.leaky_relu(F.batch_norm(x, model.bn_d1.running_mean, model.bn_d1.running_var, model.bn_d1.weight, model.bn_d1.bias,
                                  eps=1e-4), 0.01)
    x = F.linear(x, model.fc2.weight.flatten(1), model.fc2.bias)
    x = F.leaky_relu(F.batch_norm(x, model.bn_d2.running_mean, model.bn_d2.running_var, model.bn_d2.weight, model.bn_d2.bias,
                                  eps=1e-4), 0.01)
    return F.linear(x, model.fc3.weight.flatten(1), model.fc3.bias)


@torch.no_grad()
def test_fully_convolutional_output_equals_excerpt_network():
    model = random_eval_model()
    inputs = torch.randn(2, 115 + 10, 80)
    dense = model(inputs)
    assert dense.shape == (2, 11)
    for j in (0, 1, 2, 4, 9, 10):  # offsets of every residue modulo the pool strides 3 and 9
        window = inputs[:, j : j + 115]
        torch.testing.assert_close(dense[:, j : j + 1], model(window), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(dense[:, j : j + 1], excerpt_form_reference(model, window), atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_zero_mean_convolution_ignores_offsets():
    conv = ZeroMeanConv2d(1, 4, 3)
    x = torch.randn(2, 1, 9, 9)
    torch.testing.assert_close(conv(x + 3.5), conv(x), atol=1e-5, rtol=0)
    assert conv.bias is None
    plain = torch.nn.Conv2d(1, 4, 3, bias=False)
    plain.weight.copy_(conv.weight)
    assert not torch.allclose(plain(x + 3.5), plain(x), atol=1e-3)


def test_parameter_count_and_seeded_init():
    model = SVDS(generator=torch.Generator().manual_seed(3))
    layers = [model.conv1, model.conv2, model.conv3, model.conv4, model.fc1, model.fc2, model.fc3]
    assert sum(p.numel() for layer in layers for p in layer.parameters()) == 1_408_161  # ≈ 1.41 M plus BN
    weight = model.fc1.weight.flatten(1)  # orthogonal rows (256 < 4928)
    torch.testing.assert_close(weight @ weight.T, torch.eye(256), atol=1e-4, rtol=0)
    again = SVDS(generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_svds_rejects_short_input():
    with pytest.raises(ValueError, match="T ≥ 115"):
        SVDS()(torch.zeros(1, 114, 80))


def test_predict_song_matches_per_frame_excerpts_and_chunking(bank):
    model = random_eval_model(4)
    spec = np.random.default_rng(0).random((40, 513)).astype(np.float32)
    whole = predict_song(model, spec, bank, batch_frames=4096)
    chunked = predict_song(model, spec, bank, batch_frames=7)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    padded = np.concatenate([np.zeros((57, 513), np.float32), spec, np.zeros((57, 513), np.float32)])
    with torch.no_grad():
        for frame in (0, 13, 39):  # the scored frame is the centre of its padded excerpt
            excerpt = log_mel(torch.from_numpy(padded[frame : frame + 115]), bank)[None]
            assert whole[frame] == pytest.approx(torch.sigmoid(model(excerpt))[0, 0].item(), abs=1e-6)


def test_detector_roundtrip_and_mismatch_errors(tmp_path, bank):
    model = random_eval_model(5)
    path = tmp_path / "seed0.h5"
    save_detector(path, model, params={"epochs": 1}, seeds={"seed": 0}, history={"train_loss": np.array([0.5])})
    loaded = load_detector(path)
    spec = np.random.default_rng(1).random((20, 513)).astype(np.float32)
    np.testing.assert_array_equal(predict_song(loaded, spec, bank), predict_song(model, spec, bank))
    np.testing.assert_array_equal(read_h5(path, ["history/train_loss"])["history/train_loss"], [0.5])
    state = read_h5(path)
    broken = {k: v for k, v in state.items() if k != "state/fc3.bias"}
    broken["state/extra.weight"] = np.zeros(3)
    write_h5(path, broken, stage="svds-train", params={})
    with pytest.raises(ValueError, match=r"seed0\.h5.*missing: \['fc3\.bias'\].*unexpected: \['extra\.weight'\]"):
        load_detector(path)
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        load_detector(tmp_path / "absent.h5")


# ---------------------------------------------------------------------------------------------
# training


def test_stretch_shift_known_answers():
    # time ramp: order-2 splines reproduce linear functions, so output t reads t/stretch + offset
    ramp = np.repeat(np.arange(164, dtype=np.float64)[:, None], 50, axis=1)
    out = stretch_shift(ramp, stretch=1.25, shift=1.0)
    assert out.shape == (115, 50)
    offset = 0.5 * (164 - 115 / 1.25)
    np.testing.assert_allclose(out[5:-5, 10], np.arange(115)[5:-5] / 1.25 + offset, atol=1e-6)
    # pitch shift: output bin b reads input bin b / shift, so a peak at bin 100 moves to bin 120
    peak = np.zeros((164, 513))
    peak[:, 100] = 1.0
    assert np.argmax(stretch_shift(peak, stretch=1.0, shift=1.2)[50]) == 120
    assert (stretch_shift(peak, 0.8, 1.3) >= 0).all()  # spline overshoot clipped


def test_random_filters_stay_within_range():
    gains = random_filter_gains(np.random.default_rng(0), 200, 513, DEFAULT_AUGMENT)
    db = 20 * np.log10(gains)
    assert np.abs(db).max() <= 10 + 1e-4
    centre_bins = np.argmax(np.abs(db), axis=1)
    hz = centre_bins * 22050 / 1024
    assert hz.min() > 150 - 25 and hz.max() < 8000 + 25
    assert hz.max() > 2000  # centres reach far above veracity's 32–150 Hz band


def test_sampler_labels_centre_frames_and_covers_every_window_once_per_pass():
    spec = np.arange(200, dtype=np.float32)[:, None].repeat(3, axis=1)
    labels = np.arange(200) % 3 == 0
    sampler = ExcerptSampler([(spec, labels), (spec[:10], labels[:10])], window_frames(DEFAULT_AUGMENT), seed=1)
    assert sampler.frames == 164 and len(sampler.windows) == 37  # the 10-frame song is too short
    excerpts, batch_labels = zip(*(sampler.batch(b, 37) for b in range(2)))
    starts = [excerpt[:, 0, 0].astype(int) for excerpt in excerpts]
    assert sorted(starts[0]) == list(range(37)) and sorted(starts[1]) == list(range(37))
    assert list(starts[0]) != list(starts[1])  # reshuffled for the second pass
    np.testing.assert_array_equal(batch_labels[0], labels[starts[0] + 82])


def test_resumed_training_is_bitwise_identical(tmp_path):
    rng = np.random.default_rng(0)
    songs = [(rng.random((200, 513)).astype(np.float32), rng.random(200) < 0.5) for _ in range(2)]
    settings = dict(seed=3, epochs=2, batches_per_epoch=3, batch_size=4)
    uninterrupted, history = train_detector(songs, **settings)
    checkpoint = BatchCheckpoint(tmp_path / "model.h5", params=settings)
    train_detector(songs, **{**settings, "epochs": 1}, checkpoint=checkpoint)  # killed after epoch 1
    assert checkpoint.keys() == {"slot0"}
    resumed, resumed_history = train_detector(songs, **settings, checkpoint=BatchCheckpoint(tmp_path / "model.h5", params=settings))
    for (key, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key
    np.testing.assert_array_equal(history["batch_loss"], resumed_history["batch_loss"])
    np.testing.assert_allclose(history["lr"], [1e-3, 0.85e-3])


@pytest.mark.slow
def test_training_learns_an_easy_task(bank):
    rng = np.random.default_rng(0)

    def song(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        spec = rng.random((n_frames, 513)).astype(np.float32) * 0.1
        sung = (np.arange(n_frames) // 150) % 2 == 1
        spec[sung, 40:60] += 2.0  # "singing" is a strong narrow band
        return spec, sung

    model, history = train_detector([song(900), song(900)], seed=1, epochs=3, batches_per_epoch=6, batch_size=8, lr=3e-3, augment=None)
    assert history["train_loss"][-1] < history["train_loss"][0]
    spec, sung = song(600)
    probs = predict_song(model, spec, bank)
    inner = slice(60, -60)  # away from the zero padding at the song's ends
    assert roc_auc_score(sung[inner], probs[inner]) > 0.9


# ---------------------------------------------------------------------------------------------
# evaluation


def brute_force_median(values: np.ndarray, width: int) -> np.ndarray:
    """veracity's MedianPool: pad (width−1) − (width−1)//2 left, (width−1)//2 right by replication."""
    left, right = (width - 1) - (width - 1) // 2, (width - 1) // 2
    padded = np.concatenate([np.full(left, values[0]), values, np.full(right, values[-1])])
    return np.array([np.sort(padded[i : i + width])[width // 2] for i in range(len(values))])


@pytest.mark.parametrize("width, length", [(56, 300), (56, 20), (5, 30), (4, 9), (1, 5)])
def test_median_smooth_matches_brute_force(width, length):
    values = np.random.default_rng(width + length).random(length)
    np.testing.assert_array_equal(median_smooth(values, width), brute_force_median(values, width))


def test_threshold_grid():
    assert len(THRESHOLD_GRID) == 105
    np.testing.assert_allclose(THRESHOLD_GRID[:5], [1e-5, 1e-4, 1e-3, 0.01, 0.02])
    np.testing.assert_allclose(THRESHOLD_GRID[-4:], [0.99, 1 - 1e-3, 1 - 1e-4, 1 - 1e-5])


def test_tune_threshold_maximises_pooled_accuracy():
    probs = [np.array([0.1, 0.3, 0.62, 0.9]), np.array([0.5, 0.65])]
    labels = [np.array([0, 0, 1, 1], bool), np.array([0, 1], bool)]
    # thresholds in [0.5, 0.62) classify all six frames correctly; 0.5 is the first grid value there
    assert tune_threshold(probs, labels) == pytest.approx(0.5)


def test_binary_metrics_known_answer():
    probs = [np.array([0.9, 0.8, 0.2, 0.7]), np.array([0.1, 0.6, 0.51])]
    labels = [np.array([1, 1, 1, 0], bool), np.array([0, 0, 1], bool)]
    metrics = binary_metrics(probs, labels, threshold=0.51)  # strictly above: 0.51 is "no sing"
    # tp = 2 (0.9, 0.8), fn = 2 (0.2, 0.51), fp = 2 (0.7, 0.6), tn = 1 (0.1)
    assert metrics == pytest.approx({"error": 400 / 7, "recall": 50.0, "specificity": 100 / 3, "precision": 50.0, "f1": 50.0})
    no_singing = binary_metrics([np.array([0.1, 0.2])], [np.array([0, 0], bool)], 0.5)
    assert no_singing["recall"] == 0.0 and no_singing["error"] == 0.0


def test_auroc_over_grid_extremes():
    labels = [np.array([0, 0, 1, 1], bool)]
    assert auroc_over_grid([np.array([0.1, 0.2, 0.8, 0.9])], labels) == pytest.approx(100.0)
    assert auroc_over_grid([np.array([0.9, 0.8, 0.2, 0.1])], labels) == pytest.approx(0.0)


def test_evaluation_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="song 0"):
        binary_metrics([np.zeros(3)], [np.zeros(4, bool)], 0.5)
