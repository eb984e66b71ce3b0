"""Figures in the manner of the paper's Figs 2, 3, 5–8, written as PNG files.

Every ``figure_*`` function saves its PNG and returns the (closed) figure, so that a test can
read its lines back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..names import ENSEMBLES, GRADIENT_METHODS, LIME_FAMILY, reported_aggregation  # noqa: E402
from ..store import atomic_path  # noqa: E402

STANDARD = ("lime", "ig", "sal", "gbp")

# As in the paper's figures: the colour names the base method, the line style the ensemble.
METHOD_COLOURS = dict(zip((LIME_FAMILY, *GRADIENT_METHODS.values()), ("tab:green", "tab:blue", "tab:orange", "tab:red"), strict=True))
ENSEMBLE_LINESTYLES = {"": "-", **dict(zip(ENSEMBLES, ("--", ":", "-."), strict=True))}
BASELINE_COLOUR = "black"
BASELINE_LINESTYLES = {"magnitude": ":", "magnitude-mean": "--", "norm": "--"}
# Plug-in explainers (config `extra_explainers`) take the colours no base method uses, solid.
EXTRA_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
LEGEND_HANDLE_LENGTH = 4.0  # long enough that a dashed or dotted line shows its pattern beside the marker


def explainer_styles(explainers: Sequence[str]) -> dict[str, dict[str, str]]:
    """Matplotlib ``color`` and ``linestyle`` per explainer: a base method's colour with its
    ensemble's line style, black for the baselines, and the next free colour for any other name."""
    styles, extras = {}, iter(EXTRA_COLOURS)
    for explainer in explainers:
        method, _, ensemble = explainer.partition("-")
        if explainer in BASELINE_LINESTYLES:
            styles[explainer] = {"color": BASELINE_COLOUR, "linestyle": BASELINE_LINESTYLES[explainer]}
        elif method in METHOD_COLOURS and ensemble in ENSEMBLE_LINESTYLES:
            styles[explainer] = {"color": METHOD_COLOURS[method], "linestyle": ENSEMBLE_LINESTYLES[ensemble]}
        else:
            colour = next(extras, None)
            if colour is None:
                raise ValueError(f"more than {len(EXTRA_COLOURS)} plug-in explainers to draw apart: {list(explainers)}")
            styles[explainer] = {"color": colour, "linestyle": "-"}
    return styles


def save(figure: plt.Figure, path: str | Path) -> plt.Figure:
    """Save atomically as PNG and close; the figure stays readable."""
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return figure


def reported(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of the aggregation each explainer is reported with (LIME mean, gradients mean_abs, baselines -)."""
    wanted = table.explainer.map(reported_aggregation)
    return table[table.aggregation == wanted]


def sweep(table: pd.DataFrame, model: str, segmentation: str) -> pd.DataFrame:
    """The k sweep of one model and segmentation as (explainer, fraction, rate), fraction = share of segments."""
    rows = reported(table[(table.model == model) & (table.segmentation == segmentation)])
    rows = rows[rows.fraction.notna()]
    return rows.sort_values("fraction")


def _curves(ax, rows: pd.DataFrame, explainers: Sequence[str]) -> None:
    styles = explainer_styles(explainers)
    for explainer in explainers:
        line = rows[rows.explainer == explainer]
        if len(line):
            ax.plot(line.fraction, line.label_flip_rate, marker="o", ms=3, label=explainer, **styles[explainer])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of segments added")
    ax.set_ylabel("label-flip rate")
    ax.grid(alpha=0.3)


def figure_all_explainers(table: pd.DataFrame, model: str, path: str | Path) -> plt.Figure:
    """Fig. 5: every explainer and the baselines, rectangles and SLIC side by side, for one model."""
    segs = [s for s in ("rect", "slic") if (table.segmentation == s).any()]
    figure, axes = plt.subplots(1, len(segs), figsize=(6 * len(segs), 4.5), squeeze=False)
    for ax, seg in zip(axes[0], segs):
        rows = sweep(table, model, seg)
        _curves(ax, rows, sorted(rows.explainer.unique()))
        ax.set_title(f"{model}, {seg}")
    axes[0, -1].legend(fontsize=7, ncol=2, loc="lower right", handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_standard_vs_baseline(table: pd.DataFrame, segmentation: str, path: str | Path) -> plt.Figure:
    """Fig. 6: standard explainers vs the magnitude-mean baseline, one panel per model."""
    models = list(table.model.unique())
    figure, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        _curves(ax, sweep(table, model, segmentation), [*STANDARD, "magnitude-mean"])
        ax.set_title(f"{model}, {segmentation}")
    axes[0, -1].legend(fontsize=8, handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_models(table: pd.DataFrame, segmentation: str, path: str | Path) -> plt.Figure:
    """Fig. 7: each standard explainer across models."""
    figure, axes = plt.subplots(1, len(STANDARD), figsize=(4.5 * len(STANDARD), 4), squeeze=False)
    for ax, explainer in zip(axes[0], STANDARD):
        for model in table.model.unique():
            rows = sweep(table, model, segmentation)
            line = rows[rows.explainer == explainer]
            ax.plot(line.fraction, line.label_flip_rate, marker="o", ms=3, label=model)
        ax.set_title(f"{explainer}, {segmentation}")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fraction of segments added")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("label-flip rate")
    axes[0, -1].legend(fontsize=8)
    return save(figure, path)


def figure_recovered(table: pd.DataFrame, title: str, path: str | Path) -> plt.Figure:
    """Figs 3, 8, 13, 14: stacked bars of the fraction of r ∈ 0..k recovered segments per explainer, one panel per k."""
    ks = sorted(table.k.unique())
    figure, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 4), squeeze=False)
    for ax, k in zip(axes[0], ks):
        rows = table[table.k == k]
        explainers = list(dict.fromkeys(rows.explainer))
        bottom = np.zeros(len(explainers))
        colours = plt.cm.viridis(np.linspace(0.05, 0.95, k + 1))
        for r in range(k + 1):
            share = np.array([rows[(rows.explainer == e) & (rows.recovered == r)].fraction.sum() for e in explainers])
            share = np.nan_to_num(share)
            ax.bar(explainers, share, bottom=bottom, color=colours[r], label=f"{r} of {k}")
            bottom += share
        n = rows[rows.explainer == explainers[0]]["count"].sum() if explainers else 0
        ax.set_title(f"{title}, k = {k} (n = {n:.0f})" if float(n).is_integer() else f"{title}, k = {k} (n = {n:.1f})")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=70, labelsize=7)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("fraction of refined adversaries")
    return save(figure, path)


def figure_audio_labelflip(table: pd.DataFrame, path: str | Path) -> plt.Figure:
    """Fig. 2: label-flip rate vs k per direction, the mean over detectors of each detector's rate; LIME and the norm baseline in bold."""
    directions = ("nosing_to_sing", "sing_to_nosing")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    means = table[table.seed.astype(str) == "mean"].astype({"label_flip_rate": float})
    styles = explainer_styles(sorted(means.explainer.unique()))
    for ax, direction in zip(axes[0], directions):
        rows = means[means.direction == direction]
        for explainer in sorted(rows.explainer.unique(), key=lambda e: (e in ("lime", "norm"), e)):
            line = rows[rows.explainer == explainer].sort_values("k")
            bold = explainer in ("lime", "norm")
            ax.plot(line.k, line.label_flip_rate, lw=2.2 if bold else 1.0, alpha=1 if bold else 0.7,
                    marker="o" if bold else None, ms=3, label=explainer, **styles[explainer])
        ax.set_title(direction.replace("_", " ").replace("nosing", "no sing"))
        ax.set_xlabel("segments added (k)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("label-flip rate")
    axes[0, -1].legend(fontsize=7, ncol=2, handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_audio_excerpt(clean: np.ndarray, delta: np.ndarray, weights: np.ndarray, grid: np.ndarray, title: str, path: str | Path) -> plt.Figure:
    """One excerpt (time × mel): clean log-mel with its segments, the perturbation, LIME's segment weights."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = [(clean, "clean log-mel", "magma"), (delta, "perturbation Δ (log-mel)", "coolwarm"), (weights[grid], "LIME weight per segment", "viridis")]
    for ax, (image, label, cmap) in zip(axes, panels):
        limit = np.abs(image).max() or 1.0
        shown = ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, **({"vmin": -limit, "vmax": limit} if cmap == "coolwarm" else {}))
        ax.contour(grid.T, levels=np.arange(grid.max()) + 0.5, colors="white", linewidths=0.5)
        ax.set_title(label)
        ax.set_xlabel("frame")
        figure.colorbar(shown, ax=ax, fraction=0.046)
    axes[0].set_ylabel("mel band")
    figure.suptitle(title)
    return save(figure, path)
