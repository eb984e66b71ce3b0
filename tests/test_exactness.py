"""Exact results: an item's numbers do not depend on which items share its batch (docs/exactness.md).

A random-weight ResNet-18 is used because its kernels really do change their arithmetic with the
batch shape (on this CPU a lone image's input gradient differs from the same image's gradient in
a batch of two); every comparison here is bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advxai.attacks.pgd import targeted_pgd
from advxai.data.model_inputs import pixel_bounds
from advxai.evaluation.labelflip import predict_hybrids
from advxai.explainers.engine import ExplainSettings, explain_all
from advxai.explainers.settings import ExplainerSettings
from advxai.models import load_model
from advxai.segments import rectangles

SIDE = 32
BUILTIN = ["lime", "sal", "ig", "gbp", "sal-sg", "sal-sg2", "sal-vg", "ig-sg", "ig-sg2", "ig-vg", "gbp-sg", "gbp-sg2", "gbp-vg"]
OCCLUSION = {"name": "occlusion", "captum": "Occlusion", "attribute": {"sliding_window_shapes": [3, 8, 8], "strides": [3, 8, 8]}}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_model("resnet18", weights=None).module


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1)).clamp(-2, 2)


@pytest.mark.parametrize("early_stop", [False, True])
def test_pgd_of_an_image_alone_equals_it_inside_a_batch(model, images, early_stop):
    targets = torch.tensor([3, 500, 998])
    lower, upper = pixel_bounds()
    attack = dict(epsilon=0.5, step_size=0.05, n_steps=6, lower=lower, upper=upper, early_stop=early_stop, batch_size=3)
    together = targeted_pgd(model, images, targets, **attack)
    for row in range(3):  # alone it is row 0 of a padded batch; together, row 0, 1 or 2
        alone = targeted_pgd(model, images[row : row + 1], targets[row : row + 1], **attack)
        assert torch.equal(alone.adversaries[0], together.adversaries[row])
        assert alone.first_success_step[0] == together.first_success_step[row]
        assert alone.final_predictions[0] == together.final_predictions[row]
    # batches of two: the third image shares a padded chunk with nothing, the others with each other
    in_twos = targeted_pgd(model, images, targets, **{**attack, "batch_size": 2})
    alone_in_twos = targeted_pgd(model, images[:1], targets[:1], **{**attack, "batch_size": 2})
    assert torch.equal(alone_in_twos.adversaries[0], in_twos.adversaries[0])


def test_engine_scores_of_an_item_alone_equal_it_inside_a_batch(model, images):
    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=24, noise_samples=3, ig_steps=3), seed=5, batch_size=4)
    masks = torch.from_numpy(rectangles(SIDE, SIDE, 4)).long().expand(3, SIDE, SIDE)
    targets = torch.tensor([7, 70, 700])
    ids = ["a", "b", "c"]

    def scores(rows: slice) -> dict:
        n = len(ids[rows])
        return explain_all(model, images[rows], targets[rows], ids[rows], {"rect": masks[rows]}, {"rect": np.full(n, 16)},
                           BUILTIN, settings, extras=[OCCLUSION])

    together = scores(slice(0, 3))
    for row in (0, 2):
        alone = scores(slice(row, row + 1))
        assert set(alone) == set(BUILTIN) | {"occlusion"}
        for explainer, by_segmentation in alone.items():
            for aggregation, values in by_segmentation["rect"].items():
                np.testing.assert_array_equal(values[0], together[explainer]["rect"][aggregation][row],
                                              err_msg=f"{explainer} {aggregation}")


def test_lime_passes_at_the_forward_batch_and_gradient_passes_at_the_gradient_batch(model, images):
    """``lime_batch_size`` (a job's forward size) reaches LIME, and only LIME."""
    masks = {"rect": torch.from_numpy(rectangles(SIDE, SIDE, 4)).long().expand(3, SIDE, SIDE)}
    targets, ids, counts = torch.tensor([7, 70, 700]), ["a", "b", "c"], {"rect": np.full(3, 16)}

    def scores(batch_size: int, lime_batch_size: int | None = None) -> dict:
        settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=24, noise_samples=2, ig_steps=3), seed=5,
                                   batch_size=batch_size, lime_batch_size=lime_batch_size)
        return explain_all(model, images, targets, ids, masks, counts, ["lime", "sal-sg", "ig"], settings)

    split, at_one, at_four = scores(1, 4), scores(1), scores(4)
    # the premise: this model's passes round differently at 1 and 4 rows, so the sizes are told apart
    for explainer in ("lime", "sal-sg", "ig"):
        assert not np.array_equal(at_one[explainer]["rect"]["mean"], at_four[explainer]["rect"]["mean"]), explainer
    for explainer, reference in (("lime", at_four), ("sal-sg", at_one), ("ig", at_one)):
        for aggregation, values in split[explainer]["rect"].items():
            np.testing.assert_array_equal(values, reference[explainer]["rect"][aggregation], err_msg=f"{explainer} {aggregation}")


def argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(1)


def test_hybrid_predictions_of_an_item_alone_equal_it_inside_a_batch(model, images):
    masks = torch.from_numpy(rectangles(SIDE, SIDE, 4)).long().expand(3, SIDE, SIDE)
    adversarial = (images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(2))).clamp(-2, 2)
    selections = np.random.default_rng(3).random((3, 5, 16)) < 0.5
    together = predict_hybrids(model, argmax, images, adversarial, masks, selections, batch_size=4)
    alone = predict_hybrids(model, argmax, images[2:], adversarial[2:], masks[2:], selections[2:], batch_size=4)
    np.testing.assert_array_equal(alone[0], together[2])
    with torch.no_grad():
        direct = [model(images[i : i + 1] + torch.from_numpy(selections[i, 0]).float()[masks[i]] * (adversarial[i] - images[i]))
                  .argmax(1).item() for i in range(3)]
    assert together[:, 0].tolist() == direct  # each row predicts its own item's hybrid
