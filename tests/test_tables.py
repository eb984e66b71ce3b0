"""Result tables from fabricated per-shard and per-seed files: known counts, rates and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from advxai.report import tables
from advxai.store import write_h5


def _localised_shard(path, ids, recovered: dict[int, list[int]], fewer: dict[int, list[bool]] | None = None) -> str:
    """A localised shard file as ``localised_shard`` writes it; a shard without subset items has no per-k arrays."""
    arrays = {"ids": np.array(ids, dtype=str), "ks": np.array(sorted(recovered))}
    if ids:
        for k, values in recovered.items():
            arrays[f"k{k}/kept"] = np.array(values) >= 0
            arrays[f"k{k}/recovered/sal"] = np.array(values)
            arrays[f"k{k}/fewer_segments"] = np.array((fewer or {}).get(k, [False] * len(ids)))
    write_h5(path, arrays, stage="localised", params={})
    return str(path)


def test_localised_table_reads_every_shard(tmp_path):
    """Shard 0 has no localised-subset item; the model's rows still come from shard 1."""
    empty = _localised_shard(tmp_path / "shard0.h5", [], {1: [], 3: []})
    full = _localised_shard(tmp_path / "shard1.h5", ["a", "b", "c"], {1: [1, 0, -1], 3: [2, 3, 3]})
    table = tables.localised_table({("m", "slic"): [empty, full]})
    k1 = table[table.k == 1].set_index("recovered")
    assert k1["count"].tolist() == [1, 1] and k1.fraction.tolist() == [0.5, 0.5]
    k3 = table[table.k == 3].set_index("recovered")
    assert k3["count"].tolist() == [0, 0, 1, 2]
    assert set(table.model) == {"m"} and set(table.explainer) == {"sal"}


def _labelflip_shard(path, n_segments: list[int], k: list[int], fraction: list[float], *, per_item_k: list[list[int]] | None = None,
                     flips: dict[str, list[list[bool]]] | None = None) -> str:
    """A label-flip shard as labelflip_shard writes it: settings k and fraction (NaN for a fixed k); flips per ranking
    (default: sal/mean_abs flips everywhere); with ``per_item_k``, the k of each item and its fewer-segments flags."""
    shape = (len(n_segments), len(k))
    arrays = {"ids": np.array([f"i{j}" for j in range(len(n_segments))], dtype=str), "n_segments": np.array(n_segments, dtype=int),
              "k": np.array(k), "fraction": np.array(fraction, dtype=float)}
    if per_item_k is not None:
        arrays.update(per_item_k=np.array(per_item_k), fewer_segments=np.array(per_item_k) > np.array(n_segments)[:, None])
    for name, values in (flips or {"sal/mean_abs": np.ones(shape, bool)}).items():
        arrays[f"flips/{name}"] = np.array(values, dtype=bool).reshape(shape)
    write_h5(path, arrays, stage="labelflip", params={})
    return str(path)


def test_fewer_segments_table_counts_both_experiments(tmp_path):
    """Images with fewer SLIC segments than k, per experiment and k, over all shards."""
    labelflip = [_labelflip_shard(tmp_path / "lf0.h5", [2, 11], [3, 0], [np.nan, 0.5], per_item_k=[[3, 1], [3, 5]]),
                 _labelflip_shard(tmp_path / "lf1.h5", [4], [3, 0], [np.nan, 0.5], per_item_k=[[3, 2]])]
    localised = [_localised_shard(tmp_path / "lo0.h5", [], {1: [], 3: []}),
                 _localised_shard(tmp_path / "lo1.h5", ["a", "b"], {1: [1, 0], 3: [3, 1]}, {1: [False, False], 3: [True, False]})]
    table = tables.fewer_segments_table({("m", "slic"): labelflip}, {("m", "slic"): localised})
    assert list(table.columns) == tables.FEWER_SEGMENTS_COLUMNS
    assert table.values.tolist() == [["m", "slic", "labelflip", 3, 3, 1], ["m", "slic", "localised", 1, 2, 0],
                                     ["m", "slic", "localised", 3, 2, 1]]
    markdown = tables.fewer_segments_markdown(table)
    assert "| m | slic | labelflip | 3 | 3 | 1 |" in markdown


def _rows(table: pd.DataFrame) -> list[tuple]:
    """The table's rows as tuples, floats rounded to 4 digits and NaN as None (comparable with ==)."""
    def rounded(value):
        return (None if np.isnan(value) else round(value, 4)) if isinstance(value, float) else value

    return [tuple(rounded(value) for value in row) for row in table.values.tolist()]


SWEEP = {"k": [1, 3, 0, 1], "fraction": [np.nan, np.nan, 0.5, np.nan]}  # k = 1, k = 3, half the segments, k = 1 again


def test_labelflip_table_known_rates(tmp_path):
    """Rates over every shard (an empty one included), fractions k / n where all images have n segments, a repeated k once."""
    t, f = True, False
    shards = [_labelflip_shard(tmp_path / "0.h5", [], **SWEEP, flips={"sal/mean_abs": [], "lime/mean": []}),
              _labelflip_shard(tmp_path / "1.h5", [10, 10], **SWEEP, flips={"sal/mean_abs": [[t, f, t, t], [f, f, t, f]],
                                                        "lime/mean": [[t, t, t, t], [t, t, f, t]]}),
              _labelflip_shard(tmp_path / "2.h5", [10], **SWEEP, flips={"sal/mean_abs": [[t, t, f, t]], "lime/mean": [[f, f, f, f]]})]
    mixed = [_labelflip_shard(tmp_path / "3.h5", [10, 12], **SWEEP, flips={"sal/mean_abs": [[t, t, t, t], [f, f, f, f]]})]
    table = tables.labelflip_table({("m", "slic"): shards, ("n", "rect"): mixed})
    assert list(table.columns) == tables.LABELFLIP_COLUMNS and table.index.tolist() == list(range(9))
    rows = _rows(table)
    assert rows == [
        ("m", "slic", "lime", "mean", 1, 0.1, 3, 0.6667), ("m", "slic", "lime", "mean", 3, 0.3, 3, 0.6667),
        ("m", "slic", "lime", "mean", None, 0.5, 3, 0.3333),
        ("m", "slic", "sal", "mean_abs", 1, 0.1, 3, 0.6667), ("m", "slic", "sal", "mean_abs", 3, 0.3, 3, 0.3333),
        ("m", "slic", "sal", "mean_abs", None, 0.5, 3, 0.6667),
        ("n", "rect", "sal", "mean_abs", 1, None, 2, 0.5), ("n", "rect", "sal", "mean_abs", 3, None, 2, 0.5),
        ("n", "rect", "sal", "mean_abs", None, 0.5, 2, 0.5),
    ]


def test_fewer_segments_of_two_models_and_of_a_model_without_localised_items(tmp_path):
    labelflip = {(model, "slic"): [_labelflip_shard(tmp_path / f"{model}.h5", [2, 11], [3, 0], [np.nan, 0.5], per_item_k=[[3, 1], [3, 5]])]
                 for model in ("a", "b")}
    localised = {("a", "slic"): [_localised_shard(tmp_path / "lo.h5", [], {1: [], 3: []})]}
    table = tables.fewer_segments_table(labelflip, localised)
    assert table.values.tolist() == [["a", "slic", "labelflip", 3, 2, 1], ["b", "slic", "labelflip", 3, 2, 1],
                                     ["a", "slic", "localised", 1, 0, 0], ["a", "slic", "localised", 3, 0, 0]]


def test_table_1_of_several_shards_and_of_unlabelled_images(tmp_path):
    def shard(name, labels, clean, final, success):
        write_h5(tmp_path / name, {"labels": np.array(labels), "clean_prediction": np.array(clean), "final_prediction": np.array(final),
                                   "success": np.array(success), "extra": np.zeros(len(labels))}, stage="attack", params={})
        return str(tmp_path / name)

    accuracy = tables.accuracy_table({"m": [shard("0.h5", [1, 2], [1, 2], [5, 2], [True, False]), shard("1.h5", [3], [3], [3], [False])],
                                      "bundled": [shard("2.h5", [-1], [4], [7], [True])]})
    assert list(accuracy.columns) == tables.ACCURACY_COLUMNS
    m, bundled = accuracy.iloc[0], accuracy.iloc[1]
    assert (m.n_images, m.n_labelled, m.clean_top1, m.n_adversaries) == (3, 3, 100.0, 1) and np.isclose(m.adv_top1, 100 * 2 / 3)
    assert (bundled.n_images, bundled.n_labelled, bundled.n_adversaries) == (1, 0, 1)
    assert np.isnan(bundled.clean_top1) and np.isnan(bundled.adv_top1)


def test_slic_segments_table_over_shards_and_without_adversaries(tmp_path):
    for name, counts in (("0.h5", [9, 12]), ("1.h5", [11])):
        write_h5(tmp_path / name, {"adversary_n_segments": np.array(counts)}, stage="segments", params={})
    table = tables.slic_segments_table({"m": [str(tmp_path / "0.h5"), str(tmp_path / "1.h5")], "none": []})
    assert list(table.columns) == tables.SLIC_COLUMNS
    m, none = table.iloc[0], table.iloc[1]
    assert (m["n"], m["min"], m["max"]) == (3, 9, 12) and np.isclose(m["mean"], 32 / 3) and np.isclose(m["std"], np.std([9, 12, 11]))
    assert none["n"] == 0 and np.isnan([none["mean"], none["std"], none["min"], none["max"]]).all()


# ------------------------------------------------------------------ audio: per detector, then mean ± std over detectors
def _audio_labelflip(path, up: list[bool], down: list[bool] = (), explainers: tuple[str, ...] = ("lime",)) -> str:
    """A per-seed label-flip file: each explainer's flips at k = 3 for "no sing → sing" (``up``) and "sing → no sing"."""
    arrays = {"ks": np.array([3])}
    for explainer in explainers:
        arrays[f"nosing_to_sing/flips/{explainer}"] = np.array([up], dtype=bool)
        arrays[f"sing_to_nosing/flips/{explainer}"] = np.array([list(down)], dtype=bool)
    write_h5(path, arrays, stage="audio_labelflip", params={})
    return str(path)


def _audio_localised(path, up: list[int], down: list[int] = (), empty_ks: tuple[int, ...] = ()) -> str:
    """A per-seed localised file: LIME's recovered counts at k = 1 of the refined excerpts that still flip, per direction;
    ``empty_ks``: ks at which none still flips."""
    arrays = {"ks": np.array([1, *empty_ks]), "nosing_to_sing/k1/recovered/lime": np.array(up, dtype=int),
              "sing_to_nosing/k1/recovered/lime": np.array(down, dtype=int)}
    for k in empty_ks:
        arrays.update({f"{direction}/k{k}/recovered/lime": np.zeros(0, int) for direction in ("nosing_to_sing", "sing_to_nosing")})
    write_h5(path, arrays, stage="audio_localised", params={})
    return str(path)


def test_audio_labelflip_table_is_per_seed_with_mean_and_std(tmp_path):
    table = tables.audio_labelflip_table({0: _audio_labelflip(tmp_path / "0.h5", [True, False]),
                                          1: _audio_labelflip(tmp_path / "1.h5", [True, True, True, False])})
    assert list(table.columns) == tables.AUDIO_LABELFLIP_COLUMNS
    rows = table[table.direction == "nosing_to_sing"]
    rows = rows.set_index(rows.seed.astype(str))
    assert rows.label_flip_rate.to_dict() == {"0": 0.5, "1": 0.75, "mean": 0.625, "std": 0.125}
    assert rows.n.to_dict() == {"0": 2, "1": 4, "mean": 3, "std": 1}
    empty = table[table.direction == "sing_to_nosing"]
    assert empty.label_flip_rate.isna().all()  # no excerpt in this direction for any detector


def test_audio_localised_table_known_histograms(tmp_path):
    """Per seed, direction (a missing one counts nothing) and explainer, both directions pooled; then mean and std over seeds."""
    write_h5(tmp_path / "0.h5", {"ks": np.array([1, 2]), "nosing_to_sing/k1/recovered/lime": np.array([1, 0, 1]),
                                 "sing_to_nosing/k1/recovered/lime": np.array([0]), "nosing_to_sing/k2/recovered/lime": np.array([2, 1]),
                                 "nosing_to_sing/k1/recovered/sal": np.array([1])}, stage="audio_localised", params={})
    write_h5(tmp_path / "1.h5", {"ks": np.array([1]), "nosing_to_sing/k1/recovered/lime": np.array([1]),
                                 "sing_to_nosing/k1/recovered/lime": np.zeros(0, int)}, stage="audio_localised", params={})
    table = tables.audio_localised_table({0: str(tmp_path / "0.h5"), 1: str(tmp_path / "1.h5")})
    assert list(table.columns) == tables.AUDIO_LOCALISED_COLUMNS
    rows = _rows(tables.per_seed_rows(table))
    nan, up, down = None, "nosing_to_sing", "sing_to_nosing"
    assert rows == [
        (0, up, "lime", 1, 0, 1, 0.3333), (0, up, "lime", 1, 1, 2, 0.6667),
        (0, down, "lime", 1, 0, 1, 1.0), (0, down, "lime", 1, 1, 0, 0.0),
        (0, "pooled", "lime", 1, 0, 2, 0.5), (0, "pooled", "lime", 1, 1, 2, 0.5),
        (0, up, "sal", 1, 0, 0, 0.0), (0, up, "sal", 1, 1, 1, 1.0),
        (0, down, "sal", 1, 0, 0, nan), (0, down, "sal", 1, 1, 0, nan),
        (0, "pooled", "sal", 1, 0, 0, 0.0), (0, "pooled", "sal", 1, 1, 1, 1.0),
        (0, up, "lime", 2, 0, 0, 0.0), (0, up, "lime", 2, 1, 1, 0.5), (0, up, "lime", 2, 2, 1, 0.5),
        (0, down, "lime", 2, 0, 0, nan), (0, down, "lime", 2, 1, 0, nan), (0, down, "lime", 2, 2, 0, nan),
        (0, "pooled", "lime", 2, 0, 0, 0.0), (0, "pooled", "lime", 2, 1, 1, 0.5), (0, "pooled", "lime", 2, 2, 1, 0.5),
        (1, up, "lime", 1, 0, 0, 0.0), (1, up, "lime", 1, 1, 1, 1.0),
        (1, down, "lime", 1, 0, 0, nan), (1, down, "lime", 1, 1, 0, nan),
        (1, "pooled", "lime", 1, 0, 0, 0.0), (1, "pooled", "lime", 1, 1, 1, 1.0),
    ]
    means = tables.summary_rows(table, "mean")
    assert means.direction.tolist()[:6] == [up, up, down, down, "pooled", "pooled"]  # summaries in the order the rows came
    pooled = means[(means.direction == "pooled") & (means.explainer == "lime") & (means.k == 1)].set_index("recovered")
    assert pooled["count"].tolist() == [1.0, 1.5] and pooled.fraction.tolist() == [0.25, 0.75]
    stds = tables.summary_rows(table, "std")
    assert stds[(stds.direction == "pooled") & (stds.explainer == "lime") & (stds.k == 1)].fraction.tolist() == [0.25, 0.25]
    fig3 = tables.recovered_mean_over_seeds(table)
    assert list(fig3.columns) == tables.AUDIO_LOCALISED_COLUMNS and fig3.index.tolist() == list(range(len(fig3)))
    assert fig3["count"].dtype == fig3.fraction.dtype == np.float64 and set(fig3.direction) == {"pooled"}


def test_audio_svds_table_known_rows(tmp_path):
    table = tables.audio_svds_table([_svds_csv(tmp_path, 0, 10.0), _svds_csv(tmp_path, 1, 12.0)])
    assert list(table.columns) == tables.AUDIO_SVDS_COLUMNS and table.index.tolist() == [0, 1, 2, 3]
    assert table.seed.tolist() == [0, 1, "mean", "std"]
    assert table.error.tolist() == [10.0, 12.0, 11.0, 1.0] and table.threshold.tolist() == [0.5, 0.5, 0.5, 0.0]


def test_audio_report_compares_each_detector_with_the_paper(tmp_path):
    """Counts and rates are per detector (mean ± std), not summed over detectors, beside the paper's one detector."""
    svds = tables.audio_svds_table([_svds_csv(tmp_path, 0, 10.0), _svds_csv(tmp_path, 1, 12.0)])
    labelflip = tables.audio_labelflip_table({0: _audio_labelflip(tmp_path / "f0.h5", [True, False]),
                                              1: _audio_labelflip(tmp_path / "f1.h5", [True, True, True, False])})
    localised = tables.audio_localised_table({0: _audio_localised(tmp_path / "l0.h5", [1, 0]),
                                              1: _audio_localised(tmp_path / "l1.h5", [1, 1, 1, 0])})
    report = tables.audio_report(svds, labelflip, localised, k=3)
    assert "| error | 11.00 ± 1.00 | 11.54 ± 0.96 |" in report
    assert "| lime | 62.50 ± 12.50 \\| 41.00 | – \\| 32.00 |" in report  # per detector, not (1 + 3) / (2 + 4) pooled
    assert "| 1 | 3.00 ± 1.00 | 52 | 62.50 ± 12.50 |" in report  # refined excerpts per detector, not 6 summed
    fig3 = tables.recovered_mean_over_seeds(localised)
    assert fig3[fig3.recovered == 1].fraction.tolist() == [0.625]


AUDIO_REPORT_OF_TWO_DETECTORS = """\
# Audio domain: results beside the paper's (docs/method.md §1.6, §4, §9)

## Singing-voice detector, test set (%; mean ± std over 2 detectors)

| metric | ours | paper (Jamendo) |
|---|---|---|
| error | 11.00 ± 1.00 | 11.54 ± 0.96 |
| recall | 90.00 ± 0.00 | 89.61 ± 1.71 |
| specificity | 88.00 ± 0.00 | 87.46 ± 1.00 |

The experiments below ran on 2 detector(s), each on its own; the paper ran them on one detector.
Ours: mean ± std over 2 detectors, of each detector's result (docs/audio-detectors.md).

## Label-flip rate (%) at k = 3 (ours \\| paper)

| explainer | no sing → sing | sing → no sing |
|---|---|---|
| lime | 75.00 ± 25.00° \\| 41.00 | 50.00 ± 50.00 \\| 32.00 |
| sal | 75.00 ± 25.00 \\| – | 50.00 ± 50.00° \\| – |

°: no detector's rate differs significantly from the norm baseline's on the same excerpts (exact McNemar, p ≥ 0.05; \
results/tables/audio_comparisons.csv). Each detector's 95 % Wilson interval: results/tables/audio_labelflip.csv.

## Localised experiment, LIME, both directions pooled

| k | refined excerpts that still flip, per detector (ours) | paper | all k recovered (%) |
|---|---|---|---|
| 1 | 3.00 ± 0.00 | 52 | 83.33 ± 16.67 |
| 3 | 0.00 ± 0.00 | 146 | – |
"""


def test_audio_report_marks_rates_no_better_than_the_norm_and_pools_both_directions(tmp_path):
    """A rate whose McNemar test against the norm is not significant gets the mark; only LIME has the paper's rate;
    the localised rows count both directions."""
    svds = tables.audio_svds_table([_svds_csv(tmp_path, 0, 10.0), _svds_csv(tmp_path, 1, 12.0)])
    both = ("lime", "sal")
    flips = tables.audio_labelflip_table({0: _audio_labelflip(tmp_path / "f0.h5", [True, False], [True, True], both),
                                          1: _audio_labelflip(tmp_path / "f1.h5", [True, True], [False, False], both)})
    recovered = tables.audio_localised_table({0: _audio_localised(tmp_path / "l0.h5", [1, 0], [1], empty_ks=(3,)),
                                              1: _audio_localised(tmp_path / "l1.h5", [1], [1, 1], empty_ks=(3,))})
    comparisons = pd.DataFrame([{"explainer": "lime", "direction": "nosing_to_sing", "k": 3, "p_value": 0.5},
                                {"explainer": "lime", "direction": "sing_to_nosing", "k": 3, "p_value": 0.01},
                                {"explainer": "sal", "direction": "sing_to_nosing", "k": 3, "p_value": 0.5},
                                {"explainer": "sal", "direction": "nosing_to_sing", "k": 1, "p_value": 0.5}])
    report = tables.audio_report(svds, flips, recovered, comparisons=comparisons)  # k = 3 by default
    assert report == AUDIO_REPORT_OF_TWO_DETECTORS  # rates per detector, 3 refined excerpts each of both directions, none at k = 3


def test_audio_report_of_one_detector_shows_its_values_without_a_spread(tmp_path):
    """With one trained and attacked detector there is no spread to show: no "± 0.00", and the report says n = 1."""
    svds = tables.audio_svds_table([_svds_csv(tmp_path, 0, 10.0)])
    labelflip = tables.audio_labelflip_table({0: _audio_labelflip(tmp_path / "f0.h5", [True, False])})
    localised = tables.audio_localised_table({0: _audio_localised(tmp_path / "l0.h5", [1, 0])})
    report = tables.audio_report(svds, labelflip, localised, k=3)
    assert "± 0.00" not in report
    assert "| error | 10.00 | 11.54 ± 0.96 |" in report and "| lime | 50.00 \\| 41.00 |" in report
    assert "| 1 | 2.00 | 52 | 50.00 |" in report
    assert report.count("one detector (n = 1), so no spread") == 2
    assert "Ours: one detector (n = 1), so no spread, of each detector's result" in report
    assert tables.AUDIO_RATE_LEGEND not in report  # no comparisons, no marks to explain


def _svds_csv(tmp_path, seed: int, error: float) -> str:
    path = tmp_path / f"svds{seed}.csv"
    pd.DataFrame([{"seed": seed, "threshold": 0.5, "error": error, "recall": 90.0, "specificity": 88.0}]).to_csv(path, index=False)
    return str(path)


def test_table_1_says_over_how_many_labelled_images_top_1_is_computed(tmp_path):
    """4 images, one without an ImageNet class (label -1): clean top-1 is 2 of the 3 labelled, and Table 1 says "3"."""
    path = tmp_path / "adversaries.h5"
    write_h5(path, {"labels": np.array([-1, 3, 5, 7]), "clean_prediction": np.array([3, 3, 5, 0]),
                    "final_prediction": np.array([9, 9, 5, 0]), "success": np.array([True, True, False, False])}, stage="attack", params={})
    accuracy = tables.accuracy_table({"m": [str(path)]})
    row = accuracy.iloc[0]
    assert (row.n_images, row.n_labelled, row.n_adversaries) == (4, 3, 2)
    assert np.isclose(row.clean_top1, 100 * 2 / 3) and np.isclose(row.adv_top1, 100 / 3)
    markdown = tables.accuracy_markdown(accuracy, {})
    assert "| m | 4 | 3 | 66.67 | – | 33.33 | – | 2 | – |" in markdown
    assert "over the labelled images" in markdown


def image_report_inputs():
    """Table 1 with one interval, rates with and without intervals (and a wrong aggregation to ignore), the baseline, two
    comparisons (one not significant), Table 6 and the fewer-segments count, for a model labelled as ResNet-50."""
    accuracy = pd.DataFrame([{"model": "m", "n_images": 4, "clean_top1": 50.0, "adv_top1": 25.0, "n_adversaries": 3, "n_labelled": 4,
                              "clean_top1_ci_low": 15.0, "clean_top1_ci_high": 85.0,
                              "adv_top1_ci_low": np.nan, "adv_top1_ci_high": np.nan}])

    def rate(explainer, aggregation, seg, value, low, high):
        return {"model": "m", "segmentation": seg, "explainer": explainer, "aggregation": aggregation, "k": 3, "fraction": np.nan,
                "n": 4, "label_flip_rate": value, "ci_low": low, "ci_high": high}

    labelflip = pd.DataFrame([rate("lime", "mean", "slic", 0.5, 0.15, 0.85), rate("sal", "mean_abs", "slic", 0.25, np.nan, np.nan),
                              rate("sal", "mean", "slic", 0.9, 0.5, 1.0), rate("magnitude-mean", "-", "slic", 0.75, 0.3, 0.95),
                              rate("ig-sg", "mean_abs", "rect", 1.0, 0.5, 1.0)])
    key = {"model": "m", "segmentation": "slic", "experiment": "labelflip", "k": 3, "versus": "magnitude-mean"}
    comparisons = pd.DataFrame([{**key, "explainer": "lime", "aggregation": "mean", "p_value": 0.5},
                                {**key, "explainer": "sal", "aggregation": "mean_abs", "p_value": 0.01}])
    slic = pd.DataFrame([{"model": "m", "n": 3, "mean": 10.5, "std": 1.25, "min": 9, "max": 12}])
    fewer = pd.DataFrame([{"model": "m", "segmentation": "slic", "experiment": "labelflip", "k": 3, "n": 4, "n_fewer_segments": 1}])
    return accuracy, labelflip, slic, {"m": "resnet50"}, fewer, comparisons


IMAGE_REPORT_LINES = [  # the report of image_report_inputs(), line by line
    "# Image domain: results beside the paper's (docs/method.md §9)",
    '',
    '## Table 1: top-1 accuracy (%) and adversaries',
    '',
    '| model | images | labelled | clean top-1 | paper | adv top-1 | paper | adversaries | paper |',
    '|---|---|---|---|---|---|---|---|---|',
    '| m | 4 | 4 | 50.00 [15.0, 85.0] | 76.13 | 25.00 | 0.16 | 3 | 49925 |',
    '',
    'Top-1 accuracies are over the labelled images (those with an ImageNet class); adversaries over all images.',
    '',
    '## Table 2: label-flip rate (%), SLIC, standard explainers, k = 3',
    '',
    '| model | lime (ours \\| paper) | sal (ours \\| paper) | magnitude-mean (ours \\| paper) |',
    '|---|---|---|---|',
    '| m | 50.00 [15.0, 85.0]° \\| 44.70 | 25.00 \\| 27.10 | 75.00 [30.0, 95.0] \\| – |',
    '',
    tables.RATE_LEGEND,
    '',
    '## Table 3: label-flip rate (%), SLIC, ensembles, k = 3',
    '',
    '| model | ig-sg (ours \\| paper) | magnitude-mean (ours \\| paper) |',
    '|---|---|---|',
    '| m | – \\| 33.26 | 75.00 [30.0, 95.0] \\| – |',
    '',
    tables.RATE_LEGEND,
    '',
    '## Table 7: label-flip rate (%), rectangles, standard explainers, k = 3',
    '',
    '| model | lime (ours \\| paper) | sal (ours \\| paper) | magnitude-mean (ours \\| paper) |',
    '|---|---|---|---|',
    '| m | – \\| 17.52 | – \\| 15.36 | – \\| – |',
    '',
    tables.RATE_LEGEND,
    '',
    '## Table 8: label-flip rate (%), rectangles, ensembles, k = 3',
    '',
    '| model | ig-sg (ours \\| paper) | magnitude-mean (ours \\| paper) |',
    '|---|---|---|',
    '| m | 100.00 [50.0, 100.0] \\| 17.78 | – \\| – |',
    '',
    tables.RATE_LEGEND,
    '',
    '## Table 6: SLIC segments per adversary',
    '',
    '| model | adversaries | segments (ours) | paper | range |',
    '|---|---|---|---|---|',
    '| m | 3 | 10.500 ± 1.250 | 11.042 ± 2.307 | 9–12 |',
    '',
    '## Images with fewer segments than k',
    '',
    'Kept as the authors kept them: every segment is added back (the full adversary) and the image stays in the denominator.',
    '',
    '| model | segmentation | experiment | k | images | fewer segments than k |',
    '|---|---|---|---|---|---|',
    '| m | slic | labelflip | 3 | 4 | 1 |',
]


def test_image_report_known_answer():
    accuracy, labelflip, slic, architectures, fewer, comparisons = image_report_inputs()
    report = tables.image_report(accuracy, labelflip, slic, architectures, 3, fewer, comparisons)
    assert report.split("\n") == [*IMAGE_REPORT_LINES, ""]
    plain = tables.image_report(accuracy, labelflip.drop(columns=["ci_low", "ci_high"]), None, architectures, 3)
    assert tables.RATE_LEGEND not in plain and "°" not in plain and "Table 6" not in plain and "fewer segments" not in plain
    assert "| m | 50.00 \\| 44.70 | 25.00 \\| 27.10 |" in plain.split("\n")  # no interval, no baseline column without comparisons
    slic_only = tables.image_report(accuracy, labelflip[labelflip.segmentation == "slic"], None, architectures, 3)
    assert "Table 2" in slic_only and "Table 7" not in slic_only and "Table 8" not in slic_only
    by_default = tables.labelflip_k3_markdown(labelflip, "slic", ["lime"], architectures)
    assert by_default == tables.labelflip_k3_markdown(labelflip, "slic", ["lime"], architectures, k=3)
    assert "| m | 50.00 [15.0, 85.0] \\| 44.70 |" in by_default


def test_tables_of_no_input_keep_their_columns():
    assert list(tables.accuracy_table({}).columns) == tables.ACCURACY_COLUMNS
    assert list(tables.labelflip_table({}).columns) == tables.LABELFLIP_COLUMNS
    assert list(tables.localised_table({}).columns) == tables.LOCALISED_COLUMNS
    assert list(tables.fewer_segments_table({}, {}).columns) == tables.FEWER_SEGMENTS_COLUMNS
    assert list(tables.slic_segments_table({}).columns) == tables.SLIC_COLUMNS
    assert list(tables.audio_labelflip_table({}).columns) == tables.AUDIO_LABELFLIP_COLUMNS
    assert list(tables.audio_localised_table({}).columns) == tables.AUDIO_LOCALISED_COLUMNS


def test_architectures_come_from_the_first_adversary_file_and_unknown_ones_have_no_paper_value(tmp_path):
    write_h5(tmp_path / "a.h5", {"x": np.zeros(1)}, stage="attack", params={"model": {"architecture": "vgg16"}})
    assert tables.model_architectures({"m": [str(tmp_path / "a.h5")], "empty": []}) == {"m": "vgg16"}
    slic = pd.DataFrame([{"model": "mine", "n": 2, "mean": 9.0, "std": 1.0, "min": 8, "max": 10}])
    assert tables.slic_markdown(slic, {}).split("\n")[-1] == "| mine | 2 | 9.000 ± 1.000 | – | 8–10 |"


def test_edge_rows_of_the_image_tables(tmp_path):
    """An attack that succeeds towards the true label (the clean prediction was wrong) counts as correct;
    one image gives its k / n fraction; a k without a refined image that still flips counts nothing."""
    write_h5(tmp_path / "adv.h5", {"labels": np.array([1, 2]), "clean_prediction": np.array([2, 2]),
                                   "final_prediction": np.array([1, 2]), "success": np.array([True, False])}, stage="attack", params={})
    accuracy = tables.accuracy_table({"m": [str(tmp_path / "adv.h5")]}).iloc[0]
    assert (accuracy.clean_top1, accuracy.adv_top1) == (50.0, 100.0)
    one_image = _labelflip_shard(tmp_path / "lf.h5", [10], **SWEEP, flips={"sal/mean_abs": [[True, False, True, True]]})
    single = tables.labelflip_table({("m", "rect"): [one_image]})
    assert single[single.k == 3].fraction.tolist() == [0.3]
    lost = tables.localised_table({("m", "slic"): [_localised_shard(tmp_path / "lo.h5", ["a", "b"], {1: [1, 0], 3: [-1, -1]})]})
    assert lost[lost.k == 3]["count"].tolist() == [0, 0, 0, 0] and lost[lost.k == 3].fraction.isna().all()
    _, labelflip, _, _, _, comparisons = image_report_inputs()
    no_baseline = labelflip.query("explainer != 'magnitude-mean'")
    markdown = tables.labelflip_k3_markdown(no_baseline, "slic", ["lime"], {}, comparisons=comparisons)
    assert "magnitude-mean" not in markdown
