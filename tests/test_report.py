"""Report stages and figures: inputs grouped by the rule's params (any model label works), and
figures that tell every explainer apart."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from advxai.names import BUILTIN_EXPLAINERS, reported_aggregation
from advxai.report import plots
from advxai.stages import report as stages
from advxai.stages.report import ImageFigure, ImageReportInputs, split_groups
from advxai.store import write_h5

# the config schema allows both `__` and `_` in a model label: neither may confuse the report
ODD_MODEL = "res__net_a"
MODELS = [ODD_MODEL, "tiny"]
SEGMENTATIONS = ["rect", "slic"]


def test_split_groups_assigns_files_group_after_group():
    files = ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert split_groups(files, [("m", "rect"), ("m", "slic"), ("n__x_y", "rect")]) == {
        ("m", "rect"): ["a0", "a1"], ("m", "slic"): ["b0", "b1"], ("n__x_y", "rect"): ["c0", "c1"]}
    assert split_groups([], []) == {}


@pytest.mark.parametrize(("files", "groups", "message"), [(["a", "b", "c"], ["m", "n"], "equal size"),
                                                           (["a", "b"], ["m", "m"], "twice"),
                                                           (["a"], [], "no group")])
def test_split_groups_refuses_files_that_do_not_match_the_groups(files, groups, message):
    with pytest.raises(ValueError, match=message):
        split_groups(files, groups)


def _shards(tmp_path, stage: str, model_index: int, segmentation: str | None, arrays: list[dict], architecture: str) -> list[str]:
    paths = []
    for shard, data in enumerate(arrays):
        path = tmp_path / f"{stage}_{model_index}_{segmentation}_{shard}.h5"
        write_h5(path, data, stage=stage, params={"model": {"architecture": architecture}})
        paths.append(str(path))
    return paths


def _labelflip_arrays(rate_item: bool) -> dict:
    return {"ids": np.array(["i"], dtype=str), "n_segments": np.array([16]), "k": np.array([3]), "fraction": np.array([np.nan]),
            "per_item_k": np.array([[3]]), "fewer_segments": np.array([[False]]), "flips/sal/mean_abs": np.array([[rate_item]])}


def _localised_arrays(recovered: int) -> dict:
    return {"ids": np.array(["i"], dtype=str), "ks": np.array([1]), "k1/kept": np.array([True]),
            "k1/recovered/sal": np.array([recovered]), "k1/fewer_segments": np.array([False])}


def test_image_tables_from_grouped_inputs_keep_every_model_label(tmp_path):
    """Two models (one labelled with `__` and `_`) × two segmentations, two shards each, listed as
    the rule lists them; every table row lands on its own model and segmentation."""
    inputs = {"adversaries": [], "labelflip": [], "localised": [], "slic_segments": []}
    for m, (_model, architecture) in enumerate(zip(MODELS, ["resnet50", "alexnet"])):
        successes = [[True, True], [False, m == 1]]  # model 0: 2 adversaries of 4 images, model 1: 3
        inputs["adversaries"] += _shards(tmp_path, "adversaries", m, None, [
            {"labels": np.array([1, 2]), "clean_prediction": np.array([1, 2]), "final_prediction": np.array([5, 5]), "success": np.array(s)}
            for s in successes], architecture)
    for m, model in enumerate(MODELS):
        for seg in SEGMENTATIONS:
            flipped = (model == ODD_MODEL) == (seg == "slic")  # a distinct pattern per (model, segmentation)
            inputs["labelflip"] += _shards(tmp_path, "labelflip", m, seg, [_labelflip_arrays(flipped), _labelflip_arrays(True)], "-")
            inputs["localised"] += _shards(tmp_path, "localised", m, seg, [_localised_arrays(int(flipped)), _localised_arrays(1)], "-")
    for m in range(len(MODELS)):
        inputs["slic_segments"] += _shards(tmp_path, "segments", m, "slic", [{"adversary_n_segments": np.array([10 + m, 20 + m])},
                                                                             {"adversary_n_segments": np.array([30 + m])}], "-")
    pairs = [[model, seg] for model in MODELS for seg in SEGMENTATIONS]  # lists, as Snakemake hands params over
    grouped = ImageReportInputs.from_lists(inputs, models=MODELS, pairs=pairs, slic_models=MODELS)
    names = ("accuracy", "labelflip", "localised", "slic", "comparisons", "markdown")
    outputs = {name: str(tmp_path / f"{name}.out") for name in names}
    stages.write_image_tables(grouped, outputs, k=3)

    accuracy = pd.read_csv(outputs["accuracy"])
    assert accuracy.model.tolist() == MODELS and accuracy.n_adversaries.tolist() == [2, 3]
    flips = pd.read_csv(outputs["labelflip"]).set_index(["model", "segmentation"]).label_flip_rate
    assert flips.to_dict() == {(ODD_MODEL, "rect"): 0.5, (ODD_MODEL, "slic"): 1.0, ("tiny", "rect"): 1.0, ("tiny", "slic"): 0.5}
    localised = pd.read_csv(outputs["localised"])
    all_found = localised[localised.recovered == 1].set_index(["model", "segmentation"])["count"]
    assert all_found.to_dict() == {(ODD_MODEL, "rect"): 1, (ODD_MODEL, "slic"): 2, ("tiny", "rect"): 2, ("tiny", "slic"): 1}
    slic = pd.read_csv(outputs["slic"])
    assert slic.model.tolist() == MODELS and slic["mean"].tolist() == [20.0, 21.0]
    markdown = open(outputs["markdown"]).read()
    assert f"| {ODD_MODEL} | 4 |" in markdown


def test_image_figures_are_drawn_from_their_records(tmp_path, monkeypatch):
    """Fig. 8 of a model whose label contains `__` and `_` gets that model's rows, not a parsed file name's."""
    localised = pd.DataFrame([{"model": model, "segmentation": seg, "explainer": "sal", "k": 1, "recovered": r, "count": 1, "fraction": 0.5}
                              for model in (ODD_MODEL, "res", "res__net_a_slic") for seg in SEGMENTATIONS for r in (0, 1)])
    labelflip = pd.DataFrame(columns=["model", "segmentation", "explainer", "aggregation", "k", "fraction", "n", "label_flip_rate"])
    localised.to_csv(tmp_path / "localised.csv", index=False)
    labelflip.to_csv(tmp_path / "labelflip.csv", index=False)
    drawn = []
    monkeypatch.setattr(plots, "figure_recovered", lambda rows, title, path: drawn.append((rows, title, path)))
    figures = [ImageFigure("fig8", model=ODD_MODEL, segmentation="rect"), ImageFigure("fig8", model="res__net_a_slic", segmentation="slic")]
    stages.write_image_figures(str(tmp_path / "labelflip.csv"), str(tmp_path / "localised.csv"), figures, ["first.png", "second.png"])
    (rows_a, title_a, path_a), (rows_b, title_b, path_b) = drawn
    assert set(zip(rows_a.model, rows_a.segmentation)) == {(ODD_MODEL, "rect")} and path_a == "first.png"
    assert set(zip(rows_b.model, rows_b.segmentation)) == {("res__net_a_slic", "slic")} and path_b == "second.png"
    assert title_a == f"{ODD_MODEL}, rect"


def test_image_figure_records_are_checked():
    with pytest.raises(ValueError, match="needs"):
        ImageFigure("fig8", model="m")
    with pytest.raises(ValueError, match="unknown"):
        ImageFigure("fig9", model="m")
    with pytest.raises(TypeError, match="seg"):
        ImageFigure(**{"figure": "fig6", "seg": "rect"})


# ------------------------------------------------------------------ every explainer told apart
BASELINES = ["magnitude", "magnitude-mean"]


def _line_styles(figure) -> list[list[tuple]]:
    """(explainer, RGBA colour, line style) of every line, per panel."""
    return [[(line.get_label(), matplotlib.colors.to_rgba(line.get_color()), line.get_linestyle()) for line in ax.get_lines()]
            for ax in figure.axes]


def _assert_told_apart(panel: list[tuple], expected: set[str]) -> None:
    assert {name for name, _, _ in panel} == expected
    assert len({(colour, style) for _, colour, style in panel}) == len(panel), panel
    by_name = {name: (colour, style) for name, colour, style in panel}
    for method in ("sal", "ig", "gbp"):  # the colour names the base method, the line style the ensemble
        assert len({by_name[name][0] for name in by_name if name.partition("-")[0] == method}) == 1
    for ensemble in ("sg", "sg2", "vg"):
        assert len({by_name[f"{m}-{ensemble}"][1] for m in ("sal", "ig", "gbp")}) == 1


def test_fig5_draws_all_13_explainers_and_both_baselines_apart(tmp_path):
    explainers = [*BUILTIN_EXPLAINERS, *BASELINES]
    rows = [{"model": "m", "segmentation": seg, "explainer": e, "aggregation": reported_aggregation(e),
             "k": np.nan, "fraction": f, "n": 4, "label_flip_rate": f / 2} for seg in SEGMENTATIONS for e in explainers for f in (0.5, 1.0)]
    figure = plots.figure_all_explainers(pd.DataFrame(rows), "m", tmp_path / "fig5.png")
    panels = _line_styles(figure)
    assert len(panels) == 2 and (tmp_path / "fig5.png").stat().st_size > 0
    for panel in panels:
        _assert_told_apart(panel, set(explainers))


def test_audio_fig2_draws_all_13_explainers_and_the_norm_baseline_apart(tmp_path):
    explainers = [*BUILTIN_EXPLAINERS, "norm"]
    rows = [{"seed": "mean", "direction": d, "explainer": e, "k": k, "n": 3, "label_flip_rate": k / 3}
            for d in ("nosing_to_sing", "sing_to_nosing") for e in explainers for k in (1, 3)]
    for panel in _line_styles(plots.figure_audio_labelflip(pd.DataFrame(rows), tmp_path / "fig2.png")):
        _assert_told_apart(panel, set(explainers))


def test_plug_in_explainers_get_colours_of_their_own():
    styles = plots.explainer_styles([*BUILTIN_EXPLAINERS, *BASELINES, "occlusion", "deep-lift"])
    pairs = {(s["color"], s["linestyle"]) for s in styles.values()}
    assert len(pairs) == len(styles)
    assert styles["occlusion"]["color"] not in {styles[e]["color"] for e in [*BUILTIN_EXPLAINERS, *BASELINES]}
