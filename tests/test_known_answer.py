"""Known answer through the whole image chain: a model whose decision depends only on one
planted segment. Its adversary lives in that segment; the magnitude baseline, Saliency and LIME
rank it first; adding back that one segment flips the label, and no other selection short of all
segments does; the localised experiment recovers it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advxai.attacks.pgd import targeted_pgd
from advxai.data.model_inputs import pixel_bounds
from advxai.evaluation.baselines import magnitude_scores, segment_reduce
from advxai.evaluation.flips import ClassChange
from advxai.evaluation.labelflip import label_flips
from advxai.evaluation.localised import NOT_KEPT, localised_experiment
from advxai.evaluation.selection import hybrid, recovered, top_k
from advxai.explainers.engine import ExplainSettings, explain_all
from advxai.explainers.settings import ExplainerSettings
from advxai.segments import ABSENT, rectangles

PLANTED = 5
SIZE = 32


class PlantedSegmentModel(nn.Module):
    """Logits from the channel means of one 4×4-grid segment only, through a small ReLU MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("segment", torch.from_numpy(rectangles(SIZE, SIZE) == PLANTED).float())
        generator = torch.Generator().manual_seed(0)
        self.hidden = nn.Linear(3, 32)
        self.out = nn.Linear(32, 2)
        for layer in (self.hidden, self.out):
            nn.init.normal_(layer.weight, std=1.0, generator=generator)
            nn.init.zeros_(layer.bias)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = (x * self.segment).sum((2, 3)) / self.segment.sum()
        return self.out(self.relu(self.hidden(means)))


def test_planted_segment_is_the_ground_truth_and_is_found():
    torch.manual_seed(0)
    model = PlantedSegmentModel().eval()
    clean = torch.randn(4, 3, SIZE, SIZE).clamp(-1.5, 1.5)
    clean_prediction = model(clean).argmax(1)
    targets = 1 - clean_prediction
    lower, upper = pixel_bounds()
    result = targeted_pgd(model, clean, targets, epsilon=3.5, step_size=0.05, n_steps=80, lower=lower, upper=upper, early_stop=True)
    assert result.success.all()
    perturbation = (result.adversaries - clean).numpy()
    masks = np.repeat(rectangles(SIZE, SIZE)[None], 4, axis=0)
    # the adversary lives in the planted segment only
    outside = masks != PLANTED
    assert np.abs(perturbation.transpose(1, 0, 2, 3)[:, outside]).max() == 0
    magnitude = magnitude_scores(clean.numpy(), result.adversaries.numpy(), masks, 16)
    for name in ("magnitude", "magnitude-mean"):
        assert (magnitude[name].argmax(1) == PLANTED).all(), name

    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=64, noise_samples=4, noise_std=0.1, ig_steps=8), seed=3,
                               batch_size=16)
    mask_tensor = torch.from_numpy(masks).long()
    scores = explain_all(model, result.adversaries, torch.from_numpy(result.final_predictions), [f"img{i}" for i in range(4)],
                         {"rect": mask_tensor}, {"rect": np.full(4, 16)}, ["sal", "ig", "gbp", "lime", "sal-sg"], settings)
    for explainer in ("sal", "ig", "gbp", "sal-sg"):
        assert (scores[explainer]["rect"]["mean_abs"].argmax(1) == PLANTED).all(), explainer
    assert (np.abs(scores["lime"]["rect"]["mean"]).argmax(1) == PLANTED).all()

    # k = 1: adding back the top magnitude segment restores the whole adversary, so the label flips
    top1 = torch.from_numpy(top_k(magnitude["magnitude"], 1))
    assert (model(hybrid(clean, result.adversaries, mask_tensor, top1)).argmax(1) != clean_prediction).all()
    # and an explainer that ranks the planted segment first recovers it (the localised experiment)
    found = top_k(scores["sal"]["rect"]["mean_abs"], 1)
    assert (recovered(top1.numpy(), found) == 1).all()

    # The label-flip experiment: a flip exactly when the planted segment is among those added back.
    planted_last = np.tile(np.where(np.arange(16) == PLANTED, -1.0, np.arange(16.0)), (4, 1))
    rankings = {"sal": scores["sal"]["rect"]["mean_abs"], "planted-last": planted_last, **magnitude}
    per_item_k = np.tile(np.arange(1, 17), (4, 1))
    flips = label_flips(model, ClassChange(clean_prediction.numpy()), clean, result.adversaries, mask_tensor, np.full(4, 16), rankings,
                        per_item_k, 8)
    for name in ("sal", "magnitude", "magnitude-mean"):
        assert flips[name].all(), name
    assert not flips["planted-last"][:, :15].any() and flips["planted-last"][:, 15].all()

    # The localised experiment: at k = 1 the truth is the planted segment; saliency recovers it.
    def explain_saliency(inputs, classes, ids, item_masks, n_segments):
        scores = explain_all(model, inputs, classes, ids, {"rect": item_masks}, {"rect": n_segments}, ["sal"], settings)
        return {"sal": scores["sal"]["rect"]["mean_abs"]}

    found = localised_experiment(model, ClassChange(clean_prediction.numpy()), clean, result.adversaries, mask_tensor, np.full(4, 16),
                                 [f"img{i}" for i in range(4)], [1], explain_saliency, ["sal"], 8)[1]
    assert (found.truth.argmax(1) == PLANTED).all() and found.truth.sum(1).tolist() == [1] * 4
    assert found.kept.all() and found.recovered["sal"].tolist() == [1] * 4
    # A model that ignores the perturbation keeps no item, and nothing is explained.
    def unused(*args):
        raise AssertionError("explain ran without a kept item")

    ignored = localised_experiment(model, ClassChange(found.decisions), clean, result.adversaries, mask_tensor, np.full(4, 16),
                                   [f"img{i}" for i in range(4)], [1], unused, ["sal"], 8)[1]
    assert not ignored.kept.any() and ignored.recovered["sal"].tolist() == [NOT_KEPT] * 4


def test_top_k_hybrid_and_reduce_known_answers():
    scores = np.array([[0.1, 0.9, 0.5, ABSENT], [3.0, 1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[False, True, True, False], [True, False, True, False]])
    np.testing.assert_array_equal(top_k(scores, np.array([1, 3])), [[False, True, False, False], [True, True, True, False]])
    masks = torch.tensor([[[0, 1], [2, 3]]])
    clean, adversarial = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    mixed = hybrid(clean, adversarial, masks, torch.tensor([[False, True, False, True]]))
    np.testing.assert_array_equal(mixed[0, 0].numpy(), [[0, 1], [0, 1]])
    np.testing.assert_array_equal(mixed[0, 1].numpy(), [[0, 1], [0, 1]])  # every channel
    # inputs without a channel axis (log-mel excerpts) take the same masks
    np.testing.assert_array_equal(hybrid(clean[:, 0], adversarial[:, 0], masks, torch.tensor([[True, False, False, True]]))[0].numpy(),
                                  [[1, 0], [0, 1]])
    values = np.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    np.testing.assert_array_equal(segment_reduce(values, masks.numpy(), 5, "sum"), [[4, 6, 8, 10, ABSENT]])
    np.testing.assert_array_equal(segment_reduce(values, masks.numpy(), 4, "mean"), [[2, 3, 4, 5]])
    np.testing.assert_array_equal(segment_reduce(values[:, 1], masks.numpy(), 4, "sum"), [[4, 5, 6, 7]])  # no channel axis


def test_kept_pixel_maps_are_the_maps_behind_the_scores():
    from advxai.explainers.aggregate import aggregate
    from advxai.explainers.gradients import gradient_attributions

    model = PlantedSegmentModel().eval()
    inputs = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    targets = model(inputs).argmax(1)
    masks = torch.from_numpy(np.repeat(rectangles(SIZE, SIZE)[None], 2, axis=0)).long()
    maps: dict[str, np.ndarray] = {}
    settings = ExplainSettings(explainer=ExplainerSettings.paper(noise_samples=2, ig_steps=4), seed=1, batch_size=8)
    scores = explain_all(model, inputs, targets, ["a", "b"], {"rect": masks}, {"rect": np.full(2, 16)}, ["sal", "sal-vg"], settings,
                         pixel_maps=maps)
    assert set(maps) == {"sal", "sal-vg"} and maps["sal"].dtype == np.float16
    plain = gradient_attributions(model, inputs, targets, "sal")
    np.testing.assert_allclose(maps["sal"], plain.numpy().astype(np.float16))
    np.testing.assert_allclose(scores["sal"]["rect"]["mean_abs"], aggregate(plain, masks, 16)["mean_abs"], rtol=1e-6)
