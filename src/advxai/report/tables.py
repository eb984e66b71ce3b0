"""Result tables: per-shard HDF5 files → CSV (the column names are a contract) and Markdown.

Markdown tables put the paper's value beside ours wherever the model is one of the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..names import AUDIO_DIRECTIONS, reported_aggregation
from ..store import read_h5, read_provenance
from . import paper_values
from .comparisons import not_significant

ACCURACY_COLUMNS = ["model", "n_images", "clean_top1", "adv_top1", "n_adversaries", "n_labelled"]
LABELFLIP_COLUMNS = ["model", "segmentation", "explainer", "aggregation", "k", "fraction", "n", "label_flip_rate"]
LOCALISED_COLUMNS = ["model", "segmentation", "explainer", "k", "recovered", "count", "fraction"]
SLIC_COLUMNS = ["model", "n", "mean", "std", "min", "max"]
FEWER_SEGMENTS_COLUMNS = ["model", "segmentation", "experiment", "k", "n", "n_fewer_segments"]



def _concat(paths: Sequence[str], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    parts = [read_h5(p, list(names) if names else None) for p in paths]
    keys = parts[0].keys() if parts else []
    return {k: np.concatenate([p[k] for p in parts]) for k in keys if all(k in p for p in parts)}


def accuracy_table(adversaries: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Table 1: clean top-1, top-1 with each image replaced by its adversary where one exists, #adversaries.

    The accuracies are over the labelled images (``n_labelled``): the bundled photographs without
    an ImageNet class carry label -1 and are attacked, but count in no accuracy.
    """
    rows = []
    for model, paths in adversaries.items():
        data = _concat(paths, ["labels", "clean_prediction", "final_prediction", "success"])
        labelled = data["labels"] >= 0
        attacked = np.where(data["success"], data["final_prediction"], data["clean_prediction"])
        percent = lambda predictions: (100.0 * float(np.mean(predictions[labelled] == data["labels"][labelled]))
                                       if labelled.any() else np.nan)
        rows.append({"model": model, "n_images": len(data["labels"]), "n_labelled": int(labelled.sum()),
                     "clean_top1": percent(data["clean_prediction"]),
                     "adv_top1": percent(attacked), "n_adversaries": int(data["success"].sum())})
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def labelflip_rows(model: str, segmentation: str, paths: Sequence[str]) -> list[dict]:
    """Label-flip rates of every ranking and setting (k, or fraction of segments) of one model and segmentation."""
    parts = [read_h5(p) for p in paths]
    parts = [p for p in parts if len(p["ids"])]
    if not parts:
        return []
    k, fraction, n_segments = parts[0]["k"], parts[0]["fraction"], np.concatenate([p["n_segments"] for p in parts])
    rows = []
    for name in sorted(n for n in parts[0] if n.startswith("flips/")):
        _, explainer, aggregation = name.split("/")
        flips = np.concatenate([p[name] for p in parts])
        for j in range(flips.shape[1]):
            is_fraction = not np.isnan(fraction[j])
            row_fraction = fraction[j] if is_fraction else (k[j] / n_segments[0] if np.all(n_segments == n_segments[0]) else np.nan)
            rows.append({"model": model, "segmentation": segmentation, "explainer": explainer, "aggregation": aggregation,
                         "k": np.nan if is_fraction else int(k[j]), "fraction": row_fraction, "n": flips.shape[0],
                         "label_flip_rate": float(flips[:, j].mean())})
    return rows


def labelflip_table(labelflips: Mapping[tuple[str, str], Sequence[str]]) -> pd.DataFrame:
    """All label-flip rows; a fixed k that the sweep repeats appears once."""
    rows = [row for (model, seg), paths in labelflips.items() for row in labelflip_rows(model, seg, paths)]
    table = pd.DataFrame(rows, columns=LABELFLIP_COLUMNS)
    return table.drop_duplicates(subset=["model", "segmentation", "explainer", "aggregation", "k", "fraction"]).reset_index(drop=True)


def localised_table(localised: Mapping[tuple[str, str], Sequence[str]]) -> pd.DataFrame:
    """Histogram of recovered segments r ∈ 0..k per explainer among refined inputs that still flip (Fig. 8).

    The ks and explainer names come from every shard: a shard without a localised-subset item
    stores no per-explainer arrays.
    """
    rows = []
    for (model, seg), paths in localised.items():
        parts = [read_h5(p) for p in paths]
        ks = sorted({int(k) for p in parts for k in p["ks"]})
        for k in ks:
            prefix = f"k{k}/recovered/"
            for name in sorted({n for p in parts for n in p if n.startswith(prefix)}):
                recovered = np.concatenate([p[name] for p in parts if name in p])
                recovered = recovered[recovered >= 0]
                for r in range(int(k) + 1):
                    count = int(np.sum(recovered == r))
                    rows.append({"model": model, "segmentation": seg, "explainer": name.removeprefix(prefix), "k": int(k),
                                 "recovered": r, "count": count, "fraction": count / len(recovered) if len(recovered) else np.nan})
    return pd.DataFrame(rows, columns=LOCALISED_COLUMNS)


def fewer_segments_table(labelflips: Mapping[tuple[str, str], Sequence[str]],
                         localised: Mapping[tuple[str, str], Sequence[str]]) -> pd.DataFrame:
    """How many subset images have fewer segments than k, per experiment and fixed k (docs/fewer-segments.md).

    They are kept, as the authors kept them: top-k adds back every segment, so the hybrid is the
    full adversary. A sweep over fractions of the segments never asks for more than an image has.
    """
    rows = []
    for (model, seg), paths in labelflips.items():
        parts = [p for p in (read_h5(path, ["ids", "k", "fraction", "fewer_segments"]) for path in paths) if len(p["ids"])]
        if parts:
            fewer = np.concatenate([p["fewer_segments"] for p in parts])
            settings: dict[int, int] = {}  # fixed k -> its first setting column (the sweep may repeat the fixed k)
            for j, (k, fraction) in enumerate(zip(parts[0]["k"], parts[0]["fraction"])):
                if np.isnan(fraction):
                    settings.setdefault(int(k), j)
            rows += [{"model": model, "segmentation": seg, "experiment": "labelflip", "k": k, "n": len(fewer),
                      "n_fewer_segments": int(fewer[:, j].sum())} for k, j in sorted(settings.items())]
    for (model, seg), paths in localised.items():
        parts = [read_h5(path) for path in paths]
        for k in sorted({int(k) for p in parts for k in p["ks"]}):
            fewer = np.concatenate([p[f"k{k}/fewer_segments"] for p in parts if len(p["ids"])] or [np.zeros(0, bool)])
            rows.append({"model": model, "segmentation": seg, "experiment": "localised", "k": k, "n": len(fewer),
                         "n_fewer_segments": int(fewer.sum())})
    return pd.DataFrame(rows, columns=FEWER_SEGMENTS_COLUMNS)


def slic_segments_table(segments: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Table 6: SLIC segments of every successful adversary (the segments jobs count them all, not only the subsets)."""
    rows = []
    for model, paths in segments.items():
        counts = _concat(paths, ["adversary_n_segments"]).get("adversary_n_segments", np.zeros(0))
        stat = lambda name: getattr(counts, name)() if len(counts) else np.nan
        rows.append({"model": model, "n": len(counts), **{name: stat(name) for name in ("mean", "std", "min", "max")}})
    return pd.DataFrame(rows, columns=SLIC_COLUMNS)


def model_architectures(adversaries: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Model label → architecture, from the provenance of its adversary files."""
    return {model: read_provenance(paths[0])["params"]["model"]["architecture"] for model, paths in adversaries.items() if paths}


# ------------------------------------------------------------------------------------ Markdown
def _fmt(value, digits=2) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _with_interval(row, column: str) -> str:
    """``column``'s value, with its ``<column>_ci_low`` / ``_ci_high`` interval where the table has one."""
    cell = _fmt(getattr(row, column))
    low, high = getattr(row, f"{column}_ci_low", np.nan), getattr(row, f"{column}_ci_high", np.nan)
    return cell if np.isnan(low) else f"{cell} [{_fmt(low, 1)}, {_fmt(high, 1)}]"


def accuracy_markdown(table: pd.DataFrame, architectures: Mapping[str, str]) -> str:
    rows = []
    for r in table.itertuples():
        paper = paper_values.ACCURACY.get(architectures.get(r.model, ""), (None, None, None))
        rows.append([r.model, str(r.n_images), str(r.n_labelled), _with_interval(r, "clean_top1"), _fmt(paper[0]),
                     _with_interval(r, "adv_top1"), _fmt(paper[1]), str(r.n_adversaries), str(paper[2] or "–")])
    header = ["model", "images", "labelled", "clean top-1", "paper", "adv top-1", "paper", "adversaries", "paper"]
    note = "Top-1 accuracies are over the labelled images (those with an ImageNet class); adversaries over all images."
    return markdown_table(header, rows) + "\n\n" + note


NOT_SIGNIFICANT_MARK = "°"
MARKDOWN_BASELINE = "magnitude-mean"  # the paper's Fig. 6 baseline; the comparison table holds `magnitude` too
RATE_LEGEND = (f"Ours: rate [95 % Wilson interval]; {NOT_SIGNIFICANT_MARK} marks a rate not significantly different from the "
               f"{MARKDOWN_BASELINE} baseline's on the same images (exact McNemar, p ≥ 0.05; results/tables/image_comparisons.csv).")


def rate_cell(hit: pd.DataFrame, comparisons: pd.DataFrame | None, **key) -> str:
    """A rate (%) with its interval where the table has one, marked where its comparison with the
    baseline (the ``comparisons`` row matching ``key``) is not significant."""
    if not len(hit):
        return "–"
    row = hit.iloc[0]
    cell = _fmt(100 * row.label_flip_rate)
    if "ci_low" in hit and not np.isnan(row.ci_low):
        cell += f" [{_fmt(100 * row.ci_low, 1)}, {_fmt(100 * row.ci_high, 1)}]"
    if comparisons is not None and not_significant(comparisons, **key):
        cell += NOT_SIGNIFICANT_MARK
    return cell


def labelflip_k3_markdown(table: pd.DataFrame, segmentation: str, explainers: Sequence[str], architectures: Mapping[str, str], k: int = 3,
                          comparisons: pd.DataFrame | None = None) -> str:
    """One of Tables 2, 3, 7, 8: label-flip rate (%) at k, ours | paper per explainer; with ``comparisons``,
    the baseline's own rate in a last column and each rate marked where it is not significantly different."""
    rows = []
    baseline = [MARKDOWN_BASELINE] if comparisons is not None and (table.explainer == MARKDOWN_BASELINE).any() else []
    for model in table["model"].unique():
        paper = paper_values.LABELFLIP_K3.get(segmentation, {}).get(architectures.get(model, ""), {})
        cells = [model]
        for explainer in [*explainers, *baseline]:
            aggregation = reported_aggregation(explainer)  # the baseline's "-" included
            hit = table[(table.model == model) & (table.segmentation == segmentation) & (table.explainer == explainer)
                        & (table.aggregation == aggregation) & (table.k == k)]
            key = {"model": model, "segmentation": segmentation, "experiment": "labelflip", "explainer": explainer,
                   "aggregation": aggregation, "k": k, "versus": MARKDOWN_BASELINE}
            cells.append(f"{rate_cell(hit, comparisons, **key)} \\| {_fmt(paper.get(explainer))}")
        rows.append(cells)
    return markdown_table(["model"] + [f"{e} (ours \\| paper)" for e in [*explainers, *baseline]], rows)


def slic_markdown(table: pd.DataFrame, architectures: Mapping[str, str]) -> str:
    rows = []
    for r in table.itertuples():
        paper = paper_values.SLIC_SEGMENTS.get(architectures.get(r.model, ""))
        ours, theirs = f"{_fmt(r.mean, 3)} ± {_fmt(r.std, 3)}", f"{paper[0]:.3f} ± {paper[1]:.3f}" if paper else "–"
        rows.append([r.model, str(r.n), ours, theirs, f"{r.min}–{r.max}"])
    return markdown_table(["model", "adversaries", "segments (ours)", "paper", "range"], rows)


def fewer_segments_markdown(table: pd.DataFrame) -> str:
    rows = [[r.model, r.segmentation, r.experiment, str(r.k), str(r.n), str(r.n_fewer_segments)] for r in table.itertuples()]
    return markdown_table(["model", "segmentation", "experiment", "k", "images", "fewer segments than k"], rows)


def image_report(accuracy: pd.DataFrame, labelflip: pd.DataFrame, slic: pd.DataFrame | None, architectures: Mapping[str, str], k: int,
                 fewer_segments: pd.DataFrame | None = None, comparisons: pd.DataFrame | None = None) -> str:
    """Tables 1, 2, 3, 6, 7, 8 in Markdown, and how many images had fewer segments than k."""
    explainers = set(labelflip.explainer)
    standard = [e for e in paper_values.STANDARD if e in explainers]
    ensembles = [e for e in paper_values.ENSEMBLES if e in explainers]
    parts = ["# Image domain: results beside the paper's (docs/method.md §9)", "", "## Table 1: top-1 accuracy (%) and adversaries", "",
             accuracy_markdown(accuracy, architectures)]
    for number, seg, names, title in ((2, "slic", standard, "SLIC, standard explainers"), (3, "slic", ensembles, "SLIC, ensembles"),
                                      (7, "rect", standard, "rectangles, standard explainers"),
                                      (8, "rect", ensembles, "rectangles, ensembles")):
        if names and (labelflip.segmentation == seg).any():
            parts += ["", f"## Table {number}: label-flip rate (%), {title}, k = {k}", "",
                      labelflip_k3_markdown(labelflip, seg, names, architectures, k, comparisons)]
            parts += ["", RATE_LEGEND] if comparisons is not None else []
    if slic is not None:
        parts += ["", "## Table 6: SLIC segments per adversary", "", slic_markdown(slic, architectures)]
    if fewer_segments is not None and len(fewer_segments):
        parts += ["", "## Images with fewer segments than k", "",
                  "Kept as the authors kept them: every segment is added back (the full adversary) and the image stays in the denominator.",
                  "", fewer_segments_markdown(fewer_segments)]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------ audio
# The paper attacked and explained one detector. Each detector's results are a table of their own
# (rows per seed), summarised by ``mean`` and ``std`` rows over detectors (docs/audio-detectors.md);
# counts are never summed over detectors.
AUDIO_SVDS_COLUMNS = ["seed", "threshold", "error", "recall", "specificity"]
AUDIO_LABELFLIP_COLUMNS = ["seed", "direction", "explainer", "k", "n", "label_flip_rate"]
AUDIO_LOCALISED_COLUMNS = ["seed", "direction", "explainer", "k", "recovered", "count", "fraction"]
SEED_SUMMARIES = ("mean", "std")


def with_seed_summary(per_seed: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Per-seed rows, then a ``mean`` and a ``std`` row (population std over seeds) of ``values`` per ``by`` group.

    NaN values (a detector without excerpts in a direction) are left out of the mean and std.
    """
    numbers = per_seed.astype({v: float for v in values})
    if by:
        grouped = numbers.groupby(list(by), sort=False)[list(values)]
        mean, std = grouped.mean().reset_index(), grouped.std(ddof=0).reset_index()
    else:
        mean, std = numbers[list(values)].mean().to_frame().T, numbers[list(values)].std(ddof=0).to_frame().T
    summary = pd.concat([mean.assign(seed="mean"), std.assign(seed="std")], ignore_index=True)
    # object columns keep the per-seed counts integer beside the fractional means
    return pd.concat([per_seed.astype({c: object for c in ["seed", *values]}), summary.astype({v: object for v in values})],
                     ignore_index=True)[list(per_seed.columns)]


def per_seed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of single detectors (without the ``mean`` and ``std`` rows)."""
    return table[~table.seed.astype(str).isin(SEED_SUMMARIES)]


def summary_rows(table: pd.DataFrame, statistic: str) -> pd.DataFrame:
    """The ``mean`` or ``std`` rows over detectors."""
    return table[table.seed.astype(str) == statistic]


def audio_svds_table(evaluation_csvs: Sequence[str]) -> pd.DataFrame:
    """Per-seed detector scores plus ``mean`` and ``std`` rows (population std over seeds)."""
    per_seed = pd.concat([pd.read_csv(p) for p in evaluation_csvs], ignore_index=True)[AUDIO_SVDS_COLUMNS]
    return with_seed_summary(per_seed, [], AUDIO_SVDS_COLUMNS[1:])


def audio_labelflip_table(labelflips: Mapping[int, str]) -> pd.DataFrame:
    """Label-flip rates per detector seed, direction, explainer and k, plus their mean and std over detectors."""
    rows = []
    for seed, path in labelflips.items():
        data = read_h5(path)
        for direction in AUDIO_DIRECTIONS.values():
            prefix = f"{direction}/flips/"
            for name in sorted(n for n in data if n.startswith(prefix)):
                flips = data[name]
                for j, k in enumerate(data["ks"]):
                    rows.append({"seed": seed, "direction": direction, "explainer": name.removeprefix(prefix), "k": int(k),
                                 "n": flips.shape[1], "label_flip_rate": float(flips[j].mean()) if flips.shape[1] else np.nan})
    per_seed = pd.DataFrame(rows, columns=AUDIO_LABELFLIP_COLUMNS)
    return with_seed_summary(per_seed, ["direction", "explainer", "k"], ["n", "label_flip_rate"])


def _histogram_rows(key: dict, recovered: np.ndarray, k: int) -> list[dict]:
    return [
        {**key, "k": k, "recovered": r, "count": int(np.sum(recovered == r)),
         "fraction": float(np.mean(recovered == r)) if len(recovered) else np.nan} for r in range(k + 1)
    ]


def audio_localised_table(localised: Mapping[int, str]) -> pd.DataFrame:
    """Recovered-segment histograms per seed, direction and explainer, plus both directions pooled;
    then their mean and std over detectors."""
    rows = []
    for seed, path in localised.items():
        data = read_h5(path)
        for k in data["ks"]:
            k = int(k)
            explainers = sorted({n.rsplit("/", 1)[1] for n in data if f"/k{k}/recovered/" in n})
            for explainer in explainers:
                per_direction = {d: data.get(f"{d}/k{k}/recovered/{explainer}", np.zeros(0, int)) for d in AUDIO_DIRECTIONS.values()}
                for direction, recovered in per_direction.items():
                    rows += _histogram_rows({"seed": seed, "direction": direction, "explainer": explainer}, recovered, k)
                pooled = np.concatenate(list(per_direction.values()))
                rows += _histogram_rows({"seed": seed, "direction": "pooled", "explainer": explainer}, pooled, k)
    per_seed = pd.DataFrame(rows, columns=AUDIO_LOCALISED_COLUMNS)
    return with_seed_summary(per_seed, ["direction", "explainer", "k", "recovered"], ["count", "fraction"])


def recovered_mean_over_seeds(localised: pd.DataFrame) -> pd.DataFrame:
    """Fig. 3: both directions pooled, each detector's histogram, averaged over detectors (count and fraction)."""
    means = summary_rows(localised, "mean").query("direction == 'pooled'").reset_index(drop=True)
    return means.astype({"count": float, "fraction": float})


AUDIO_RATE_LEGEND = (f"{NOT_SIGNIFICANT_MARK}: no detector's rate differs significantly from the norm baseline's "
                     "on the same excerpts (exact McNemar, p ≥ 0.05; results/tables/audio_comparisons.csv). "
                     "Each detector's 95 % Wilson interval: results/tables/audio_labelflip.csv.")


def _mean_std(values: pd.Series, scale: float = 1.0) -> str:
    """``mean ± std`` over detectors (population std), NaN values left out; a single value alone: it has no spread."""
    values = values.astype(float).dropna() * scale
    if len(values) == 1:
        return _fmt(values.iloc[0])
    return f"{_fmt(values.mean())} ± {_fmt(values.std(ddof=0))}"


def _over_detectors(n: int) -> str:
    """What an ``ours`` cell shows: a mean ± std over ``n`` detectors, or one detector's value (no spread)."""
    return f"mean ± std over {n} detectors" if n > 1 else "one detector (n = 1), so no spread"


def audio_report(svds: pd.DataFrame, labelflip: pd.DataFrame, localised: pd.DataFrame, k: int = 3,
                 comparisons: pd.DataFrame | None = None) -> str:
    """Audio tables in Markdown: each detector's result as mean ± std over detectors, beside the paper's one detector;
    with ``comparisons``, a rate is marked where no detector's differs significantly from the norm baseline's."""
    per_detector = per_seed_rows(svds)
    svds_rows = [[metric, _mean_std(per_detector[metric]), f"{mean:.2f} ± {std:.2f}"]
                 for metric, (mean, std) in paper_values.SVDS_TEST.items()]
    flips = per_seed_rows(labelflip)
    flips = flips[flips.k == k]
    lfr_rows = []
    for explainer in dict.fromkeys(flips.explainer):
        cells = [explainer]
        for direction in AUDIO_DIRECTIONS.values():
            rates = flips[(flips.explainer == explainer) & (flips.direction == direction)].label_flip_rate
            paper = paper_values.AUDIO_LIME_K3[direction] if explainer == "lime" else None
            tested = comparisons is not None and rates.notna().any()
            tested = tested and not_significant(comparisons, explainer=explainer, direction=direction, k=k)
            mark = NOT_SIGNIFICANT_MARK if tested else ""
            cells.append(f"{_mean_std(rates, 100) if rates.notna().any() else '–'}{mark} \\| {_fmt(paper)}")
        lfr_rows.append(cells)
    histograms = per_seed_rows(localised)
    lime = histograms[(histograms.explainer == "lime") & (histograms.direction == "pooled")]
    local_rows = []
    for k_value, paper_n in paper_values.AUDIO_LOCALISED_COUNTS.items():
        rows = lime[lime.k == k_value]
        if len(rows):
            kept = rows.groupby("seed", sort=False)["count"].sum()
            all_found = rows[rows.recovered == k_value].set_index("seed").fraction
            local_rows.append([str(k_value), _mean_std(kept), str(paper_n), _mean_std(all_found, 100) if all_found.notna().any() else "–"])
    n_detectors = per_detector.seed.nunique()
    n_attacked = per_seed_rows(labelflip).seed.nunique()
    return "\n".join([
        "# Audio domain: results beside the paper's (docs/method.md §1.6, §4, §9)", "",
        f"## Singing-voice detector, test set (%; {_over_detectors(n_detectors)})", "",
        markdown_table(["metric", "ours", "paper (Jamendo)"], svds_rows), "",
        f"The experiments below ran on {n_attacked} detector(s), each on its own; the paper ran them on one detector.",
        f"Ours: {_over_detectors(n_attacked)}, of each detector's result (docs/audio-detectors.md).", "",
        f"## Label-flip rate (%) at k = {k} (ours \\| paper)", "",
        markdown_table(["explainer", "no sing → sing", "sing → no sing"], lfr_rows), "",
        *([AUDIO_RATE_LEGEND, ""] if comparisons is not None else []),
        "## Localised experiment, LIME, both directions pooled", "",
        markdown_table(["k", "refined excerpts that still flip, per detector (ours)", "paper", "all k recovered (%)"], local_rows),
    ]) + "\n"
