"""advxai.evaluate: the workflow's numbers bitwise, every input and explainer form, intervals and paired tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_config import load
from torch import nn

import advxai
from advxai.data.image_items import bundled_items
from advxai.data.images import load_image, preprocess
from advxai.statistics import mcnemar_exact, wilson_interval

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ the workflow's numbers
def preset_call(pixels: np.ndarray | None = None, **changes) -> advxai.Result:
    """The call on presets/test.yaml's images (``pixels``: decoded already) and settings (its one model,
    both segmentations)."""
    config = load("config.yaml", "presets/test.yaml")
    image = config["image"]
    ((label, entry),) = [(m, e) for m, e in image["models"].items() if e.get("enabled", True)]
    items = bundled_items()[: image["max_images"]]
    if pixels is None:
        pixels = np.stack([preprocess(load_image(i), entry["resize_size"], entry["input_size"]) for i in items])
    explain = {key: value for key, value in image["explain"].items() if key != "keep_attributions"}
    flip = image["labelflip"]
    call = dict(
        attack=advxai.PGD(
            epsilon=entry["epsilon"],
            step_size=entry["step_size"],
            steps=image["pgd"]["steps"],
            early_stop=image["pgd"]["early_stop"],
        ),
        explainers=[*image["explainers"], *image["extra_explainers"]],
        segmentation={
            "rect": advxai.SegmentationSettings(method="rect", **image["rect"]),
            "slic": advxai.SegmentationSettings(method="slic", **image["slic"]),
        },
        k=sorted({flip["k"], *flip["rect_ks"]}),
        localised_k=image["localised"]["ks"],
        settings=advxai.ExplainerSettings(**explain),
        seed=config["seed"],
        device=config["device"],
        batch_size=image["batch_size"],
        ids=[i.id for i in items],
        weights=entry["weights"],
        arithmetic=image["arithmetic"],
    )
    return advxai.evaluate(entry["architecture"], pixels, **{**call, **changes})


def compare_with_tables(result: advxai.Result, tables: Path) -> int:
    """Assert that every row the workflow and the call share is equal, bit for bit; the rows compared."""
    flips = pd.read_csv(Path(tables, "image_labelflip.csv"))
    flips = flips[flips.k.notna()].astype({"k": int})
    ours = result.label_flips.merge(flips, on=["segmentation", "explainer", "aggregation", "k"], how="inner")
    assert len(ours) == len(
        result.label_flips[result.label_flips.k.isin(flips.k.unique())].merge(
            flips[["segmentation", "k"]].drop_duplicates(), on=["segmentation", "k"]
        )
    )
    assert (ours.n_x == ours.n_y).all() and (ours.rate == ours.label_flip_rate).all(), ours[
        ours.rate != ours.label_flip_rate
    ]
    histogram = pd.read_csv(Path(tables, "image_localised.csv")).drop(columns=["model", "fraction"])
    mine = result.localised_histogram.drop(columns=["fraction"])
    pd.testing.assert_frame_equal(
        mine.sort_values(list(mine.columns)).reset_index(drop=True),
        histogram[mine.columns].sort_values(list(mine.columns)).reset_index(drop=True),
        check_dtype=False,
    )
    return len(ours) + len(mine)


@pytest.mark.workflow
def test_the_call_gives_the_workflows_rows_bitwise(run):
    result = preset_call()
    assert result.n_adversaries > 0
    assert compare_with_tables(result, run / "results" / "tables") > 100


# ------------------------------------------------------------------------------ inputs, explainers
class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Linear(6 * 16, 5)
        for parameter in self.parameters():
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.5

    def forward(self, x):
        return self.head(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1))


ATTACK = advxai.PGD(epsilon=1.0, step_size=0.2, steps=5)
QUICK = dict(
    attack=ATTACK,
    settings=advxai.ExplainerSettings.paper(lime_samples=16, noise_samples=2, ig_steps=4),
    device="cpu",
    batch_size=4,
    seed=1,
    segmentation="rect",
    k=[1, 3],
    localised_k=[1],
)


def tiny_images(n: int = 7) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(2))


def test_an_iterable_in_odd_batches_gives_the_tensors_result():
    x = tiny_images()
    whole = advxai.evaluate(Tiny(), x, explainers=["lime", "sal", "ig-sg"], **QUICK)
    streamed = advxai.evaluate(
        Tiny(), iter([(x[:2], torch.zeros(2)), (x[2:7], torch.zeros(5))]), explainers=["lime", "sal", "ig-sg"], **QUICK
    )
    assert whole.n_adversaries > 0
    pd.testing.assert_frame_equal(whole.label_flips, streamed.label_flips)
    pd.testing.assert_frame_equal(whole.localised_histogram, streamed.localised_histogram)
    assert streamed.n_labelled == 7 and whole.n_labelled == 0


def test_a_folder_of_images_is_read_as_its_files_in_name_order(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 20, 20, 3), dtype=np.uint8)
    for name, image in zip(["b.png", "a.png", "c.png"], pixels):
        Image.fromarray(image).save(tmp_path / name)
    from advxai.models import ModelBundle

    bundle = ModelBundle("tiny", Tiny(), 16, 20, 5)  # resize 20, crop 16
    from_folder = advxai.evaluate(bundle, tmp_path, explainers=["sal"], **QUICK)
    crops = np.stack([preprocess(Image.fromarray(p), 20, 16) for p in pixels[[1, 0, 2]]])
    from_array = advxai.evaluate(bundle, crops, explainers=["sal"], ids=["a.png", "b.png", "c.png"], **QUICK)
    pd.testing.assert_frame_equal(from_folder.label_flips, from_array.label_flips)
    assert from_folder.n_images == 3


def test_supplied_adversaries_and_segment_scores_and_captum_classes():
    from captum.attr import Saliency

    x = tiny_images()
    made = advxai.evaluate(Tiny(), x, explainers=["sal"], **QUICK)
    from advxai.attacks.pgd import targeted_pgd
    from advxai.data.model_inputs import pixel_bounds

    model = Tiny().eval().requires_grad_(False)
    targets = (model(x).argmax(1) + 1) % 5  # the caller's own attack: the next class
    adversaries = targeted_pgd(model, x, targets, 1.0, 0.2, 10, lower=pixel_bounds()[0], upper=pixel_bounds()[1]).adversaries

    def by_segment(model, inputs, targets, masks):  # segment scores: segment 0 first
        return -torch.arange(16.0).expand(len(inputs), 16)

    call = {**QUICK, "attack": adversaries}
    supplied = advxai.evaluate(
        Tiny(), x, explainers={"sal": "sal", "captum-saliency": Saliency, "first": by_segment}, **call
    )
    flipped = (Tiny()(adversaries).argmax(1) != Tiny()(x).argmax(1)).sum().item()
    assert supplied.n_adversaries == flipped > 0 and made.n_adversaries > 0
    table = supplied.label_flips.set_index(["explainer", "k"])
    assert table.loc["captum-saliency", "rate"].equals(
        table.loc["sal", "rate"]
    )  # captum's |gradient| ranks as sal's mean_abs
    assert set(table.index.get_level_values(0)) == {"sal", "captum-saliency", "first", "magnitude", "magnitude-mean"}


def test_a_missing_setting_fails_with_its_config_name():
    with pytest.raises(ValueError, match=r"missing key 'explain.lime_samples'"):
        advxai.evaluate(
            Tiny(),
            tiny_images(),
            explainers=["lime"],
            **{**QUICK, "settings": advxai.ExplainerSettings(lime_kernel_width=0.25)},
        )


# ------------------------------------------------------------------------------ intervals and tests
def test_rates_carry_wilson_intervals_and_compare_is_mcnemar_on_the_same_items():
    flips_a = np.array([[True], [True], [True], [False], [True]])
    flips_b = np.array([[False], [False], [True], [False], [False]])
    result = advxai.Result(
        ids=list("abcde"),
        ks=[3],
        localised_ks=[],
        flips={"rect": {("a", "mean_abs"): flips_a, ("b", "mean_abs"): flips_b}},
    )
    table = result.label_flips.set_index("explainer")
    assert tuple(table.loc["a", ["rate", "ci_low", "ci_high"]]) == tuple(wilson_interval(4, 5))
    row = result.compare("a", "b").iloc[0]
    assert (row.n, row.p_value) == (5, mcnemar_exact(flips_a[:, 0], flips_b[:, 0]).p_value) == (5, 0.25)  # 3 of 3 discordant
    assert row.difference == pytest.approx(0.6)


def test_importing_advxai_imports_no_torch():
    code = (
        "import sys, advxai; advxai.PGD; advxai.ExplainerSettings; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_call_scores_a_detectors_excerpts_with_tiles_and_the_threshold_test():
    """A detector that hears only tile 7: every explainer that ranks tile 7 first flips at k = 1, and so does the
    norm baseline (tile 7 carries most of the perturbation); the localised experiment recovers it."""
    from test_audio_evaluation import THRESHOLD, SegmentSevenDetector, seven_data

    clean, adversarial = seven_data(n_items=3)
    excerpts = advxai.Excerpts(clean, adversarial, targets=[1, 1, 1], threshold=THRESHOLD)
    settings = advxai.ExplainerSettings.paper("audio", lime_samples=64, ig_steps=4)
    result = advxai.evaluate(SegmentSevenDetector().eval(), excerpts, attack=None, explainers=["lime", "sal"], k=[1],
                             settings=settings, device="cpu")
    rates = result.label_flips.set_index("explainer")["rate"]
    assert rates.to_dict() == {"lime": 1.0, "sal": 1.0, "norm": 1.0}
    assert result.localised.set_index("explainer")["mean_recovered"].to_dict() == {"lime": 1.0, "sal": 1.0}
