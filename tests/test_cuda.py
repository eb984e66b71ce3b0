"""The CUDA path against the CPU (skipped without a GPU; benchmarks/gpu_check.sh runs these).

What must be identical on both devices, and what may differ (docs/cuda.md explains why):

* identical: everything drawn from seeds on the CPU (PGD targets, SmoothGrad noise, LIME samples,
  rectangle segments) and every table's shape and keys;
* within float32 round-off (TF32 off): logits, gradients and LIME coefficients, relative 1e-4;
* amplified, so compared by counts: sign steps (PGD, C&W) turn a gradient round-off into a whole
  step, and SVDS dropout draws from the CUDA generator on the GPU, a different stream than the
  CPU's, so a detector trained on CUDA differs from one trained on the CPU. A device is compared
  with itself where exactness is promised (a resumed training equals an uninterrupted one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advxai.attacks.cw import spectrogram_attack
from advxai.attacks.pgd import targeted_pgd
from advxai.explainers.engine import ExplainSettings, explain_all
from advxai.explainers.settings import ExplainerSettings
from advxai.models import load_model, predict
from advxai.segments import rectangles
from advxai.store import BatchCheckpoint
from advxai.svds.features import mel_filterbank
from advxai.svds.model import SVDS, predict_song
from advxai.svds.train import train_detector

pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
ROUND_OFF = 1e-4  # float32 kernels of different devices, relative to the largest magnitude


@pytest.fixture
def no_tf32():
    """Full float32 on the GPU: cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def close(cuda_values, cpu_values, relative: float = ROUND_OFF) -> None:
    cuda_values = cuda_values.cpu().numpy() if isinstance(cuda_values, torch.Tensor) else np.asarray(cuda_values)
    cpu_values = cpu_values.cpu().numpy() if isinstance(cpu_values, torch.Tensor) else np.asarray(cpu_values)
    scale = max(float(np.nanmax(np.abs(cpu_values))), 1e-12) if cpu_values.size else 1.0
    np.testing.assert_allclose(cuda_values, cpu_values, rtol=0, atol=relative * scale)


def tiny_images(n: int = 3, side: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------ unit level
def test_jobs_run_exact_float32_with_deterministic_kernels():
    from advxai.runtime import use_device

    assert use_device("cuda").type == "cuda"
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    model = load_model("resnet18", weights=None, device="cuda").module
    x = tiny_images(4, 64).to(CUDA).requires_grad_(True)
    gradients = [torch.autograd.grad(model(x).max(dim=1).values.sum(), x)[0] for _ in range(2)]
    assert torch.equal(*gradients)  # with cuDNN's default kernels these differed (benchmarks/cuda_determinism.py)


FAST_AGREEMENT = {  # most logits difference, most gradient error norm, least mean Spearman; bf16 on the CPU: 7.9e-3, 0.21, 0.990
    "tf32": (1e-2, 0.1, 0.95),
    "bf16": (3e-2, 0.4, 0.9),
}


def fast_agreement(arithmetic: str, device: torch.device) -> tuple[float, float, float]:
    """Exact against ``arithmetic`` on ``device`` (each under its flags): the logits' largest difference
    relative to their largest magnitude, the input gradients' relative error norm, and the mean
    Spearman correlation of the segment scores of Saliency, IG, GBP and LIME over the items."""
    from scipy.stats import spearmanr

    from advxai.runtime import CUDA_ARITHMETIC, cuda_arithmetic

    x, targets, ids = tiny_images(4, 64), torch.tensor([3, 9, 27, 81]), ["a", "b", "c", "d"]
    masks = torch.from_numpy(rectangles(64, 64, 4)).long().expand(4, 64, 64)
    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=64, noise_samples=2, ig_steps=4), seed=0, batch_size=8)
    names = ["sal", "ig", "gbp", "lime"]
    results = {}
    for mode in ("exact", arithmetic):
        with cuda_arithmetic(mode):
            if device.type == "cuda":
                assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.deterministic,
                        torch.backends.cudnn.benchmark) == CUDA_ARITHMETIC[mode]
            model = load_model("resnet18", weights=None, device=str(device), arithmetic=mode).module
            inputs = x.to(device).clone().requires_grad_(True)
            logits = model(inputs)
            assert logits.dtype == torch.float32 and logits.device.type == device.type
            (gradients,) = torch.autograd.grad(logits.gather(1, targets.to(device)[:, None]).sum(), inputs)
            scores = explain_all(model, x.to(device), targets.to(device), ids, {"rect": masks.to(device)}, {"rect": np.full(4, 16)}, names,
                                 settings)
            results[mode] = logits.detach().cpu(), gradients.cpu(), scores
    (exact_logits, exact_gradients, exact_scores), (logits, gradients, scores) = results["exact"], results[arithmetic]
    correlations = [spearmanr(a, b).statistic for name in names for aggregation, values in exact_scores[name]["rect"].items()
                    for a, b in zip(values, scores[name]["rect"][aggregation])]
    return (float((logits - exact_logits).abs().max() / exact_logits.abs().max()),
            float((gradients - exact_gradients).norm() / exact_gradients.norm()), float(np.mean(correlations)))


@pytest.mark.parametrize("arithmetic", ["tf32", "bf16"])
def test_fast_arithmetic_on_cuda_agrees_with_exact(arithmetic):
    """image.arithmetic tf32 / bf16 on the GPU (TF32, autotuned kernels, channels_last, bf16 autocast)
    against exact float32 on the same GPU: close logits and gradients, nearly the same segment rankings."""
    logits, gradients, correlation = fast_agreement(arithmetic, CUDA)
    print(f"{arithmetic} on CUDA: logits {logits:.2e}, gradient error norm {gradients:.3f}, mean Spearman {correlation:.4f}")
    most_logits, most_gradients, least_correlation = FAST_AGREEMENT[arithmetic]
    assert 0 < logits <= most_logits  # 0 would mean the fast arithmetic never ran
    assert gradients <= most_gradients and correlation >= least_correlation


def test_model_logits_match_the_cpu(no_tf32):
    bundle_cpu = load_model("resnet18", weights=None)
    bundle_cuda = load_model("resnet18", weights=None, device=str(CUDA))
    x = tiny_images(4, 64)
    on_cuda = predict(bundle_cuda.module, x, batch_size=2)  # inputs stay on the CPU, chunks move
    assert on_cuda.device.type == CUDA.type
    close(on_cuda, predict(bundle_cpu.module, x, batch_size=2))


def test_pgd_on_cuda_keeps_targets_bounds_and_first_step(no_tf32):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 10)).eval()
    x, targets = tiny_images().clamp(-1.9, 1.9), np.array([1, 5, 7])
    lower, upper = torch.full((3, 1, 1), -2.0), torch.full((3, 1, 1), 2.0)
    one_step_cpu = targeted_pgd(model, x, targets, 0.3, 0.05, 1, lower=lower, upper=upper)
    one_step_cuda = targeted_pgd(model.to(CUDA), x.to(CUDA), targets, 0.3, 0.05, 1, lower=lower, upper=upper)
    assert one_step_cuda.adversaries.device.type == CUDA.type
    same = (one_step_cuda.adversaries.cpu() == one_step_cpu.adversaries).float().mean().item()
    assert same >= 0.99, f"only {same:.4f} of the first step's elements agree"  # sign(grad) differs only near zero
    full = targeted_pgd(model, x.to(CUDA), torch.tensor(targets), 0.5, 0.05, 40, lower=lower, upper=upper)
    assert isinstance(full.success, np.ndarray) and full.success.all()
    np.testing.assert_array_equal(full.final_predictions, targets)
    moved = (full.adversaries.cpu() - x).abs().max().item()
    assert moved <= 0.5 + 1e-6 and full.adversaries.min() >= -2 and full.adversaries.max() <= 2


def test_explanation_engine_matches_the_cpu(no_tf32):
    bundle_cpu = load_model("resnet18", weights=None)
    bundle_cuda = load_model("resnet18", weights=None, device=str(CUDA))
    x, targets, ids = tiny_images(2, 64), torch.tensor([3, 9]), ["a", "b"]
    masks = torch.from_numpy(rectangles(64, 64, 4)).long().expand(2, 64, 64)
    counts = {"rect": np.array([16, 16])}
    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=32, noise_samples=2, ig_steps=4), seed=0, batch_size=8)
    names = ["sal", "ig", "gbp", "sal-sg", "sal-vg", "lime"]
    maps_cpu, maps_cuda = {}, {}
    cpu = explain_all(bundle_cpu.module, x, targets, ids, {"rect": masks}, counts, names, settings, pixel_maps=maps_cpu)
    cuda = explain_all(bundle_cuda.module, x.to(CUDA), targets.to(CUDA), ids, {"rect": masks.to(CUDA)}, counts, names, settings,
                       pixel_maps=maps_cuda)
    for name in names:
        for aggregation, values in cpu[name]["rect"].items():
            assert isinstance(cuda[name]["rect"][aggregation], np.ndarray)
            close(cuda[name]["rect"][aggregation], values, relative=1e-3 if name == "lime" else ROUND_OFF)
    assert maps_cuda.keys() == maps_cpu.keys()


class CentreBand(nn.Module):
    """SVDS-shaped stand-in: logit of a window = 4 · (its centre frame's band-10 log-mel − log 0.03)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.scale * (logmel[:, 57 : logmel.shape[1] - 57, 10] - float(np.log(0.03)))


def test_cw_attack_on_cuda_flips_the_same_frames():
    values = np.where(np.arange(30) < 15, 0.01, 0.05)
    spec = np.repeat(values[:, None], 513, axis=1).astype(np.float32)
    bank = mel_filterbank()
    cpu = spectrogram_attack(CentreBand().eval(), spec, bank, threshold=0.5, max_iter=200)
    cuda = spectrogram_attack(CentreBand().to(CUDA).eval(), spec, bank, threshold=0.5, max_iter=200)
    assert isinstance(cuda.delta, np.ndarray) and np.abs(cuda.delta).max() <= 0.1 + 1e-6
    np.testing.assert_array_equal(cuda.clean_pred, cpu.clean_pred)
    np.testing.assert_array_equal(cuda.flipped, cpu.flipped)
    assert cuda.flipped.all() and cuda.iterations == cpu.iterations


def test_svds_on_cuda_resumes_exactly_and_predicts_like_the_cpu(tmp_path, no_tf32):
    rng = np.random.default_rng(0)
    songs = [(rng.random((200, 513)).astype(np.float32), rng.random(200) < 0.5) for _ in range(2)]
    settings = dict(seed=3, epochs=2, batches_per_epoch=3, batch_size=4, device=str(CUDA))
    uninterrupted, history = train_detector(songs, **settings)
    assert next(uninterrupted.parameters()).device.type == CUDA.type
    train_detector(songs, **{**settings, "epochs": 1}, checkpoint=BatchCheckpoint(tmp_path / "model.h5", params=settings))
    resumed, resumed_history = train_detector(songs, **settings, checkpoint=BatchCheckpoint(tmp_path / "model.h5", params=settings))
    for (key, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key
    np.testing.assert_array_equal(history["batch_loss"], resumed_history["batch_loss"])
    detector = SVDS(generator=torch.Generator().manual_seed(1)).eval()
    song = rng.random((300, 513)).astype(np.float32)
    on_cpu = predict_song(detector, song, mel_filterbank())
    close(predict_song(detector.to(CUDA), song, mel_filterbank()), on_cpu)


# ------------------------------------------------------------------------------ the test preset
def snakemake(workdir: Path, device: str, *args: str, env: dict | None = None) -> None:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "4",
               "--configfile", str(ROOT / "config.yaml"), str(ROOT / "presets" / "test.yaml"), "--config", f"device={device}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=env)
    if result.returncode != 0:
        raise AssertionError(f"snakemake on {device} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def cpu_run(shared_runs, strict_host_env) -> Path:
    return shared_runs.get("test-preset-strict-cpu", lambda workdir: snakemake(workdir, "cpu", env=strict_host_env))


TABLES = ["image_accuracy", "image_labelflip", "image_localised", "image_slic_segments", "audio_svds", "audio_labelflip", "audio_localised"]
KEYS = {
    "image_labelflip": ["model", "segmentation", "explainer", "aggregation", "k", "fraction"],
    "image_localised": ["model", "segmentation", "explainer", "k", "recovered"],
    "audio_labelflip": ["seed", "direction", "explainer", "k"],
    "audio_localised": ["seed", "direction", "explainer", "k", "recovered"],
}


def tables(workdir: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(workdir / "results" / "tables" / f"{name}.csv") for name in TABLES}


@pytest.mark.workflow
def test_test_preset_end_to_end_on_cuda(cpu_run, tmp_path):
    """Every stage of both domains on CUDA; tables of the same shape and keys as the CPU's."""
    snakemake(tmp_path, "cuda")
    cpu, cuda = tables(cpu_run), tables(tmp_path)
    for name in TABLES:
        assert list(cuda[name].columns) == list(cpu[name].columns), name
        assert len(cuda[name]) == len(cpu[name]), name
        for column in KEYS.get(name, []):
            pd.testing.assert_series_equal(cuda[name][column], cpu[name][column], check_names=False)
    assert cuda["image_accuracy"].n_images.tolist() == cpu["image_accuracy"].n_images.tolist()
    everything = cuda["image_labelflip"][(cuda["image_labelflip"].segmentation == "rect") & (cuda["image_labelflip"].k == 16)]
    assert (everything.label_flip_rate == 1.0).all()  # the whole adversary flips every image, on any device
    for name in ("image_labelflip", "audio_labelflip"):
        differ = (cuda[name].label_flip_rate - cpu[name].label_flip_rate).abs()
        print(f"{name}: {int((differ > 0).sum())} of {len(differ)} rates differ from the CPU's, by at most {differ.max():.3f}")


@pytest.mark.workflow
def test_explanation_stages_on_cuda_match_the_cpu_given_its_adversaries(cpu_run, tmp_path):
    """From the CPU run's adversaries and detectors, the explanation and metric stages rerun on CUDA
    (TF32 off). Rankings agree but for near-ties, so label-flip rates are identical except for at
    most 5 % of the rows, and there by at most one item (1/n); localised counts likewise."""
    workdir = tmp_path / "run"
    shutil.copytree(cpu_run, workdir)
    rules = ["image_explain", "image_labelflip", "image_localised", "audio_explain", "audio_labelflip", "audio_localised"]
    snakemake(workdir, "cuda", "--rerun-triggers", "mtime", "--forcerun", *rules, env={**os.environ, "NVIDIA_TF32_OVERRIDE": "0"})
    cpu, cuda = tables(cpu_run), tables(workdir)
    for name in ("image_accuracy", "audio_svds", "image_slic_segments"):
        pd.testing.assert_frame_equal(cuda[name], cpu[name])  # upstream of the rerun stages: untouched
    for name, column in (("image_labelflip", "label_flip_rate"), ("audio_labelflip", "label_flip_rate"),
                         ("image_localised", "count"), ("audio_localised", "count")):
        assert cuda[name][KEYS[name]].equals(cpu[name][KEYS[name]]), name
        undefined = cpu[name][column].isna()  # a rate over no flipped item (n = 0) is NaN on both devices
        pd.testing.assert_series_equal(cuda[name][column].isna(), undefined, check_names=False)
        differ = (cuda[name][column] - cpu[name][column]).abs()[~undefined]
        if column == "label_flip_rate":
            one_item = 1.0 / cpu[name].n[~undefined]
            assert (differ <= one_item + 1e-9).all(), name
        else:
            assert (differ <= 1).all(), name
        assert (differ > 0).mean() <= 0.05, f"{name}: {int((differ > 0).sum())} of {len(differ)} rows differ"
