"""Every legal run finishes: one workflow run through the edges (docs/plugins.md, docs/decisions.md "Empty is a result").

One run on presets/test.yaml covers, so that it costs one workflow's minutes:

- plug-in models from a module outside the repository, importable through PYTHONPATH (the
  documented way): one with 10 classes at 32 px (a ModelBundle), one that no attack can fool;
- a model with 0 adversaries, its 0-item subsets, and a localised k at which no refined input flips;
- a detector with no successful C&W attack (``max_iter: 0``), hence no excerpts;
- an ImageNet-layout tree whose images are odd but legal files (grey, RGBA, palette, 16-bit, CMYK,
  tiny, very wide and tall, EXIF-rotated).

Each empty result must reach the report: tables with their columns, figures with labelled panels,
and a Markdown section that names the cause.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import snakemake
from fabricate import N_CLASSES, PLUGIN_MODULE, odd_images, plugin_folder

from advxai.store import read_h5

pytestmark = pytest.mark.workflow

ODD_CLASSES = (3, 8)  # within the 10-class plug-in's classes


def odd_imagenet_tree(root):
    """1000 wnid folders; the odd files split between two classes below 10."""
    for index in range(N_CLASSES):
        (root / f"n{index:08d}").mkdir(parents=True)
    kinds = odd_images(root / "staging")
    for position, (path, _) in enumerate(kinds.values()):
        path.rename(root / f"n{ODD_CLASSES[position % 2]:08d}" / path.name)
    (root / "staging").rmdir()
    return root, sorted(kinds)


OVERLAY = """
image:
  dataset: imagenet
  imagenet_root: {root}
  shard_size: 10       # one shard of the 10 odd files: the fewest jobs
  max_images: null
  models:
    tiny: {{enabled: false}}
    ten: {{architecture: "{module}:ten", weights: null, epsilon: 0.5, step_size: 0.05, input_size: 32, resize_size: 36}}
    never: {{architecture: "{module}:never", weights: null, epsilon: 0.5, step_size: 0.05, input_size: 32, resize_size: 36}}
  explainers: [lime, sal]
  extra_explainers: []
  rect: {{grid: 8}}
  labelflip: {{k: 3, rect_ks: [1, 3, 64], slic_fractions: [0.5, 1.0]}}
  localised: {{ks: [1]}}
audio:
  seeds: [0]
  experiment_seeds: [0]
  attack: {{max_iter: 0}}
"""


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("edges")
    root, kinds = odd_imagenet_tree(base / "imagenet")
    overlay = base / "edges.yaml"
    overlay.write_text(OVERLAY.format(root=root, module=PLUGIN_MODULE))
    plugins = plugin_folder(base / "my_plugins")  # outside the repository
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(plugins), os.environ.get("PYTHONPATH", "")) if p))
        workdir = base / "run"
        workdir.mkdir()
        snakemake(workdir, overlay=str(overlay))
    return workdir, kinds


def test_odd_images_and_a_10_class_plugin_run_end_to_end(edge_run):
    workdir, kinds = edge_run
    accuracy = pd.read_csv(workdir / "results" / "tables" / "image_accuracy.csv")
    assert accuracy.model.tolist() == ["ten", "never"] and accuracy.n_images.tolist() == [len(kinds)] * 2
    assert accuracy.clean_top1.notna().all()  # labels 3 and 8 are among the 10 classes
    shards = sorted((workdir / "image/data/imagenet/36-32").glob("shard*.h5"))
    ids = [str(i) for shard in shards for i in read_h5(shard, ["ids"])["ids"]]
    assert sorted(ids) == kinds
    ten = accuracy.set_index("model").loc["ten"]
    assert ten.n_adversaries > 0
    labelflip = pd.read_csv(workdir / "results" / "tables" / "image_labelflip.csv")
    assert set(labelflip.model) == {"ten"} and labelflip.n.max() <= ten.n_adversaries


def test_a_model_without_adversaries_reaches_the_report(edge_run):
    workdir, kinds = edge_run
    tables = workdir / "results" / "tables"
    assert pd.read_csv(tables / "image_accuracy.csv").set_index("model").loc["never", "n_adversaries"] == 0
    interval = ["ci_low", "ci_high"]
    for name, columns in (("image_labelflip",
                           ["model", "segmentation", "explainer", "aggregation", "k", "fraction", "n", "label_flip_rate"]),
                          ("image_localised", ["model", "segmentation", "explainer", "k", "recovered", "count", "fraction"])):
        table = pd.read_csv(tables / f"{name}.csv")
        assert list(table.columns) == columns + interval and "never" not in set(table.model)
    subsets = read_h5(workdir / "image/never/subset.h5")
    assert len(subsets["labelflip_ids"]) == len(subsets["localised_ids"]) == 0
    markdown = (tables / "image_tables.md").read_text()
    assert "## Empty results" in markdown
    assert f"model `never`: 0 of {len(kinds)} images — no successful adversary" in markdown
    figures = workdir / "results" / "figures"
    for name in ("image_fig5_never.png", "image_fig6_rect.png", "image_fig7_slic.png", "image_fig8_never_rect.png",
                 "image_fig8_ten_slic.png", "image_fig1_never_rect.png", "image_fig4_never.png", "image_fig10_never.png",
                 "image_refined_never_slic.png"):
        assert (figures / name).stat().st_size > 0, name


def test_a_localised_k_at_which_nothing_flips_is_named(edge_run):
    """One 4 x 4 px rectangle of the perturbation (k = 1 of 64) does not flip the 10-class model."""
    workdir, _ = edge_run
    localised = pd.read_csv(workdir / "results" / "tables" / "image_localised.csv")
    rect = localised[(localised.model == "ten") & (localised.segmentation == "rect") & (localised.k == 1)]
    assert len(rect) and rect["count"].sum() == 0 and rect.fraction.isna().all()
    assert "model `ten`, rect, localised k = 1: no refined input still flips" in (workdir / "results/tables/image_tables.md").read_text()


def test_a_detector_without_a_successful_attack_reaches_the_report(edge_run):
    workdir, _ = edge_run
    tables = workdir / "results" / "tables"
    flips = pd.read_csv(tables / "audio_labelflip.csv")
    assert list(flips.columns) == ["seed", "direction", "explainer", "k", "n", "label_flip_rate", "ci_low", "ci_high"]
    per_seed = flips[flips.seed.astype(str) == "0"]
    assert len(per_seed) and (per_seed.n == 0).all() and per_seed.label_flip_rate.isna().all()
    markdown = (tables / "audio_tables.md").read_text()
    for direction in ("nosing_to_sing", "sing_to_nosing"):
        assert f"detector seed 0, {direction}: no adversarial excerpt" in markdown
    assert len(read_h5(workdir / "audio/examples/seed0.h5")["ids"]) == 0  # an empty example file, not a crash
    for name in ("audio_fig2.png", "audio_fig3.png", "audio_excerpt.png", "audio_refined_seed0.png"):
        assert (workdir / "results" / "figures" / name).stat().st_size > 0, name
