"""C&W spectrogram attack: flips, bounds, determinism, one hand-computed step, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from messages import exactly
from stand_in_detector import BAND, CONTEXT, LOUD, QUIET, CentreBandDetector, flat_song, level_of
from torch import nn

from advxai.attacks.cw import AttackCheckpoint, sign_adam_step, spectrogram_attack
from advxai.store import BatchCheckpoint
from advxai.svds.features import log_mel
from advxai.svds.model import SVDS


class FailingAfter(nn.Module):
    """Raises on forward call number ``calls`` (simulates a killed job)."""

    def __init__(self, model: nn.Module, calls: int):
        super().__init__()
        self.model, self.calls = model, calls

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls == 0:
            raise RuntimeError("killed")
        return self.model(logmel)


def song(n_frames: int = 40) -> np.ndarray:
    """First half quiet ("no sing"), second half loud ("sing"), flat over all 513 bins."""
    return flat_song(np.where(np.arange(n_frames) < n_frames // 2, QUIET, LOUD))


def test_attack_flips_every_frame_within_epsilon(bank):
    model = CentreBandDetector().eval()
    spec = song(20)
    result = spectrogram_attack(model, spec, bank, threshold=0.5)  # the paper's alpha, epsilon, lr, max_iter
    assert result.clean_pred.tolist() == [False] * 10 + [True] * 10
    assert result.flipped.all()
    assert 0 < result.iterations < 1000  # stopped early once every frame flipped
    assert result.delta.shape == result.adversarial_padded.shape == (20 + 2 * CONTEXT, 513)
    assert np.abs(result.delta).max() <= 0.1 + 1e-7
    padded = np.pad(spec, ((CONTEXT, CONTEXT), (0, 0)))
    np.testing.assert_array_equal(result.adversarial_padded, padded + result.delta)
    with torch.no_grad():
        recomputed = torch.sigmoid(model(log_mel(torch.from_numpy(result.adversarial_padded), bank)[None]))[0] > 0.5
    np.testing.assert_array_equal(recomputed.numpy(), result.adv_pred)
    assert recomputed.tolist() == [True] * 10 + [False] * 10  # every frame on the other side of the threshold
    # only bins feeding the detector's band are ever moved (their gradient is the only non-zero one)
    feeding = bank[:, BAND] > 0
    assert np.all(result.delta[:, ~feeding] == 0) and np.any(result.delta[:, feeding] != 0)


def test_attack_is_deterministic(bank):
    model = CentreBandDetector().eval()
    first = spectrogram_attack(model, song(), bank, threshold=0.5, max_iter=30)
    second = spectrogram_attack(model, song(), bank, threshold=0.5, max_iter=30)
    np.testing.assert_array_equal(first.delta, second.delta)
    np.testing.assert_array_equal(first.adv_pred, second.adv_pred)
    assert first.iterations == second.iterations == 30


def test_alpha_weights_the_classification_loss(bank):
    """Eq. 8: loss = ‖δ‖² + α · BCE. With α = 0 only the penalty is left, whose gradient at δ = 0 is 0:
    nothing moves; with the paper's α the classification term drives the flips."""
    model = CentreBandDetector().eval()
    without = spectrogram_attack(model, song(20), bank, threshold=0.5, alpha=0.0, max_iter=20)
    assert not without.delta.any() and not without.flipped.any() and without.iterations == 20
    assert spectrogram_attack(model, song(20), bank, threshold=0.5, max_iter=20).delta.any()


@pytest.mark.parametrize(("alpha", "steps_of_lr"), [(1e-5, 18 / 19), (0.01, 2.0)])
def test_the_penalty_is_the_squared_norm(bank, alpha, steps_of_lr):
    """‖δ‖² (Eq. 8), not ‖δ‖₁ or another power. Step 1 moves δ by ∓lr where ∂BCE ≠ 0 (60 entries,
    |∂BCE| in 0.36..9.1 on this song; up in the quiet half, down in the loud half). At step 2 the
    penalty's gradient 2|δ| = 0.001 meets α·|∂BCE|: where it is larger (α = 1e-5) it has δ's sign,
    and Adam moves back by lr·(1-β₁)/(1+β₁), to |δ| = lr·18/19; where it is smaller (α = 0.01),
    step 2 moves on, to |δ| = 2·lr. (An L1 gradient, ±1, would pull back at α = 0.01; |δ|³'s or
    δ⁴'s, 1e-9 or less, would move on at α = 1e-5.)"""
    lr = 5e-4
    result = spectrogram_attack(CentreBandDetector().eval(), song(20), bank, threshold=0.5, alpha=alpha, lr=lr, max_iter=2)
    moved = result.delta != 0
    assert moved.sum() == 60 and (result.delta > 0).any() and (result.delta < 0).any()
    np.testing.assert_allclose(np.abs(result.delta[moved]), steps_of_lr * lr, rtol=1e-4)


def test_zero_iterations_flip_nothing(bank):
    result = spectrogram_attack(CentreBandDetector().eval(), song(), bank, threshold=0.5, max_iter=0)
    assert result.iterations == 0 and not result.flipped.any()
    assert np.all(result.delta == 0)
    np.testing.assert_array_equal(result.adv_pred, result.clean_pred)


def test_first_step_is_minus_lr_times_sign_of_gradient(bank):
    """Adam's first step on a sign gradient s moves by lr · s / (|s| + eps): -lr · sign(g) up to eps."""
    torch.manual_seed(0)
    spec = torch.rand(6, 513) * 0.1
    model = SVDS(generator=torch.Generator().manual_seed(3)).eval()
    alpha, lr, threshold = 15.0, 5e-4, 0.5
    delta = torch.zeros(6 + 2 * CONTEXT, 513, requires_grad=True)
    padded = F.pad(spec, (0, 0, CONTEXT, CONTEXT))
    logits = model(log_mel(padded + delta, bank)[None])[0]
    target = (torch.sigmoid(logits.detach()) <= threshold).float()
    loss = (delta**2).sum() + alpha * F.binary_cross_entropy_with_logits(logits, target)
    (gradient,) = torch.autograd.grad(loss, delta)
    expected = -lr * torch.sign(gradient).numpy()

    result = spectrogram_attack(model, spec.numpy(), bank, threshold=threshold, alpha=alpha, lr=lr, max_iter=1)
    assert result.iterations == 1
    np.testing.assert_allclose(result.delta, expected, rtol=1e-6, atol=0)
    # the padding is attacked too, but log(max(x, 1e-7)) has no gradient at x = 0: it never moves
    assert np.all(result.delta[:CONTEXT] == 0) and np.all(result.delta[-CONTEXT:] == 0)
    assert np.any(result.delta[CONTEXT:-CONTEXT] != 0)


def test_sign_adam_steps_by_hand():
    """Two steps whose gradient signs disagree: Adam (not Eq. 8's plain sign step) gives lr·(1 − 1/19)."""
    lr = 1e-3
    delta = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    first = torch.tensor([2.0, -0.5, 0.0, 3.0])
    sign_adam_step(optimizer, delta, first, epsilon=1.0)
    np.testing.assert_allclose(delta.detach().numpy(), [-lr, lr, 0.0, -lr], rtol=1e-6)
    # m̂ = (0.9·0.1·s0 + 0.1·s1) / (1 − 0.9²), v̂ = 1: with s1 = −s0 the step is −lr·s0/19 back
    sign_adam_step(optimizer, delta, torch.tensor([-1.0, 7.0, 0.0, 5.0]), epsilon=1.0)
    np.testing.assert_allclose(delta.detach().numpy(), [-lr + lr / 19, lr - lr / 19, 0.0, -2 * lr], rtol=1e-5)
    sign_adam_step(optimizer, delta, torch.tensor([0.0, 0.0, 0.0, 1.0]), epsilon=1.5 * lr)
    assert delta.detach()[3].item() == pytest.approx(-1.5 * lr)  # clipped to -epsilon


def test_resumed_attack_equals_uninterrupted(bank, tmp_path):
    model = CentreBandDetector().eval()
    reference = spectrogram_attack(model, song(), bank, threshold=0.5, max_iter=9)
    store = BatchCheckpoint(tmp_path / "adversaries.h5", {"alpha": 15})
    checkpoint = AttackCheckpoint(store, key="song-a", every=2)
    with pytest.raises(RuntimeError, match="killed"):
        # call 1 is the clean prediction; calls 2..6 take steps 1..5 (saved after 2 and 4)
        spectrogram_attack(FailingAfter(model, 7).eval(), song(), bank, threshold=0.5, max_iter=9, checkpoint=checkpoint)
    assert int(store.load("song-a")["iteration"]) == 4
    resumed = spectrogram_attack(model, song(), bank, threshold=0.5, max_iter=9, checkpoint=checkpoint)
    assert resumed.iterations == reference.iterations == 9
    np.testing.assert_array_equal(resumed.delta, reference.delta)


def test_rejects_training_mode_and_bad_shapes(bank):
    message = "spectrogram_attack needs the model in eval mode (BatchNorm running statistics); call model.eval()"
    with pytest.raises(ValueError, match=exactly(message)):
        spectrogram_attack(CentreBandDetector().train(), song(), bank, threshold=0.5)
    with pytest.raises(ValueError, match="bins"):
        spectrogram_attack(CentreBandDetector().eval(), song()[:, :100], bank, threshold=0.5)


def test_sign_adam_step_clips_both_sides():
    delta = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=1.0)
    sign_adam_step(optimizer, delta, torch.tensor([-4.0, 4.0]), epsilon=0.25)
    np.testing.assert_array_equal(delta.detach().numpy(), [0.25, -0.25])


@pytest.mark.parametrize(
    ("spec_shape", "bank_shape", "settings", "message"),
    [
        ((40,), (513, 80), {}, r"spec_linear must be a \(T, bins\) spectrogram with T >= 1, got shape \(40,\)"),
        ((0, 513), (513, 80), {}, r"T >= 1, got shape \(0, 513\)"),
        ((40, 513), (513,), {}, r"filterbank of shape \(513,\) does not match 513 spectrogram bins"),
        ((40, 513), (512, 80), {}, r"filterbank of shape \(512, 80\) does not match 513"),
        ((40, 513), (513, 80), {"threshold": 0.0}, r"threshold must lie in \(0, 1\), got 0.0"),
        ((40, 513), (513, 80), {"threshold": 1.0}, r"threshold must lie in \(0, 1\), got 1.0"),
        ((40, 513), (513, 80), {"threshold": 1.5}, r"got 1.5"),
        ((40, 513), (513, 80), {"alpha": -1.0}, r"need alpha >= 0, epsilon > 0, lr > 0, max_iter >= 0; got alpha=-1.0, epsilon=0.1"),
        ((40, 513), (513, 80), {"epsilon": 0.0}, r"got alpha=15.0, epsilon=0.0, lr=0.0005, max_iter=1000"),
        ((40, 513), (513, 80), {"lr": 0.0}, r"lr=0.0, max_iter"),
        ((40, 513), (513, 80), {"max_iter": -1}, r"max_iter=-1$"),
    ],
)
def test_bad_arguments_are_named(spec_shape, bank_shape, settings, message):
    arguments = {"threshold": 0.5, **settings}
    with pytest.raises(ValueError, match=message):
        spectrogram_attack(CentreBandDetector().eval(), np.zeros(spec_shape, np.float32), np.zeros(bank_shape, np.float32), **arguments)


def test_float64_inputs_are_attacked_in_float32(bank):
    model = CentreBandDetector().eval()
    single = spectrogram_attack(model, song(), bank, threshold=0.5, max_iter=3)
    double = spectrogram_attack(model, song().astype(np.float64), bank.astype(np.float64), threshold=0.5, max_iter=3)
    assert double.delta.dtype == double.adversarial_padded.dtype == np.float32
    np.testing.assert_array_equal(double.delta, single.delta)


def test_one_frame_song_is_attacked(bank):
    result = spectrogram_attack(CentreBandDetector().eval(), song(2)[:1], bank, threshold=0.5, max_iter=0)
    assert result.clean_pred.tolist() == [False] and result.delta.shape == (1 + 2 * CONTEXT, 513)


def test_checkpoint_of_another_song_length_is_refused(bank, tmp_path):
    store = BatchCheckpoint(tmp_path / "adversaries.h5", {"alpha": 15})
    checkpoint = AttackCheckpoint(store, key="song-a", every=1)
    spectrogram_attack(CentreBandDetector().eval(), song(4), bank, threshold=0.5, max_iter=1, checkpoint=checkpoint)
    message = r"adversaries\.h5\.partial\.h5: checkpoint 'song-a' holds delta of shape \(118, 513\), expected \(119, 513\)"
    with pytest.raises(ValueError, match=message):
        spectrogram_attack(CentreBandDetector().eval(), song(5), bank, threshold=0.5, max_iter=2, checkpoint=checkpoint)


@pytest.mark.slow
def test_attack_flips_a_tiny_trained_detector(bank):
    """The real SVDS, trained briefly on an easy task ("singing" = a narrow band), is flipped."""
    from advxai.svds.evaluate import tune_threshold
    from advxai.svds.model import predict_song
    from advxai.svds.train import train_detector

    rng = np.random.default_rng(0)

    def fabricated(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        spec = rng.random((n_frames, 513)).astype(np.float32) * 0.1
        sung = (np.arange(n_frames) // 150) % 2 == 1
        spec[sung, 40:60] += 2.0
        return spec, sung

    model, _ = train_detector([fabricated(900), fabricated(900)], seed=1, epochs=3, batches_per_epoch=6, batch_size=8, lr=3e-3,
                              augment=None)
    spec, sung = fabricated(300)
    probabilities = predict_song(model, spec, bank)
    threshold = tune_threshold([probabilities], [sung])
    assert ((probabilities > threshold) == sung)[60:-60].mean() > 0.9  # the detector works before the attack
    result = spectrogram_attack(model, spec, bank, threshold=threshold, epsilon=0.5, lr=0.01, max_iter=150)
    assert np.abs(result.delta).max() <= 0.5 + 1e-6
    assert result.flipped.mean() > 0.25  # 150 sign-Adam steps flip a third of the frames
    # the flips as the detector sees them: the clean song and the attacked one (its padding dropped) predicted afresh
    attacked = predict_song(model, result.adversarial_padded[CONTEXT:-CONTEXT], bank) > threshold
    np.testing.assert_array_equal(attacked, result.adv_pred)
    np.testing.assert_array_equal(result.flipped, attacked != (probabilities > threshold))


def test_a_frame_exactly_at_the_threshold_is_no_sing(bank):
    """P(sing) > τ is "sing" (as everywhere in advxai): frames at P = τ exactly are "no sing", clean and attacked."""
    at_level = level_of(0.03, bank)
    model = CentreBandDetector(level=at_level).eval()
    result = spectrogram_attack(model, np.full((4, 513), 0.03, np.float32), bank, threshold=0.5, max_iter=0)
    assert result.clean_pred.tolist() == result.adv_pred.tolist() == [False] * 4
