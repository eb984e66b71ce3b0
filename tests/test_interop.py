"""advxai beside the other explanation libraries: its metrics inside quantus.evaluate, a zennit
explainer and a timm model through advxai.evaluate (the ``interop`` extra, installed by ``test``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import advxai

quantus = pytest.importorskip("quantus")
zennit_attribution = pytest.importorskip("zennit.attribution")
zennit_composites = pytest.importorskip("zennit.composites")
pytest.importorskip("timm")

ATTACK = advxai.PGD(epsilon=1.0, step_size=0.2, steps=5)
FAST = dict(
    settings=advxai.ExplainerSettings.paper(lime_samples=16, noise_samples=2, ig_steps=4),
    device="cpu",
    batch_size=4,
    seed=3,
)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10)
    ).eval()


def inputs(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def saliency(model, inputs, targets, **kwargs) -> np.ndarray:
    """A Quantus explain_func: |gradient| of the target logit (NumPy in and out)."""
    x = torch.as_tensor(inputs).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[torch.arange(len(x)), torch.as_tensor(targets)].sum(), x)
    return grad.abs().numpy()


def test_the_metrics_run_inside_quantus_evaluate_beside_a_quantus_metric():
    model, x = tiny_cnn(), inputs()
    y = model(x).argmax(1).numpy()
    metrics = {
        "label_flip": advxai.LabelFlip(ATTACK, segmentation="rect", k=3, **FAST),
        "localised": advxai.LocalisedRecovery(ATTACK, segmentation="rect", k=1, **FAST),
        "sparseness": quantus.Sparseness(disable_warnings=True),
    }
    results = quantus.evaluate(
        metrics=metrics,
        xai_methods={"saliency": saliency},
        model=model,
        x_batch=x.numpy(),
        y_batch=y,
        explain_func_kwargs={},
        agg_func=lambda scores: scores,
    )
    scores = results["saliency"]
    assert set(scores) == set(metrics)  # quantus.evaluate prints and drops a metric that raises
    direct = advxai.evaluate(
        model,
        x,
        attack=ATTACK,
        explainers={"explain_func": lambda m, i, t: torch.from_numpy(saliency(m, i, t))},
        segmentation="rect",
        k=[3],
        localised_k=[1],
        ids=[str(i) for i in range(len(x))],
        **FAST,
    )
    expected_flips = dict(zip(direct.ids, direct.flips["rect"][("explain_func", "mean_abs")][:, 0].astype(float)))
    assert np.array_equal(
        scores["label_flip"], [expected_flips.get(str(i), np.nan) for i in range(len(x))], equal_nan=True
    )
    recovered = dict(zip(direct.ids, direct.recovered["rect"][1]["explain_func"]))
    expected = [float(recovered[str(i)]) if recovered.get(str(i), -1) >= 0 else np.nan for i in range(len(x))]
    assert np.array_equal(scores["localised"], expected, equal_nan=True)
    assert direct.n_adversaries > 0 and np.isfinite(scores["label_flip"]).sum() == direct.n_adversaries
    assert len(scores["sparseness"]) == len(x)


def zennit_explainer(composite):
    def explain(model, inputs, targets):
        with zennit_attribution.Gradient(model, composite=composite) as attributor:
            _, relevance = attributor(inputs, torch.eye(10, device=inputs.device)[targets])
        return relevance

    return explain


def test_a_zennit_composite_is_scored_through_the_call_and_plain_zennit_gradients_match_saliency():
    model, x = tiny_cnn(), inputs()
    before = model(x)
    result = advxai.evaluate(
        model,
        x,
        attack=ATTACK,
        segmentation="rect",
        k=[1, 3],
        localised_k=[1],
        explainers={
            "sal": "sal",
            "zennit-gradient": zennit_explainer(None),
            "zennit-epsilon-plus": zennit_explainer(zennit_composites.EpsilonPlusFlat()),
        },
        **FAST,
    )
    table = result.label_flips.set_index(["explainer", "k"])
    # without a composite, zennit's attributor is the input gradient: the same ranking as Saliency
    assert table.loc["zennit-gradient", "rate"].equals(table.loc["sal", "rate"])
    assert table.loc["zennit-epsilon-plus", "n"].eq(result.n_adversaries).all() and result.n_adversaries > 0
    assert torch.equal(model(x), before)  # the composite's hooks are gone


def test_a_timm_model_with_random_weights_is_scored_by_name():
    from advxai.models import load_model

    x = inputs(n=4, size=64)
    strong = advxai.PGD(epsilon=0.5, step_size=0.05, steps=10)  # a random ConvNeXt whose logits vary with the input
    call = dict(attack=strong, explainers=["sal", "ig"], segmentation="rect", k=[1, 3], localised_k=[1], **FAST)
    by_name = advxai.evaluate("timm:test_convnext", x, weights=None, **call)
    bundle = load_model("timm:test_convnext", weights=None)
    by_module = advxai.evaluate(bundle.module, x, **call)
    pd.testing.assert_frame_equal(by_name.label_flips, by_module.label_flips)
    assert by_name.n_adversaries > 0 and len(by_name.label_flips) == 4 * 2  # (sal, ig, two baselines) x two k
