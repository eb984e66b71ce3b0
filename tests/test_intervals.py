"""Interval columns and paired comparisons of the result tables, from fabricated per-shard files:
recomputed Wilson bounds, the exact McNemar counts, and the Markdown's marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advxai.report import comparisons, intervals, tables
from advxai.statistics import mcnemar_exact, wilson_interval
from advxai.store import write_h5

N = 12


def _labelflip_shard(path, flips: dict[str, np.ndarray]) -> str:
    """A label-flip shard with settings k = 3 and the fraction 0.5; flips per ranking as bool (items, 2)."""
    write_h5(
        path,
        {
            "ids": np.array([f"i{j}" for j in range(N)], dtype=str),
            "n_segments": np.full(N, 16),
            "k": np.array([3, 0]),
            "fraction": np.array([np.nan, 0.5]),
            "per_item_k": np.tile([3, 8], (N, 1)),
            "fewer_segments": np.zeros((N, 2), bool),
            **{f"flips/{name}": values for name, values in flips.items()},
        },
        stage="labelflip",
        params={},
    )
    return str(path)


def _flips() -> dict[str, np.ndarray]:
    first = np.arange(N) < 11
    return {
        "magnitude-mean/-": np.stack([np.arange(N) < 1, first], axis=1),  # 1 of 12 at k = 3
        "sal/mean_abs": np.stack([np.arange(N) < 11, first], axis=1),  # 11 of 12: 10 discordant, p = 2 · 0.5¹⁰
        "lime/mean": np.stack([np.arange(N) < 3, first], axis=1),
    }  # 3 of 12: 2 discordant, p = 0.5


def test_labelflip_rates_get_wilson_intervals_and_keep_their_columns(tmp_path):
    table = tables.labelflip_table({("m", "rect"): [_labelflip_shard(tmp_path / "lf.h5", _flips())]})
    with_ci = intervals.with_rate_interval(table)
    assert list(with_ci.columns) == tables.LABELFLIP_COLUMNS + intervals.INTERVAL_COLUMNS
    pd.testing.assert_frame_equal(with_ci[tables.LABELFLIP_COLUMNS], table)
    sal = with_ci[(with_ci.explainer == "sal") & (with_ci.k == 3)].iloc[0]
    assert (sal.ci_low, sal.ci_high) == pytest.approx(wilson_interval(11, 12)[1:])


def test_image_comparisons_are_exact_mcnemar_on_the_stored_items(tmp_path):
    paths = [_labelflip_shard(tmp_path / "lf.h5", _flips())]
    table = comparisons.image_comparisons({("m", "rect"): paths}, {})
    assert list(table.columns) == comparisons.IMAGE_COMPARISON_COLUMNS
    at_k3 = table[table.k == 3].set_index("explainer")
    flips = _flips()
    expected = mcnemar_exact(flips["sal/mean_abs"][:, 0], flips["magnitude-mean/-"][:, 0])
    assert (at_k3.loc["sal", "only_explainer"], at_k3.loc["sal", "only_versus"]) == (10, 0)
    assert at_k3.loc["sal", "p_value"] == pytest.approx(expected.p_value) == pytest.approx(2 * 0.5**10)
    assert at_k3.loc["sal", "significant"] and not at_k3.loc["lime", "significant"]
    assert set(table.versus) == {"magnitude-mean"}  # the `magnitude` baseline is not in this shard
    markdown = tables.labelflip_k3_markdown(
        intervals.with_rate_interval(tables.labelflip_table({("m", "rect"): paths})),
        "rect",
        ["lime", "sal"],
        {},
        3,
        table,
    )
    low, high = (100 * v for v in wilson_interval(3, 12)[1:])
    assert f"25.00 [{low:.1f}, {high:.1f}]° \\| –" in markdown  # LIME: not significantly different, marked
    assert "91.67 [" in markdown and "91.67 [64.6, 98.5] \\|" in markdown  # saliency: significant, unmarked
    assert "magnitude-mean (ours \\| paper)" in markdown


def _localised_shard(path, recovered: dict[str, list[int]]) -> str:
    write_h5(
        path,
        {
            "ids": np.array([f"i{j}" for j in range(4)], dtype=str),
            "ks": np.array([3]),
            **{f"k3/recovered/{name}": np.array(values) for name, values in recovered.items()},
        },
        stage="localised",
        params={},
    )
    return str(path)


def test_localised_histograms_and_standard_vs_ensemble(tmp_path):
    path = _localised_shard(tmp_path / "lo.h5", {"sal": [3, 3, 0, -1], "sal-sg": [0, 0, 0, -1]})
    histogram = intervals.with_histogram_interval(
        tables.localised_table({("m", "slic"): [path]}), ["model", "segmentation", "explainer", "k"]
    )
    all_found = histogram[(histogram.explainer == "sal") & (histogram.recovered == 3)].iloc[0]
    assert (all_found.ci_low, all_found.ci_high) == pytest.approx(wilson_interval(2, 3)[1:])
    table = comparisons.image_comparisons({}, {("m", "slic"): [path]})
    row = table.iloc[0]
    assert (row.explainer, row.versus, row.n, row.test) == ("sal", "sal-sg", 3, "paired_bootstrap")
    assert row.difference == pytest.approx(2 / 3)
    assert row.p_value >= 2 * 0.5**2  # two non-zero differences: never surer than the exact sign test


def _audio_labelflip(path, lime: list[bool], norm: list[bool]) -> str:
    write_h5(
        path,
        {
            "ks": np.array([3]),
            "nosing_to_sing/flips/lime": np.array([lime]),
            "nosing_to_sing/flips/norm": np.array([norm]),
            "sing_to_nosing/flips/lime": np.zeros((1, 0), bool),
            "sing_to_nosing/flips/norm": np.zeros((1, 0), bool),
        },
        stage="audio_labelflip",
        params={},
    )
    return str(path)


def test_audio_rates_per_detector_get_intervals_and_the_norm_comparison(tmp_path):
    files = {
        0: _audio_labelflip(tmp_path / "0.h5", [True, False, False, False], [True, True, True, True]),
        1: _audio_labelflip(tmp_path / "1.h5", [False, False], [True, True]),
    }
    table = intervals.with_rate_interval(tables.audio_labelflip_table(files))
    rows = table[table.direction == "nosing_to_sing"].set_index(
        table.seed.astype(str)[table.direction == "nosing_to_sing"]
    )
    rows = rows[rows.explainer == "lime"]
    assert (rows.loc["0", "ci_low"], rows.loc["0", "ci_high"]) == pytest.approx(wilson_interval(1, 4)[1:])
    assert np.isnan(rows.loc["mean", "ci_low"]) and np.isnan(rows.loc["std", "ci_high"])
    paired = comparisons.audio_comparisons(files)
    found = paired[paired.direction == "nosing_to_sing"]
    assert found[["seed", "n", "only_explainer", "only_versus"]].values.tolist() == [[0, 4, 0, 3], [1, 2, 0, 2]]
    assert paired[paired.direction == "sing_to_nosing"].n.tolist() == [0, 0]
    assert comparisons.not_significant(paired, explainer="lime", direction="nosing_to_sing", k=3)  # p = 0.25 and 0.5
    assert comparisons.not_significant(paired, explainer="lime", direction="sing_to_nosing", k=3)  # no excerpt: p = 1


def test_accuracy_intervals_count_the_labelled_images(tmp_path):
    path = tmp_path / "adv.h5"
    write_h5(
        path,
        {
            "labels": np.array([1, 2, 3, -1]),
            "clean_prediction": np.array([1, 2, 0, 5]),
            "final_prediction": np.array([7, 2, 7, 7]),
            "success": np.array([True, False, True, True]),
        },
        stage="adversaries",
        params={},
    )
    table = intervals.with_accuracy_interval(tables.accuracy_table({"m": [str(path)]}), {"m": [str(path)]})
    assert list(table.columns) == tables.ACCURACY_COLUMNS + intervals.ACCURACY_INTERVAL_COLUMNS
    row = table.iloc[0]
    assert (row.clean_top1_ci_low, row.clean_top1_ci_high) == pytest.approx(
        [100 * v for v in wilson_interval(2, 3)[1:]]
    )
    assert (row.adv_top1_ci_low, row.adv_top1_ci_high) == pytest.approx([100 * v for v in wilson_interval(1, 3)[1:]])


def test_figures_5_to_7_draw_each_interval_as_a_band(tmp_path):
    from matplotlib.collections import PolyCollection

    from advxai.names import reported_aggregation
    from advxai.report import plots

    rows = [
        {
            "model": m,
            "segmentation": "slic",
            "explainer": e,
            "aggregation": reported_aggregation(e),
            "k": np.nan,
            "fraction": f,
            "n": 8,
            "label_flip_rate": f / 2,
            "ci_low": f / 4,
            "ci_high": 3 * f / 4,
        }
        for m in ("a", "b")
        for e in ("lime", "sal", "ig", "gbp", "magnitude-mean")
        for f in (0.5, 1.0)
    ]
    table = pd.DataFrame(rows)
    for figure in (
        plots.figure_all_explainers(table, "a", tmp_path / "5.png"),
        plots.figure_standard_vs_baseline(table, "slic", tmp_path / "6.png"),
        plots.figure_models(table, "slic", tmp_path / "7.png"),
    ):
        for ax in figure.axes:
            bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
            assert len(bands) == len(ax.get_lines()) > 0
            top = bands[0].get_paths()[0].vertices[:, 1]
            assert top.min() == pytest.approx(0.125) and top.max() == pytest.approx(
                0.75
            )  # ci_low at 0.5 … ci_high at 1.0


def test_audio_band_holds_every_detector_s_interval():
    from advxai.report import plots

    rows = [
        {
            "seed": seed,
            "direction": "nosing_to_sing",
            "explainer": "lime",
            "k": 3,
            "n": 4,
            "label_flip_rate": 0.5,
            "ci_low": low,
            "ci_high": high,
        }
        for seed, low, high in ((0, 0.2, 0.7), (1, 0.1, 0.6), ("mean", np.nan, np.nan))
    ]
    envelope = plots.detector_envelope(pd.DataFrame(rows), "nosing_to_sing", "lime")
    assert envelope.loc[3].tolist() == [0.1, 0.7]


def test_write_findings_reads_the_shards_and_says_what_did_not_run(tmp_path):
    from advxai.stages import report as stages

    adversaries = tmp_path / "adv.h5"
    write_h5(adversaries, {"labels": np.array([1]), "clean_prediction": np.array([1]), "final_prediction": np.array([2]),
                           "success": np.array([True])}, stage="adversaries", params={"model": {"architecture": "resnet50"}})
    inputs = {"adversaries": [str(adversaries)], "labelflip": [_labelflip_shard(tmp_path / "lf.h5", _flips())],
              "localised": [_localised_shard(tmp_path / "lo.h5", {"sal": [3, 3, 0, -1], "sal-sg": [0, 0, 0, -1]})],
              "audio_labelflips": [], "audio_localised": []}
    outputs = {"markdown": str(tmp_path / "findings.md"), "table": str(tmp_path / "findings.csv")}
    stages.write_findings(inputs, outputs, models=["m"], pairs=[["m", "rect"]], experiment_seeds=[], k=3)
    table = pd.read_csv(outputs["table"])
    verdicts = table.drop_duplicates("finding").set_index("finding").verdict.to_dict()
    assert verdicts == {"i": "not in this run", "ii": "undecided at this N", "iii": "not in this run",
                        "iv": "undecided at this N", "v": "undecided at this N"}
    # (ii): sal flips 11 of 12 images against the baseline's 1, lime 3 of 12: both compared on the same 12
    on_par = table[(table.finding == "ii")].set_index("subject")
    assert set(on_par.index) == {"m, rect: sal", "m, rect: lime"}
    assert "n = 12" in on_par.loc["m, rect: sal", "numbers"]
    assert "# The paper's findings (§7), checked on this run" in open(outputs["markdown"]).read()
