"""The explanation benchmark's scaling: the passes it assumes for each side are the passes each side makes.

``benchmarks/explain`` times both sides at two small settings and reads each part's time at the
paper's rows on the line through both. That holds only if the reference's captum calls make the
passes ``reference_passes`` says, of the same shape at the CPU defaults as at the paper's settings
(where they differ it says so), and if the engine computes the padded rows ``engine_rows`` says.
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
from explain import agreement, engine, reference, stages, timing  # noqa: E402
from explain import settings as bench  # noqa: E402

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
        timed = timing.timed

        def recording(work, device):
            self.calls.append([])
            return timed(work, device)

        for module in (engine, reference, timing):
            monkeypatch.setattr(module, "timed", recording)


def inputs(n_images: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[str], dict, dict]:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.randn(n_images, 3, SIDE, SIDE)
    block = torch.arange(SIDE) // (SIDE // 4)
    rect = (block[:, None] * 4 + block[None, :]).expand(n_images, SIDE, SIDE).clone()
    masks = {"rect": rect, "slic": rect // 2}  # 16 and 8 segments
    counts = {"rect": np.full(n_images, 16), "slic": np.full(n_images, 8)}
    return model, images, torch.tensor([3, 7][:n_images]), [f"img{i}" for i in range(n_images)], masks, counts


@pytest.mark.parametrize(("run", "n_images"), [
    (bench.PAPER, 1),
    ({key: bench.CPU_DEFAULTS[key] for key in bench.PAPER}, 1),
    ({key: bench.CPU_DEFAULTS[key] for key in bench.PAPER}, 2),  # the CPU default's reference: 2 images at once
    ({"noise": 3, "ig_steps": 4, "lime_samples": 32}, 1),  # NoiseTunnel(IG): 3 points of 3 copies per pass
    ({"noise": 3, "ig_steps": 4, "lime_samples": 32}, 2),  # 1 point of 2 × 3 copies per pass
])
def test_reference_makes_the_passes_the_scaling_assumes(run, n_images, monkeypatch):
    model, images, targets, ids, masks, counts = inputs(n_images)
    recorder = PassRecorder(model, monkeypatch)
    reference.reference_parts(model, images, targets, ids, masks, counts, run, 0, torch.device("cpu"))

    expected: Counter[int] = Counter()
    calls_per_part = len(bench.SEGMENTATIONS)
    for part in bench.reference_passes(run, n_images).values():
        expected[part.rows_per_pass] += part.rows_per_call // part.rows_per_pass * part.calls * calls_per_part
        if part.rows_per_call % part.rows_per_pass:
            expected[part.rows_per_call % part.rows_per_pass] += part.calls * calls_per_part
    assert Counter(rows for call in recorder.calls for rows in call) == expected


def test_reference_passes_at_the_cpu_defaults_have_the_papers_shapes_but_plain_ig():
    paper = bench.reference_passes(bench.PAPER)
    cpu = bench.reference_passes({key: bench.CPU_DEFAULTS[key] for key in bench.PAPER})
    assert {part for part in paper if paper[part].rows_per_pass != cpu[part].rows_per_pass} == {"ig"}
    # plain IG is 100 of the reference's 7 904 gradient rows per image
    gradient_rows = sum(calls.rows for part, calls in paper.items() if part != "lime")
    assert (paper["ig"].rows, gradient_rows * len(bench.SEGMENTATIONS)) == (50, 7904)


@pytest.mark.parametrize(("gradient_batch", "lime_batch"), [(1, 3), (3, 8), (8, 1)])
def test_engine_computes_the_padded_rows_the_scaling_assumes(gradient_batch, lime_batch, monkeypatch):
    model, images, targets, ids, masks, counts = inputs(2)
    run = {"noise": 2, "ig_steps": 3, "lime_samples": 5}
    recorder = PassRecorder(model, monkeypatch)
    families = (*bench.FAMILIES, bench.LIME_FAMILY)
    batch_sizes = {family: lime_batch if family == bench.LIME_FAMILY else gradient_batch for family in families}
    engine.engine_parts(model, images, targets, ids, masks, counts, run, 0, batch_sizes, torch.device("cpu"))

    assert len(recorder.calls) == len(families)
    for family, call in zip(families, recorder.calls):
        size = lime_batch if family == bench.LIME_FAMILY else gradient_batch
        assert set(call) == {size}, family  # one batch shape: the last batch is padded
        assert sum(call) == sum(bench.engine_rows(family, len(images), run, size)), family


@pytest.mark.parametrize(("setting", "device", "gradient_batch", "lime_batch"),
                         [(2, "cpu", 2, 16), (32, "cpu", 32, 16), (2, "cuda", 16, 16), (64, "cuda", 64, 64), ("auto", "cpu", 4, 8),
                          ("auto", "cuda", 4, 8)])
def test_the_benchmark_runs_each_family_at_the_rows_its_job_takes(setting, device, gradient_batch, lime_batch):
    """A job's measured sizes here: forward+backward 4, forward 8 (under ``auto``), or the number given."""
    measured = (4, 8) if setting == "auto" else (setting, setting)
    sizes = bench.job_family_batch_sizes(setting, *measured, torch.device(device))
    assert sizes == {**{family: gradient_batch for family in bench.FAMILIES}, bench.LIME_FAMILY: lime_batch}


def test_every_reference_part_belongs_to_one_engine_family():
    """The per-family speedups compare like with like: each captum part is counted once, with its family."""
    parts = [part for members in bench.FAMILY_PARTS.values() for part in members]
    assert sorted(parts) == sorted(bench.reference_passes(bench.PAPER))
    assert set(bench.FAMILY_PARTS) == {*bench.FAMILIES, bench.LIME_FAMILY}
    speedups = bench.family_speedups({"sal": 1.0, "sal-nt": 5.0, "ig": 2.0, "ig-nt": 10.0, "gbp": 1.0, "gbp-nt": 1.0, "lime": 3.0},
                                             {"saliency": 2.0, "ig": 4.0, "gbp": 4.0, "lime": 6.0})
    assert speedups == {"saliency": 3.0, "ig": 3.0, "gbp": 0.5, "lime": 0.5}


def test_lime_at_captums_shape_makes_the_same_passes_on_both_sides(monkeypatch):
    """The alternating LIME comparison times what each side does around identical forward passes."""
    model, images, targets, ids, masks, counts = inputs(2)
    recorder = PassRecorder(model, monkeypatch)
    stages.lime_at_captum_shape(model, images, targets, ids, masks, counts, 40, 0, torch.device("cpu"), rounds=1)
    captum_calls, engine_call = recorder.calls[:-1], recorder.calls[-1]
    assert len(captum_calls) == len(bench.SEGMENTATIONS) * len(images)  # one Lime call per image and segmentation
    captum_rows = Counter(rows for call in captum_calls for rows in call)
    assert captum_rows == Counter({16: 2 * len(captum_calls), 8: len(captum_calls)})  # 40 samples: 16 + 16 + 8
    # the engine's one stream of 2 × 40 samples per segmentation, in full passes of 16
    assert Counter(engine_call) == Counter({16: len(bench.SEGMENTATIONS) * 5})


# ------------------------------------------------------------------------------------------------ two points
def test_two_points_charge_a_fixed_cost_once():
    """t = 3 s + 0.5 s per row, timed at 2 and 4 rows: 28 s at 50 rows (proportional scaling: 100 s from 2 rows)."""
    assert bench.extrapolate((2, 4.0), (4, 5.0), 50) == (pytest.approx(28.0), True)
    assert bench.extrapolate((4, 5.0), (2, 4.0), 50) == (pytest.approx(28.0), True)  # the order of the points does not matter


def test_two_points_that_do_not_rise_fall_back_to_proportional_and_say_so():
    """The second point no slower (noise above the growth): the faster seconds per row, scaled."""
    assert bench.extrapolate((2, 4.0), (4, 3.0), 40) == (pytest.approx(30.0), False)
    with pytest.raises(ValueError, match="two row counts"):
        bench.extrapolate((2, 4.0), (2, 3.0), 40)


def test_the_second_point_doubles_only_the_settings_below_the_papers():
    assert bench.second_point({"noise": 25, "ig_steps": 2, "lime_samples": 32}) == {"noise": 25, "ig_steps": 4, "lime_samples": 64}


def test_extrapolated_parts_read_each_line_at_the_papers_rows():
    """IG family on 2 images, J = 25, batch 26: 2 points = 104 rows (4 passes), 4 = 208 (8); the paper's 50 = 2 600 (100).
    Saliency's rows do not change with IG's points: best of both, unscaled. LIME at 16 rows: 64, 128 -> 1 024 rows each."""
    low, high = {"noise": 25, "ig_steps": 2, "lime_samples": 32}, {"noise": 25, "ig_steps": 4, "lime_samples": 64}
    sizes = {"saliency": 26, "ig": 26, "lime": 16}
    rows = lambda family, run: sum(bench.engine_rows(family, 2, run, sizes[family]))
    assert [rows("ig", run) for run in (low, high, bench.PAPER)] == [104, 208, 2600]
    seconds, flat = bench.extrapolate_parts({"saliency": 2.0, "ig": 5.0, "lime": 3.0}, {"saliency": 1.5, "ig": 9.0, "lime": 6.0},
                                            rows, (low, high))
    # IG: 1 s + 4 s per 104 rows -> 1 + 4 * 25 = 101 s; LIME: no fixed cost (3 s per 128 rows) -> 3 * 16 = 48 s
    assert seconds == {"saliency": 1.5, "ig": pytest.approx(101.0), "lime": pytest.approx(48.0)}
    assert flat == []
    with pytest.raises(ValueError, match="saliency"):  # rows the same at both points but not at the paper's: no line
        bench.extrapolate_parts({"saliency": 2.0}, {}, rows, ({**low, "noise": 2}, {**high, "noise": 2}))


# ------------------------------------------------------------------------------------------------ alternation
class FakeSide:
    """A compared side whose calls take the given seconds in turn, recording the order of all calls."""

    def __init__(self, name: str, seconds: list[float], order: list[str]) -> None:
        self.name, self.seconds, self.order = name, iter(seconds), order

    def __call__(self) -> tuple[dict[str, float], str]:
        self.order.append(self.name)
        return {"part": next(self.seconds)}, f"{self.name} result {len(self.order)}"


def test_rounds_alternate_the_sides_and_keep_the_fastest_of_each():
    """Three rounds: engine, reference; then reference, engine; then engine, reference. The machine
    slows down in round 2 (both sides' times rise): the best of each side is its round-1 time."""
    order: list[str] = []
    steps = {"engine": FakeSide("engine", [2.0, 5.0, 2.5], order), "reference": FakeSide("reference", [9.0, 20.0, 8.0], order)}
    rounds = timing.alternate_rounds(steps, 3)
    assert order == ["engine", "reference", "reference", "engine", "engine", "reference"]
    assert rounds.best == {"engine": {"part": 2.0}, "reference": {"part": 8.0}}
    assert rounds.per_round["engine"] == [{"part": 2.0}, {"part": 5.0}, {"part": 2.5}]
    assert rounds.results == {"engine": "engine result 5", "reference": "reference result 6"}
    assert rounds.spread("engine") == pytest.approx(1.5)  # 5 s against the best 2 s


def test_pgd_and_lime_shape_alternate_their_sides(monkeypatch):
    """PGD's loop and batched attack, and LIME's two sides, go through the alternating rounds."""
    calls = []
    real = timing.alternate_rounds

    def recording(steps, rounds):
        calls.append((list(steps), rounds))
        return real(steps, rounds)

    monkeypatch.setattr(stages, "alternate_rounds", recording)
    model, images, targets, ids, masks, counts = inputs(2)
    stages.pgd_times(model, images, targets, 1, 2, 1, torch.device("cpu"), 2)
    stages.lime_at_captum_shape(model, images, targets, ids, masks, counts, 16, 0, torch.device("cpu"), 2)
    assert calls == [(["loop", "batched"], 2), (["captum", "engine"], 2)]


# ------------------------------------------------------------------------------------------------ agreement
def test_relative_differences_against_the_scale_and_per_entry():
    """Entries 10, 1, 0.001 against 10.01, 1.01, 0.002: by the array's largest |a| (10) the worst is
    0.01 / 10 = 1e-3; per entry 0.01 / 1 = 1e-2, and the last entry's 0.001 is divided by the floor
    1e-3 × 10 = 0.01 (not by 0.001), giving 0.1. An absent segment on both sides is left out."""
    from advxai.segments import ABSENT

    expected = np.array([[10.0, 1.0, 0.001, ABSENT]])
    ours = np.array([[10.01, 1.01, 0.002, ABSENT]])
    by_scale, by_entry = agreement.relative_differences(expected, ours)
    assert by_scale == pytest.approx(1e-3)
    assert by_entry == pytest.approx(0.1)


def test_topk_agreement_counts_rankings_whose_top_segments_differ():
    """Two images, k = 3: the first ranks the same top 3 in another order (agrees), the second swaps
    its 3rd and 4th segments (differs)."""
    reference_scores = {"sal": {"rect": {"mean": np.array([[5.0, 4.0, 3.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.9, 0.0]])}}}
    engine_scores = {"sal": {"rect": {"mean": np.array([[4.0, 5.0, 3.0, 1.0, 0.0, 7.0], [5.0, 4.0, 2.9, 3.0, 0.0, 7.0],
                                                        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]])}}}
    found = agreement.agreement(reference_scores, engine_scores, 3)  # the engine's extra image and column are not compared
    assert (found.rankings, found.topk_differs) == (2, ["sal/rect/mean image 1"])
    assert found.topk_agreement == 0.5
    assert found.max_rel_diff == pytest.approx(1 / 5)
    assert found.max_rel_where == "sal/rect/mean"


def test_agreement_leaves_out_the_skipped_explainers():
    same = {"sal": {"rect": {"mean": np.array([[1.0, 2.0, 3.0]])}}}
    scores = {**same, "gbp": {"rect": {"mean": np.array([[3.0, 2.0, 1.0]])}}}
    found = agreement.agreement(scores, {**same, "gbp": {"rect": {"mean": np.array([[1.0, 2.0, 3.0]])}}}, 1, skip=("gbp",))
    assert (found.max_rel_diff, found.rankings, found.topk_differs) == (0.0, 1, [])


# ------------------------------------------------------------------------------------------------ pass baseline
def test_pass_efficiency_charges_the_engines_padded_rows_at_the_baseline():
    """Saliency on 2 images, J = 2, batch 4: 6 rows padded to 8 forward+backward rows at 0.5 s -> 4 s
    of model time; LIME 2 segmentations × 2 × 16 samples at batch 16: 64 forward rows at 0.1 s -> 6.4 s."""
    run = {"noise": 2, "ig_steps": 2, "lime_samples": 16}
    total, per_family = engine.pass_efficiencies({"saliency": 8.0, "lime": 6.4}, 2, run, {"saliency": 4, "lime": 16},
                                                 {"forward": 0.1, "backward": 0.5})
    assert per_family == {"saliency": pytest.approx(0.5), "lime": pytest.approx(1.0)}
    assert total == pytest.approx((4 + 6.4) / (8 + 6.4))


def test_ig_through_a_stem_is_charged_at_the_stem_pass_and_once_per_copy():
    """IG, 1 image, J = 3, 5 points, batch 4: 20 rows at 0.2 s after the stem, 4 copies at 0.05 s."""
    run = {"noise": 3, "ig_steps": 5, "lime_samples": 16}
    passes = {"forward": 9.0, "backward": 9.0, "after_stem": 0.2, "stem_per_copy": 0.05}
    assert engine.baseline_seconds("ig", 1, run, 4, passes) == pytest.approx(20 * 0.2 + 4 * 0.05)
    assert engine.baseline_seconds("saliency", 1, run, 4, passes) == pytest.approx(4 * 9.0)


def test_the_baseline_step_times_a_stem_pass_only_where_ig_uses_one():
    from advxai.explainers.stem import MIN_KERNEL_VOLUME

    model, images, *_ = inputs(1)
    sizes = {**{family: 2 for family in bench.FAMILIES}, bench.LIME_FAMILY: 3}
    plain, _ = engine.pass_baseline_step(model, images, sizes, torch.device("cpu"), calls=1)()
    assert set(plain) == {"forward", "backward"}
    kernel = int(np.ceil(np.sqrt(MIN_KERNEL_VOLUME / 3)))
    stemmed = nn.Sequential(nn.Conv2d(3, 4, kernel, padding=kernel // 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 1000)).eval()
    with_stem, _ = engine.pass_baseline_step(stemmed, images, sizes, torch.device("cpu"), calls=1)()
    assert set(with_stem) == {"forward", "backward", "after_stem", "stem_per_copy"}
