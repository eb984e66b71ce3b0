"""Gradient explainers, NoiseTunnel ensembles, aggregation and plug-ins against captum and known answers."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, IntegratedGradients, KernelShap, NoiseTunnel, Occlusion, Saliency
from messages import exactly
from torch import nn

from advxai.evaluation.baselines import segment_reduce
from advxai.explainers import (
    AGGREGATIONS,
    BUILTIN_EXPLAINERS,
    aggregate,
    draw_noise,
    explain_gradient_family,
    family_of,
    gradient_attributions,
    integration_points,
    lime_coefficients,
    make_extra_explainer,
    noise_ensemble,
    split_gradient_explainer,
    validate_explainers,
)
from advxai.explainers.aggregate import aggregate_segmentations, segment_bins
from advxai.explainers.engine import ExplainSettings, explain_all, lime_as_aggregations
from advxai.explainers.settings import AUDIO_LIME, ExplainerSettings
from advxai.segments import ABSENT

N_ITEMS, SIDE, N_CLASSES = 3, 16, 5
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


class TinyCNN(nn.Module):
    """Two conv layers with separate ``nn.ReLU`` modules (what captum's GBP guides)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.head = nn.Linear(24, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PlantedSegmentModel(nn.Module):
    """Class 1's logit is the ReLU'd sum of the pixels of one segment; class 0's logit is 0."""

    def __init__(self, planted: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("planted", planted.float())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = self.relu(x * self.planted).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(evidence), evidence], dim=1)


def rectangles(n_items: int, side: int = SIDE, grid: int = 4) -> torch.Tensor:
    """Row-major ``grid × grid`` rectangle ids (docs/method.md §6)."""
    block = torch.arange(side) // (side // grid)
    return (block[:, None] * grid + block[None, :]).expand(n_items, side, side).clone()


@pytest.fixture(scope="module")
def model() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(N_ITEMS, 3, SIDE, SIDE, generator=generator), torch.tensor([0, 3, 1])


def test_saliency_matches_captum(model, batch):
    inputs, targets = batch
    expected = Saliency(model).attribute(inputs, target=targets, abs=False)
    ours = gradient_attributions(model, inputs, targets, "sal", batch_size=2)
    torch.testing.assert_close(ours, expected, **TOLERANCE)


def test_integrated_gradients_matches_captum(model, batch):
    inputs, targets = batch
    expected = IntegratedGradients(model).attribute(
        inputs, baselines=0.0, target=targets, n_steps=50, method="gausslegendre"
    )
    ours = gradient_attributions(model, inputs, targets, "ig", ig_steps=50, batch_size=32)
    torch.testing.assert_close(ours, expected, **TOLERANCE)


def test_guided_backprop_matches_captum(model, batch):
    inputs, targets = batch
    expected = GuidedBackprop(model).attribute(inputs, target=targets)
    ours = gradient_attributions(model, inputs, targets, "gbp", batch_size=2)
    torch.testing.assert_close(ours, expected, **TOLERANCE)


@pytest.mark.parametrize(
    ("method", "captum_class", "extra"),
    [
        ("sal", Saliency, {"abs": False}),
        ("ig", IntegratedGradients, {"baselines": 0.0, "n_steps": 8}),
        ("gbp", GuidedBackprop, {}),
    ],
)
def test_noise_tunnel_matches_captum(model, batch, method, captum_class, extra):
    inputs, targets = batch
    n_noise = 4
    tunnel = NoiseTunnel(captum_class(model))
    expected = {}
    for ours_name, nt_type in (("sg", "smoothgrad"), ("sg2", "smoothgrad_sq"), ("vg", "vargrad")):
        torch.manual_seed(7)
        expected[ours_name] = tunnel.attribute(
            inputs, nt_type=nt_type, nt_samples=n_noise, stdevs=1.0, target=targets, **extra
        )
    # captum draws (N·J, ...) noise in repeat_interleave order (item-major) from the global RNG.
    torch.manual_seed(7)
    noise = torch.normal(0, torch.tensor(1.0).repeat((N_ITEMS * n_noise, *inputs.shape[1:])))
    noise = noise.view(N_ITEMS, n_noise, *inputs.shape[1:])
    ours = noise_ensemble(model, inputs, targets, method, noise, ig_steps=8, batch_size=16)
    for name in ("sg", "sg2", "vg"):
        torch.testing.assert_close(ours[name], expected[name], **TOLERANCE, msg=f"{method}-{name}")


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_noise_tunnel_at_a_standard_deviation_other_than_one_matches_captum(model, batch, monkeypatch, sigma):
    """The whole path, draw_noise at σ included: captum's NoiseTunnel with stdevs=σ given our unit
    draws (its torch.normal(0, σ) returns σ · unit) equals explain_gradient_family(noise_std=σ).
    At σ = 1 a σ-versus-σ² slip cannot show; here it does."""
    inputs, targets = batch
    ids, n_noise = ["a", "b", "c"], 3
    unit = draw_noise(ids, inputs.shape[1:], n_noise, 1.0, seed=4).reshape(N_ITEMS * n_noise, *inputs.shape[1:])
    real_normal = torch.normal

    def ours_scaled(mean, std, *args, **kwargs):
        if isinstance(std, torch.Tensor) and std.shape == unit.shape:
            return mean + std * unit  # captum asks for normal(0, σ) in its item-major order
        return real_normal(mean, std, *args, **kwargs)

    monkeypatch.setattr(torch, "normal", ours_scaled)
    expected = {name: NoiseTunnel(Saliency(model)).attribute(inputs, nt_type=nt_type, nt_samples=n_noise, stdevs=sigma, target=targets,
                                                             abs=False)
                for name, nt_type in (("sal-sg", "smoothgrad"), ("sal-sg2", "smoothgrad_sq"), ("sal-vg", "vargrad"))}
    monkeypatch.setattr(torch, "normal", real_normal)
    masks = {"rect": rectangles(N_ITEMS)}
    result = explain_gradient_family(model, inputs, targets, ids, "sal", explainers=list(expected), masks=masks, n_segments={"rect": 16},
                                     n_noise=n_noise, noise_std=sigma, seed=4, batch_size=8, keep_attributions=True)
    for name, attributions in expected.items():
        np.testing.assert_allclose(result.attributions[name], attributions.numpy().astype(np.float16), rtol=2e-3, atol=1e-5, err_msg=name)


def test_family_shares_gradient_passes(model, batch):
    inputs, targets = batch
    rows_seen: list[int] = []
    handle = model.register_forward_hook(lambda module, args, output: rows_seen.append(args[0].shape[0]))
    masks = {"rect": rectangles(N_ITEMS)}
    try:
        explain_gradient_family(
            model, inputs, targets, ["a", "b", "c"], "sal", explainers=["sal", "sal-sg", "sal-sg2", "sal-vg"],
            masks=masks, n_segments={"rect": 16}, n_noise=4, seed=0, batch_size=5,
        )
        # 3 plain rows and 3 × 4 noisy rows in ONE stream at the batch shape of 5: ⌈15/5⌉ full passes
        # (separate streams would take ⌈3/5⌉ + ⌈12/5⌉ = 4, two of them padded)
        assert rows_seen == [5] * 3
        rows_seen.clear()
        explain_gradient_family(
            model, inputs, targets, ["a", "b", "c"], "ig", explainers=["ig"],
            masks=masks, n_segments={"rect": 16}, ig_steps=6, seed=0, batch_size=4,
        )
        assert rows_seen == [4] * 5  # 3 × 6 IG points in ⌈18/4⌉ passes; no noise passes when no ensemble is requested
    finally:
        handle.remove()


def test_family_scores_equal_aggregated_maps(model, batch):
    inputs, targets = batch
    masks = {"rect": rectangles(N_ITEMS)}
    result = explain_gradient_family(
        model, inputs, targets, [0, 1, 2], "gbp", explainers=["gbp", "gbp-vg"], masks=masks,
        n_segments={"rect": 16}, n_noise=3, seed=5, batch_size=8, keep_attributions=True,
    )
    assert list(result.scores) == ["gbp", "gbp-vg"]
    plain = gradient_attributions(model, inputs, targets, "gbp")
    expected = aggregate(plain, masks["rect"], 16)
    for name in AGGREGATIONS:
        np.testing.assert_allclose(result.scores["gbp"]["rect"][name], expected[name], rtol=1e-6)
    assert result.attributions["gbp-vg"].dtype == np.float16
    assert (result.attributions["gbp-vg"] >= 0).all()  # a variance


def test_family_is_independent_of_batching(model):
    inputs = torch.randn(4, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([1, 2, 3, 4])
    ids = ["w", "x", "y", "z"]
    masks = rectangles(4)
    settings = dict(
        explainers=["ig", "ig-sg", "ig-sg2", "ig-vg"], n_noise=3, ig_steps=4, seed=11,
        n_segments={"rect": 16},
    )

    def run(rows: slice, batch_size: int) -> dict:
        scores = explain_gradient_family(
            model, inputs[rows], targets[rows], ids[rows], "ig", masks={"rect": masks[rows]},
            batch_size=batch_size, **settings,
        ).scores
        return {name: scores[name]["rect"] for name in scores}

    whole = run(slice(0, 4), 64)
    halves = [run(slice(0, 2), 64), run(slice(2, 4), 64)]
    singles = run(slice(0, 4), 1)
    for name in whole:
        for aggregation in AGGREGATIONS:
            split = np.concatenate([half[name][aggregation] for half in halves])
            np.testing.assert_allclose(split, whole[name][aggregation], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(singles[name][aggregation], whole[name][aggregation], rtol=1e-6, atol=1e-9)


def test_planted_segment_ranks_first():
    masks = rectangles(2)
    planted = 5
    model = PlantedSegmentModel(masks[0] == planted).eval()
    inputs = 0.5 + 0.5 * torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([1, 1])
    for method in ("sal", "ig", "gbp"):
        scores = explain_gradient_family(
            model, inputs, targets, [0, 1], method, explainers=[method], masks={"rect": masks},
            n_segments={"rect": 16}, ig_steps=8,
        ).scores[method]["rect"]
        for aggregation in ("mean", "mean_abs"):
            assert (scores[aggregation].argmax(axis=1) == planted).all(), (method, aggregation)
    coefficients = lime_coefficients(model, inputs, targets, masks, 16, ids=[0, 1], n_samples=64, seed=0)
    assert (coefficients.argmax(axis=1) == planted).all()


def test_aggregate_known_answer():
    # Item 0: id 0 on the top row, id 1 on the bottom row; item 1 has only id 0 (id 1 absent).
    attributions = torch.tensor(
        [
            [[[1.0, -3.0], [-1.0, -2.0]], [[2.0, 4.0], [-5.0, -4.0]]],
            [[[1.0, 2.0], [3.0, 4.0]], [[-1.0, -2.0], [-3.0, -4.0]]],
        ]
    )
    masks = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [0, 0]]])
    scores = aggregate(attributions, masks, 2)
    np.testing.assert_allclose(scores["mean"], [[1.0, -3.0], [0.0, ABSENT]])
    np.testing.assert_allclose(scores["mean_abs"], [[2.5, 3.0], [2.5, ABSENT]])
    np.testing.assert_allclose(scores["mean_pos"], [[7.0 / 3.0, ABSENT], [2.5, ABSENT]])
    np.testing.assert_allclose(scores["mean"], segment_reduce(attributions.numpy(), masks.numpy(), 2, "mean"))


def test_aggregate_rejects_mismatched_masks():
    with pytest.raises(ValueError, match="masks"):
        aggregate(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="segment ids"):
        aggregate(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 3), 2)


OCCLUSION = {"name": "occlusion", "captum": "Occlusion", "attribute": {"sliding_window_shapes": [3, 4, 4], "strides": [3, 4, 4]}}
"""An extra explainer as the config gives it: captum's Occlusion by 4 × 4 patches."""


def captum_occlusion(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference: captum's Occlusion called directly with OCCLUSION's arguments."""
    return Occlusion(model).attribute(inputs, target=targets, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4))


def test_occlusion_and_kernel_shap_plugins_match_captum(model, batch):
    inputs, targets = batch
    occlusion = make_extra_explainer(OCCLUSION)
    expected = captum_occlusion(model, inputs, targets)
    torch.testing.assert_close(occlusion(model, inputs, targets), expected)

    feature_mask = rectangles(1)[:, None]  # (1, 1, H, W), shared by all items and channels
    shap = make_extra_explainer(
        {"name": "shap", "captum": "KernelShap", "attribute": {"n_samples": 20, "feature_mask": feature_mask.tolist()}}
    )
    torch.manual_seed(3)
    ours = shap(model, inputs, targets)
    torch.manual_seed(3)
    expected = KernelShap(model).attribute(inputs, target=targets, n_samples=20, feature_mask=feature_mask)
    torch.testing.assert_close(ours, expected)


def test_captum_init_arguments_reach_the_attribution_class(model, batch):
    inputs, targets = batch
    gradients_only = make_extra_explainer({"name": "ig-raw", "captum": "IntegratedGradients", "init": {"multiply_by_inputs": False},
                                           "attribute": {"n_steps": 4}})
    expected = IntegratedGradients(model, multiply_by_inputs=False).attribute(inputs, target=targets, n_steps=4)
    torch.testing.assert_close(gradients_only(model, inputs, targets), expected)
    assert not torch.allclose(expected, IntegratedGradients(model).attribute(inputs, target=targets, n_steps=4))


def test_function_plugin(tmp_path, monkeypatch, model, batch):
    (tmp_path / "my_explainer.py").write_text(
        textwrap.dedent(
            """
            def input_times_two(model, inputs, targets):
                return inputs * 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    inputs, targets = batch
    explain = make_extra_explainer({"name": "double", "function": "my_explainer:input_times_two"})
    torch.testing.assert_close(explain(model, inputs, targets), inputs * 2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "captum": "NoSuchMethod"}, "explainer 'x': 'NoSuchMethod' is not an attribution class in captum.attr"),
        ({"name": "x", "captum": "Occlusion", "attribute": {"target": 1}},
         "explainer 'x': 'target' is set by the workflow, remove it from 'attribute'"),
        ({"name": "x", "function": "no_such_module_advxai:f"},
         "explainer 'x': cannot import module 'no_such_module_advxai' (No module named 'no_such_module_advxai')"),
        ({"name": "x", "function": "advxai.segments:no_such_function"},
         "explainer 'x': module 'advxai.segments' has no function 'no_such_function'"),
        ({"name": "x", "function": "advxai.segments:audio_grid:x"},
         "explainer 'x': module 'advxai.segments' has no function 'audio_grid:x'"),
        ({"name": "x", "function": "missing_colon"}, "explainer 'x': function 'missing_colon' must have the form 'module:function'"),
        ({"name": "x", "function": ":f"}, "explainer 'x': function ':f' must have the form 'module:function'"),
        ({"name": "x", "function": "advxai.segments:"}, "explainer 'x': function 'advxai.segments:' must have the form 'module:function'"),
        ({"name": "sal", "captum": "Saliency"}, "extra explainer 'sal' clashes with a built-in explainer name"),
        ({"name": "x"}, "extra explainer 'x' needs exactly one of 'captum', 'function' or (from Python) 'explainer'"),
        ({"name": "x", "captum": "Saliency", "unknown": 1},
         "extra explainer 'x': unknown key(s) ['unknown']; allowed: ['attribute', 'captum', 'init', 'name']"),
        ({"name": ""}, "extra explainer {'name': ''} needs a non-empty 'name'"),
        ({"name": 3}, "extra explainer {'name': 3} needs a non-empty 'name'"),
        ({"name": "x", "explainer": print, "init": {}}, "extra explainer 'x': 'explainer' must be a callable, beside 'name' only"),
        ({"name": "x", "explainer": "not callable"}, "extra explainer 'x': 'explainer' must be a callable, beside 'name' only"),
    ],
)
def test_extra_explainer_errors(spec, message):
    with pytest.raises(ValueError, match=exactly(message)):
        make_extra_explainer(spec)


def test_a_python_callable_is_its_own_extra_explainer():
    assert make_extra_explainer({"name": "mine", "explainer": print}) is print


def test_names_and_families():
    assert len(BUILTIN_EXPLAINERS) == 13
    assert family_of("ig-sg2") == "ig" and family_of("sal") == "saliency" and family_of("lime") == "lime"
    assert validate_explainers(["lime", "gbp-vg", "mine"], extra=["mine"]) == ["lime", "gbp-vg", "mine"]
    with pytest.raises(ValueError, match="'smoothgrad'.*sal-sg"):
        validate_explainers(["smoothgrad"])
    with pytest.raises(ValueError, match=exactly("explainer 'sal' is listed twice")):
        validate_explainers(["sal", "ig", "sal"])
    gradient_names = ", ".join(BUILTIN_EXPLAINERS[1:])
    for name in ("lime", "sal-x"):
        with pytest.raises(ValueError, match=exactly(f"unknown explainer '{name}'; valid explainers: {gradient_names}")):
            split_gradient_explainer(name)
    assert split_gradient_explainer("sal-sg2") == ("sal", "sg2") and split_gradient_explainer("ig") == ("ig", None)
    valid = ", ".join(BUILTIN_EXPLAINERS)
    with pytest.raises(ValueError, match=exactly(f"unknown explainer 'sal-vargrad'; valid explainers: {valid}")):
        family_of("sal-vargrad")
    with pytest.raises(ValueError, match="does not belong"):
        explain_gradient_family(
            TinyCNN(), torch.zeros(1, 3, 4, 4), torch.tensor([0]), [0], "sal", explainers=["ig"],
            masks={}, n_segments={},
        )


@pytest.mark.parametrize("n_steps", [2, 4, 8, 50])
def test_integration_points_equal_captums_gauss_legendre(n_steps):
    from captum.attr._utils.approximation_methods import approximation_parameters  # the reference

    step_sizes, alphas = approximation_parameters("gausslegendre")
    ours_alphas, ours_weights = integration_points(n_steps)
    np.testing.assert_array_equal(ours_alphas.numpy(), np.asarray(alphas(n_steps)))
    np.testing.assert_array_equal(ours_weights.numpy(), np.asarray(step_sizes(n_steps)))


def test_paper_settings_and_what_each_job_receives():
    """The paper's values per domain (docs/method.md §7), and only the keys a job's explainers read."""
    assert ExplainerSettings.paper("image") == ExplainerSettings(lime_samples=512, lime_kernel_width=0.25, noise_samples=25, noise_std=1.0,
                                                                 ig_steps=50)
    assert ExplainerSettings.paper("audio", ig_steps=4) == ExplainerSettings(8192, 0.25, 25, 1.0, 4)
    with pytest.raises(ValueError, match=exactly("domain must be one of ['image', 'audio'], got 'text'")):
        ExplainerSettings.paper("text")
    paper = ExplainerSettings.paper(unguided_functional_relu=True)
    assert paper.only(["sal", "gbp-vg"]) == ExplainerSettings(noise_samples=25, noise_std=1.0, unguided_functional_relu=True)
    assert paper.only(["lime", "ig"]) == ExplainerSettings(lime_samples=512, lime_kernel_width=0.25, ig_steps=50)
    assert paper.only(["sal"]) == ExplainerSettings()
    assert paper.only(["gbp"]) == ExplainerSettings(unguided_functional_relu=True)  # plain GBP reads it too
    assert ExplainerSettings.keys_for(["ig-sg2"]) == ["noise_samples", "noise_std", "ig_steps"]
    missing = "missing key '{}.ig_steps': an explainer needs it (ExplainerSettings.paper() gives the paper's)"
    with pytest.raises(ValueError, match=exactly(missing.format("explain"))):
        ExplainerSettings().require("ig_steps")
    with pytest.raises(ValueError, match=exactly(missing.format("audio.explain"))):
        ExplainerSettings().require("ig_steps", "audio.explain")


class FunctionalReLUCNN(TinyCNN):
    """TinyCNN with one functional ReLU, which Guided Backprop guides only without ``relu_modules_only``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(torch.nn.functional.relu(x - 0.2)))


def test_every_setting_reaches_its_explainer(batch):
    """explain_all's output moves with each key of the settings and the LIME form; settings that change nothing don't."""
    torch.manual_seed(0)
    model, (inputs, targets) = FunctionalReLUCNN().eval(), (batch[0][:1] + 1.0, batch[1][:1])  # its mean far from LIME's 0 baseline
    explainer = ExplainerSettings(lime_samples=24, lime_kernel_width=0.7, noise_samples=3, noise_std=0.3, ig_steps=5)
    base = ExplainSettings(explainer=explainer, lime=AUDIO_LIME, seed=7, batch_size=3, lime_batch_size=5, relu_modules_only=True)
    masks, counts = {"rect": rectangles(1)}, {"rect": np.full(1, 16)}
    names = ["lime", "sal-sg", "ig", "gbp"]

    def scores(settings: ExplainSettings, wanted: list[str] = names) -> dict[str, np.ndarray]:
        result = explain_all(model, inputs, targets, ["a"], masks, counts, wanted, settings)
        return {name: result[name]["rect"]["mean"] for name in wanted}

    reference = scores(base)
    changes = {
        "lime": [replace(base, explainer=replace(explainer, lime_samples=32)),
                 replace(base, explainer=replace(explainer, lime_kernel_width=3.0)),
                 *(replace(base, lime=replace(AUDIO_LIME, **change))
                   for change in ({"include_unperturbed": False}, {"baseline": 0.0}, {"kernel": "input_cosine"}, {"surrogate": "ols"}))],
        "sal-sg": [replace(base, explainer=replace(explainer, noise_samples=4)),
                   replace(base, explainer=replace(explainer, noise_std=0.6))],
        "ig": [replace(base, explainer=replace(explainer, ig_steps=7))],
        "gbp": [replace(base, relu_modules_only=False)],
    }
    for name, variants in changes.items():
        for variant in variants:
            assert not np.allclose(scores(variant, [name])[name], reference[name]), (name, variant)
    reseeded = scores(replace(base, seed=8), ["lime", "sal-sg"])
    assert not np.allclose(reseeded["lime"], reference["lime"]) and not np.allclose(reseeded["sal-sg"], reference["sal-sg"])
    rebatched = scores(replace(base, batch_size=2, lime_batch_size=None))  # a chunk of 2 rows, padded
    for name in names:
        np.testing.assert_array_equal(rebatched[name], reference[name])


def test_lime_coefficients_as_aggregations():
    coefficients = np.array([[0.5, -0.2, 0.0, ABSENT]])
    aggregations = lime_as_aggregations(coefficients)
    assert aggregations["mean"] is coefficients
    assert aggregations["mean_abs"].tolist() == [[0.5, 0.2, 0.0, ABSENT]]
    assert aggregations["mean_pos"].tolist() == [[0.5, ABSENT, ABSENT, ABSENT]]


def test_aggregation_of_several_segmentations_and_of_one_dimensional_maps():
    generator = torch.Generator().manual_seed(4)
    attributions = torch.randn(2, 3, 6, 6, generator=generator)
    masks = {"rect": rectangles(2, side=6, grid=2), "halves": (torch.arange(6)[None, :] // 3).expand(2, 6, 6)}
    together = aggregate_segmentations(attributions, masks, {"rect": 4, "halves": 2})
    for name, n_segments in (("rect", 4), ("halves", 2)):
        for aggregation, values in aggregate(attributions, masks[name], n_segments).items():
            np.testing.assert_array_equal(together[name][aggregation], values)
    with pytest.raises(ValueError, match=exactly("n_segments lacks the segmentation(s) ['halves'] given in masks")):
        aggregate_segmentations(attributions, masks, {"rect": 4})
    signal = aggregate(torch.tensor([[[1.0, -3.0, 2.0, 4.0]]]), torch.tensor([[0, 0, 1, 1]]), 2)  # (N, C, L): one spatial axis
    assert signal["mean"].tolist() == [[-1.0, 3.0]] and signal["mean_pos"].tolist() == [[1.0, 3.0]]
    message = ("masks of shape (2, 6, 5) do not match attributions of shape (2, 3, 6, 6): "
               "expected attributions (N, C, *spatial) and masks (N, *spatial)")
    with pytest.raises(ValueError, match=exactly(message)):
        aggregate(attributions, masks["rect"][:, :, :5], 4)


@pytest.mark.parametrize("shape", [(1, 2, 3, 2, 2), (2, 2, 3, 2, 3), (2, 3, 2, 2)])
def test_noise_of_another_shape_is_named(shape):
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    message = f"noise must have shape (N, J, *inputs.shape[1:]) = (2, J, 3, 2, 2), got {shape}"
    with pytest.raises(ValueError, match=exactly(message)):
        noise_ensemble(linear, torch.zeros(2, 3, 2, 2), torch.tensor([0, 1]), "sal", torch.zeros(shape))


def test_gradient_family_arguments_and_defaults():
    torch.manual_seed(0)
    model, targets = FunctionalReLUCNN().eval(), torch.tensor([0, 1])
    inputs = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(5))
    arguments = {"masks": {"rect": rectangles(2)}, "n_segments": {"rect": 16}, "n_noise": 2}
    with pytest.raises(ValueError, match=exactly("ids: expected 2 item ids, got 1")):
        explain_gradient_family(model, inputs, targets, ["a"], "sal", explainers=["sal"], **arguments)
    with pytest.raises(ValueError, match=exactly("explainers: ['sal-sg', 'sal-sg'] lists a name twice")):
        explain_gradient_family(model, inputs, targets, ["a", "b"], "sal", explainers=["sal-sg", "sal-sg"], **arguments)
    default = explain_gradient_family(model, inputs, targets, ["a", "b"], "gbp", explainers=["gbp", "gbp-sg"], **arguments)
    assert default.attributions == {}  # kept only when asked for
    explicit = explain_gradient_family(model, inputs, targets, ["a", "b"], "gbp", explainers=["gbp", "gbp-sg"], seed=0,
                                       relu_modules_only=False, keep_attributions=True, **arguments)
    for name in ("gbp", "gbp-sg"):  # seed 0 and every rectifier guided, by default
        np.testing.assert_array_equal(default.scores[name]["rect"]["mean"], explicit.scores[name]["rect"]["mean"])
    assert set(explicit.attributions) == {"gbp", "gbp-sg"}


def test_extra_explainers_are_scored_and_kept_like_the_gradient_maps(model, batch):
    inputs, targets = batch
    masks, counts = {"rect": rectangles(N_ITEMS)}, {"rect": np.full(N_ITEMS, 16)}
    maps: dict[str, np.ndarray] = {}
    scores = explain_all(model, inputs, targets, ["a", "b", "c"], masks, counts, [], ExplainSettings(batch_size=2), extras=[OCCLUSION],
                         pixel_maps=maps)
    expected = captum_occlusion(model, inputs, targets)
    assert list(scores) == ["occlusion"] and list(maps) == ["occlusion"] and maps["occlusion"].dtype == np.float16
    np.testing.assert_allclose(maps["occlusion"], expected.numpy().astype(np.float16))
    for aggregation, values in aggregate(expected, masks["rect"], 16).items():
        np.testing.assert_allclose(scores["occlusion"]["rect"][aggregation], values, rtol=1e-5, atol=1e-7)


def test_aggregation_counts_zero_as_not_positive_and_single_pixel_segments():
    attributions = torch.tensor([[[[0.0, 2.0], [-1.0, 0.0]]]])  # one item, one channel, 2 × 2
    masks = torch.tensor([[[0, 1], [2, 2]]])  # segments 0 and 1 of one pixel each, 2 of two, 3 absent
    scores = aggregate(attributions, masks, 4)
    assert scores["mean"].tolist() == [[0.0, 2.0, -0.5, ABSENT]]
    assert scores["mean_pos"].tolist() == [[ABSENT, 2.0, ABSENT, ABSENT]]  # a zero is no positive evidence
    assert aggregate(attributions, torch.zeros(1, 2, 2, dtype=torch.long), 1)["mean_abs"].tolist() == [[0.75]]
    with pytest.raises(ValueError, match=exactly("masks: segment ids must lie in 0..2, got 0..3")):
        aggregate(attributions, torch.tensor([[[0, 1], [2, 3]]]), 3)
    with pytest.raises(ValueError, match=exactly("n_segments must be positive, got 0")):
        aggregate(attributions, masks, 0)


def test_gradient_inputs_checked_and_noise_scaled():
    linear = nn.Linear(12, 3).eval()
    assert gradient_attributions(linear, torch.ones(2, 12), torch.tensor([0, 1]), "sal").shape == (2, 12)  # (N, C): no spatial axis
    for inputs, targets, method, message in (
        (torch.zeros(3), torch.tensor([0, 0, 0]), "sal", "inputs must be a batch (N, C, *spatial), got shape (3,)"),
        (torch.zeros(2, 12), torch.tensor([0]), "sal", "targets must have shape (2,), got (1,)"),
        (torch.zeros(2, 12), torch.tensor([0, 1]), "x", "method must be one of ('sal', 'ig', 'gbp'), got 'x'"),
    ):
        with pytest.raises(ValueError, match=exactly(message)):
            gradient_attributions(linear, inputs, targets, method)
    with pytest.raises(ValueError, match=exactly("n_noise must be positive, got 0")):
        draw_noise(["a"], (3,), 0, 1.0, seed=0)
    unit = draw_noise(["a"], (3,), 1, 1.0, seed=0)
    assert unit.shape == (1, 1, 3) and torch.equal(draw_noise(["a"], (3,), 1, 2.0, seed=0), 2 * unit)


def test_given_bins_check_the_map_they_aggregate():
    masks = {"rect": rectangles(2, side=6, grid=2)}
    bins = segment_bins(masks, {"rect": 4}, 3)
    for shape in ((2, 3, 6, 5), (2, 2, 6, 6)):
        message = (f"masks of shape (2, 6, 6) (for 3 channels) do not match attributions of shape {shape}: "
                   "expected attributions (N, C, *spatial) and masks (N, *spatial)")
        with pytest.raises(ValueError, match=exactly(message)):
            aggregate_segmentations(torch.zeros(shape), masks, {"rect": 4}, bins=bins)
