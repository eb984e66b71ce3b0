"""The explanation benchmark's scaling: the passes it assumes for each side are the passes each side makes.

``benchmarks/explain_bench.py`` times both sides at small settings and scales each part by its
rows. That holds only if the reference's captum calls make the passes ``reference_passes`` says,
of the same shape at the CPU defaults as at the paper's settings (where they differ it says so),
and if the engine computes the padded rows ``engine_rows`` says.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

sys.path.insert(0, str(ROOT / "benchmarks"))
import explain_bench  # noqa: E402

SIDE = 16


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(16, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PassRecorder:
    """Rows of every forward pass of a model, per call of the benchmark's timer."""

    def __init__(self, model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[int]] = []
        model.register_forward_pre_hook(lambda _, args: self.calls[-1].append(len(args[0])) if self.calls else None)
        timed = explain_bench.timed

        def recording(work, device):
            self.calls.append([])
            return timed(work, device)

        monkeypatch.setattr(explain_bench, "timed", recording)


def inputs(n_images: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[str], dict, dict]:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.randn(n_images, 3, SIDE, SIDE)
    block = torch.arange(SIDE) // (SIDE // 4)
    rect = (block[:, None] * 4 + block[None, :]).expand(n_images, SIDE, SIDE).clone()
    masks = {"rect": rect, "slic": rect // 2}  # 16 and 8 segments
    counts = {"rect": np.full(n_images, 16), "slic": np.full(n_images, 8)}
    return model, images, torch.tensor([3, 7][:n_images]), [f"img{i}" for i in range(n_images)], masks, counts


@pytest.mark.parametrize("settings", [
    explain_bench.PAPER,
    {key: explain_bench.CPU_DEFAULTS[key] for key in explain_bench.PAPER},
    {"noise": 3, "ig_steps": 4, "lime_samples": 32},  # NoiseTunnel(IG): 3 points of 3 copies per pass
])
def test_reference_makes_the_passes_the_scaling_assumes(settings, monkeypatch):
    model, images, targets, ids, masks, counts = inputs(1)
    recorder = PassRecorder(model, monkeypatch)
    explain_bench.reference_parts(model, images, targets, ids, masks, counts, settings, 0, torch.device("cpu"))

    expected: Counter[int] = Counter()
    calls_per_part = len(explain_bench.SEGMENTATIONS)  # one image
    for part in explain_bench.reference_passes(settings).values():
        expected[part.rows_per_pass] += part.rows_per_call // part.rows_per_pass * part.calls * calls_per_part
        if part.rows_per_call % part.rows_per_pass:
            expected[part.rows_per_call % part.rows_per_pass] += part.calls * calls_per_part
    assert Counter(rows for call in recorder.calls for rows in call) == expected


def test_reference_passes_at_the_cpu_defaults_have_the_papers_shapes_but_plain_ig():
    paper = explain_bench.reference_passes(explain_bench.PAPER)
    cpu = explain_bench.reference_passes({key: explain_bench.CPU_DEFAULTS[key] for key in explain_bench.PAPER})
    assert {part for part in paper if paper[part].rows_per_pass != cpu[part].rows_per_pass} == {"ig"}
    # plain IG is 100 of the reference's 7 904 gradient rows per image
    gradient_rows = sum(calls.rows for part, calls in paper.items() if part != "lime")
    assert (paper["ig"].rows, gradient_rows * len(explain_bench.SEGMENTATIONS)) == (50, 7904)


@pytest.mark.parametrize(("gradient_batch", "lime_batch"), [(1, 3), (3, 8), (8, 1)])
def test_engine_computes_the_padded_rows_the_scaling_assumes(gradient_batch, lime_batch, monkeypatch):
    model, images, targets, ids, masks, counts = inputs(2)
    settings = {"noise": 2, "ig_steps": 3, "lime_samples": 5}
    recorder = PassRecorder(model, monkeypatch)
    families = (*explain_bench.FAMILIES, explain_bench.LIME_FAMILY)
    batch_sizes = {family: lime_batch if family == explain_bench.LIME_FAMILY else gradient_batch for family in families}
    explain_bench.engine_parts(model, images, targets, ids, masks, counts, settings, 0, batch_sizes, torch.device("cpu"))

    assert len(recorder.calls) == len(families)
    for family, call in zip(families, recorder.calls):
        size = lime_batch if family == explain_bench.LIME_FAMILY else gradient_batch
        assert set(call) == {size}, family  # one batch shape: the last batch is padded
        assert sum(call) == sum(explain_bench.engine_rows(family, len(images), settings, size)), family


@pytest.mark.parametrize(("setting", "device", "gradient_batch", "lime_batch"),
                         [(2, "cpu", 2, 16), (32, "cpu", 32, 16), (2, "cuda", 16, 16), (64, "cuda", 64, 64), ("auto", "cpu", 4, 8), ("auto", "cuda", 4, 8)])
def test_the_benchmark_runs_each_family_at_the_rows_its_job_takes(setting, device, gradient_batch, lime_batch):
    """A job's measured sizes here: forward+backward 4, forward 8 (under ``auto``), or the number given."""
    measured = (4, 8) if setting == "auto" else (setting, setting)
    sizes = explain_bench.job_family_batch_sizes(setting, *measured, torch.device(device))
    assert sizes == {**{family: gradient_batch for family in explain_bench.FAMILIES}, explain_bench.LIME_FAMILY: lime_batch}


def test_engine_seconds_scale_with_padded_rows():
    """Saliency on 2 images, J = 2 -> 25: 6 rows (one pass of 8) become 52 (7 passes of 8, 56 rows)."""
    run = {"noise": 2, "ig_steps": 2, "lime_samples": 32}
    scaled = explain_bench.paper_seconds({"saliency": 1.0, "lime": 2.0}, 2, run, {"saliency": 8, "lime": 16})
    assert scaled["saliency"] == pytest.approx(56 / 8)
    assert scaled["lime"] == pytest.approx(2.0 * 512 / 32)  # 2 images x 2 segmentations, full passes of 16 at both


def test_every_reference_part_belongs_to_one_engine_family():
    """The per-family speedups compare like with like: each captum part is counted once, with its family."""
    parts = [part for members in explain_bench.FAMILY_PARTS.values() for part in members]
    assert sorted(parts) == sorted(explain_bench.reference_passes(explain_bench.PAPER))
    assert set(explain_bench.FAMILY_PARTS) == {*explain_bench.FAMILIES, explain_bench.LIME_FAMILY}
    speedups = explain_bench.family_speedups({"sal": 1.0, "sal-nt": 5.0, "ig": 2.0, "ig-nt": 10.0, "gbp": 1.0, "gbp-nt": 1.0, "lime": 3.0},
                                             {"saliency": 2.0, "ig": 4.0, "gbp": 4.0, "lime": 6.0})
    assert speedups == {"saliency": 3.0, "ig": 3.0, "gbp": 0.5, "lime": 0.5}


def test_lime_at_captums_shape_makes_the_same_passes_on_both_sides(monkeypatch):
    """The alternating LIME comparison times what each side does around identical forward passes."""
    model, images, targets, ids, masks, counts = inputs(2)
    recorder = PassRecorder(model, monkeypatch)
    explain_bench.lime_at_captum_shape(model, images, targets, ids, masks, counts, 40, 0, torch.device("cpu"), repeats=1)
    captum_calls, engine_call = recorder.calls[:-1], recorder.calls[-1]
    assert len(captum_calls) == len(explain_bench.SEGMENTATIONS) * len(images)  # one Lime call per image and segmentation
    captum_rows = Counter(rows for call in captum_calls for rows in call)
    assert captum_rows == Counter({16: 2 * len(captum_calls), 8: len(captum_calls)})  # 40 samples: 16 + 16 + 8
    # the engine's one stream of 2 × 40 samples per segmentation, in full passes of 16
    assert Counter(engine_call) == Counter({16: len(explain_bench.SEGMENTATIONS) * 5})
