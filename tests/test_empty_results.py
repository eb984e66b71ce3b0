"""Empty is a result: the figures label panels without data and the reports name each empty result's cause."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advxai.report import empty, plots
from advxai.report.tables import (
    AUDIO_LABELFLIP_COLUMNS,
    AUDIO_LOCALISED_COLUMNS,
    LABELFLIP_COLUMNS,
    LOCALISED_COLUMNS,
)


def panel_texts(figure) -> list[str]:
    return [" ".join(text.get_text() for text in ax.texts) for ax in figure.axes]


def flip_rows(model: str, segmentation: str) -> pd.DataFrame:
    rows = [{"model": model, "segmentation": segmentation, "explainer": e, "aggregation": "mean" if e == "lime" else "mean_abs",
             "k": np.nan, "fraction": f, "n": 2, "label_flip_rate": f} for e in ("lime", "sal") for f in (0.5, 1.0)]
    return pd.DataFrame(rows, columns=LABELFLIP_COLUMNS)


def test_fig5_of_a_model_without_results_draws_a_labelled_panel_per_segmentation(tmp_path):
    figure = plots.figure_all_explainers(pd.DataFrame(columns=LABELFLIP_COLUMNS), "never", tmp_path / "f.png", ["rect", "slic"])
    assert [ax.get_title() for ax in figure.axes] == ["never, rect", "never, slic"]
    assert all(text.startswith("no data:") and "never" in text for text in panel_texts(figure))
    assert (tmp_path / "f.png").stat().st_size > 0


def test_fig6_labels_the_empty_model_and_keeps_the_legend_on_the_drawn_one(tmp_path):
    figure = plots.figure_standard_vs_baseline(flip_rows("ten", "rect"), "rect", tmp_path / "f.png", ["ten", "never"])
    drawn, empty_panel = figure.axes
    assert drawn.lines and drawn.get_legend() is not None and not drawn.texts
    assert not empty_panel.lines and empty_panel.get_legend() is None and "no label-flip results for never" in panel_texts(figure)[1]
    nothing = plots.figure_standard_vs_baseline(pd.DataFrame(columns=LABELFLIP_COLUMNS), "rect", tmp_path / "g.png")
    assert len(nothing.axes) == 1 and panel_texts(nothing)[0].startswith("no data:")


def test_fig7_labels_explainers_without_lines(tmp_path):
    figure = plots.figure_models(flip_rows("ten", "rect"), "rect", tmp_path / "f.png")
    texts = dict(zip((ax.get_title() for ax in figure.axes), panel_texts(figure)))
    assert texts["lime, rect"] == "" and texts["sal, rect"] == ""
    assert texts["ig, rect"].startswith("no data:") and texts["gbp, rect"].startswith("no data:")


def localised_rows(counts_by_k: dict[int, list[int]]) -> pd.DataFrame:
    rows = []
    for k, counts in counts_by_k.items():
        total = sum(counts)
        rows += [{"model": "ten", "segmentation": "rect", "explainer": e, "k": k, "recovered": r, "count": c,
                  "fraction": c / total if total else np.nan} for e in ("lime", "sal") for r, c in enumerate(counts)]
    return pd.DataFrame(rows, columns=LOCALISED_COLUMNS)


def test_fig8_labels_a_k_at_which_nothing_flips_and_draws_the_others(tmp_path):
    figure = plots.figure_recovered(localised_rows({1: [0, 0], 3: [1, 0, 1, 0]}), "ten, rect", tmp_path / "f.png")
    k1, k3 = figure.axes
    assert k1.get_title() == "ten, rect, k = 1 (n = 0)" and "no refined input still flips at k = 1" in panel_texts(figure)[0]
    assert k3.patches and not k3.texts and k3.get_title() == "ten, rect, k = 3 (n = 2)"
    nothing = plots.figure_recovered(pd.DataFrame(columns=LOCALISED_COLUMNS), "never, rect", tmp_path / "g.png")
    assert len(nothing.axes) == 1 and panel_texts(nothing)[0].startswith("no data:")


def test_fig2_of_a_detector_without_excerpts_labels_both_directions(tmp_path):
    rows = [{"seed": s, "direction": d, "explainer": e, "k": k, "n": 0, "label_flip_rate": np.nan}
            for s in ("0", "mean", "std") for d in ("nosing_to_sing", "sing_to_nosing") for e in ("lime", "sal") for k in (1, 3)]
    figure = plots.figure_audio_labelflip(pd.DataFrame(rows, columns=AUDIO_LABELFLIP_COLUMNS), tmp_path / "f.png")
    assert not any(ax.lines for ax in figure.axes) and all("no adversarial excerpt" in text for text in panel_texts(figure))


def test_the_image_notes_name_each_empty_result_and_only_those():
    accuracy = pd.DataFrame({"model": ["ten", "never"], "n_images": [9, 9], "clean_top1": [10.0, 0.0], "adv_top1": [0.0, 0.0],
                             "n_adversaries": [4, 0]})
    notes = empty.image_notes(accuracy, flip_rows("ten", "rect"), localised_rows({1: [0, 0], 3: [1, 0, 1, 0]}),
                              [("ten", "rect"), ("ten", "slic"), ("never", "rect")])
    assert notes == [
        f"model `never`: 0 of 9 images — {empty.EMPTY_CAUSES['no_adversaries']}.",
        f"model `ten`, rect, localised k = 1: {empty.EMPTY_CAUSES['nothing_flips']}.",
        f"model `ten`, slic: {empty.EMPTY_CAUSES['empty_subset']} (label flips).",
    ]
    assert empty.section(notes)[:3] == ["", "## Empty results", ""] and empty.section([]) == []


def test_the_audio_notes_name_a_direction_without_excerpts_and_a_k_where_nothing_flips():
    flips = pd.DataFrame([{"seed": 0, "direction": d, "explainer": "lime", "k": 1, "n": n, "label_flip_rate": r}
                          for d, n, r in (("nosing_to_sing", 0, np.nan), ("sing_to_nosing", 3, 0.5))], columns=AUDIO_LABELFLIP_COLUMNS)
    localised = pd.DataFrame([{"seed": 0, "direction": d, "explainer": "lime", "k": 1, "recovered": r, "count": 0, "fraction": np.nan}
                              for d in ("nosing_to_sing", "sing_to_nosing", "pooled") for r in (0, 1)], columns=AUDIO_LOCALISED_COLUMNS)
    assert empty.audio_notes(flips, localised) == [
        f"detector seed 0, nosing_to_sing: {empty.EMPTY_CAUSES['no_excerpts']}.",
        f"detector seed 0, sing_to_nosing, localised k = 1: {empty.EMPTY_CAUSES['nothing_flips']}.",
    ]


@pytest.mark.parametrize("function", ["figure_all_explainers", "figure_recovered"])
def test_the_empty_figures_crashed_before(function, tmp_path):
    """The cases the issue found: no panel at all made matplotlib refuse 0 columns."""
    table = pd.DataFrame(columns=LABELFLIP_COLUMNS if function == "figure_all_explainers" else LOCALISED_COLUMNS)
    getattr(plots, function)(table, "never", tmp_path / "f.png")
    assert (tmp_path / "f.png").exists()
