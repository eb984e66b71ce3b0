"""Figures in the manner of the paper's Figs 2, 3, 5–8, written as PNG files.

Every ``figure_*`` function saves its PNG and returns the (closed) figure, so that a test can
read its lines back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


NO_DATA = "no data"
"""The label of a panel with nothing to draw; the Markdown report names the cause (``empty_results``)."""


def label_empty(ax, reason: str) -> None:
    """Mark a panel that has nothing to draw: its title stays, the reason is written across it."""
    ax.text(0.5, 0.5, f"{NO_DATA}:\n{reason}", ha="center", va="center", transform=ax.transAxes, fontsize=9,
            color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_if_any(ax, **options) -> None:
    """A legend where the panel has labelled lines (an empty panel gets none, and no warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def legend_on_last_drawn(axes: Sequence, **options) -> None:
    """The figure's legend on its last panel that has lines (the last panel may be an empty one)."""
    drawn = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if drawn:
        drawn[-1].legend(**options)


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


BAND_OPACITY = 0.5
"""How dark the bands of all lines of a panel get where they all overlap (small N: every band is wide)."""


def band_alpha(n_lines: int) -> float:
    """Each band's alpha, so that ``n_lines`` overlapping bands reach BAND_OPACITY and one alone stays light."""
    return min(0.15, 1 - (1 - BAND_OPACITY) ** (1 / max(n_lines, 1)))


def interval_band(ax, x, low, high, colour, alpha: float = 0.15) -> None:
    """A rate's 95 % interval as a shaded band behind its line (nothing where the table has no interval)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    if np.isfinite(low).any():
        ax.fill_between(np.asarray(x, float), low, high, color=colour, alpha=alpha, linewidth=0)


def _curves(ax, rows: pd.DataFrame, explainers: Sequence[str]) -> None:
    styles = explainer_styles(explainers)
    for explainer in explainers:
        line = rows[rows.explainer == explainer]
        if len(line):
            ax.plot(line.fraction, line.label_flip_rate, marker="o", ms=3, label=explainer, **styles[explainer])
            if "ci_low" in line:
                colour, alpha = styles[explainer]["color"], band_alpha(len(explainers))
                interval_band(ax, line.fraction, line.ci_low, line.ci_high, colour, alpha)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of segments added")
    ax.set_ylabel("label-flip rate")
    ax.grid(alpha=0.3)


def figure_all_explainers(
    table: pd.DataFrame, model: str, path: str | Path, segmentations: Sequence[str] = (),
) -> plt.Figure:
    """Fig. 5: every explainer and the baselines, one panel per segmentation (``segmentations``, else
    those in ``table``, else rectangles and SLIC), for one model; a panel without rows is labelled;
    bands: 95 % intervals."""
    segs = list(segmentations) or [s for s in ("rect", "slic") if (table.segmentation == s).any()] or ["rect", "slic"]
    figure, axes = plt.subplots(1, len(segs), figsize=(6 * len(segs), 4.5), squeeze=False)
    for ax, seg in zip(axes[0], segs):
        rows = sweep(table, model, seg)
        if rows.empty:
            label_empty(ax, f"no label-flip results for {model}")
        else:
            _curves(ax, rows, sorted(rows.explainer.unique()))
        ax.set_title(f"{model}, {seg}")
    legend_on_last_drawn(axes[0], fontsize=7, ncol=2, loc="lower right", handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_standard_vs_baseline(
    table: pd.DataFrame, segmentation: str, path: str | Path, models: Sequence[str] = (),
) -> plt.Figure:
    """Fig. 6: standard explainers vs the magnitude-mean baseline, one panel per model (``models``,
    else those in ``table``); a panel without rows is labelled;
    bands: 95 % intervals."""
    models = list(models) or list(table.model.unique())
    figure, axes = plt.subplots(1, max(1, len(models)), figsize=(4.5 * max(1, len(models)), 4), squeeze=False)
    if not models:
        label_empty(axes[0, 0], "no label-flip results for any model")
    for ax, model in zip(axes[0], models):
        rows = sweep(table, model, segmentation)
        if rows.empty:
            label_empty(ax, f"no label-flip results for {model}")
        else:
            _curves(ax, rows, [*STANDARD, "magnitude-mean"])
        ax.set_title(f"{model}, {segmentation}")
    legend_on_last_drawn(axes[0], fontsize=8, handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_models(table: pd.DataFrame, segmentation: str, path: str | Path) -> plt.Figure:
    """Fig. 7: each standard explainer across models; bands: 95 % intervals."""
    figure, axes = plt.subplots(1, len(STANDARD), figsize=(4.5 * len(STANDARD), 4), squeeze=False)
    for ax, explainer in zip(axes[0], STANDARD):
        for model in table.model.unique():
            rows = sweep(table, model, segmentation)
            line = rows[rows.explainer == explainer]
            if not len(line):
                continue
            drawn = ax.plot(line.fraction, line.label_flip_rate, marker="o", ms=3, label=model)[0]
            if "ci_low" in line:
                alpha = band_alpha(table.model.nunique())
                interval_band(ax, line.fraction, line.ci_low, line.ci_high, drawn.get_color(), alpha)
        ax.set_title(f"{explainer}, {segmentation}")
        if not ax.lines:
            label_empty(ax, f"no {explainer} label-flip results")
            continue
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fraction of segments added")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("label-flip rate")
    legend_on_last_drawn(axes[0], fontsize=8)
    return save(figure, path)


def figure_recovered(table: pd.DataFrame, title: str, path: str | Path) -> plt.Figure:
    """Figs 3, 8, 13, 14: stacked bars of the fraction of r ∈ 0..k recovered segments per explainer, one panel per k.

    A k at which no refined input still flips (counts all 0) gets a labelled panel; a table
    without rows, one labelled panel.
    """
    ks = sorted(table.k.unique())
    figure, axes = plt.subplots(1, max(1, len(ks)), figsize=(5 * max(1, len(ks)), 4), squeeze=False)
    if not ks:
        axes[0, 0].set_title(title)
        label_empty(axes[0, 0], "no localised results (no adversary in the subset)")
    for ax, k in zip(axes[0], ks):
        rows = table[table.k == k]
        if not rows["count"].astype(float).sum():
            ax.set_title(f"{title}, k = {k} (n = 0)")
            label_empty(ax, f"no refined input still flips at k = {k}")
            continue
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
        legend_if_any(ax, fontsize=7)
    axes[0, 0].set_ylabel("fraction of refined adversaries")
    return save(figure, path)


def detector_envelope(table: pd.DataFrame, direction: str, explainer: str) -> pd.DataFrame:
    """Per k, the lowest ``ci_low`` and highest ``ci_high`` over detectors: every detector's 95 %
    interval lies inside (one detector: its own interval)."""
    detectors = ~table.seed.astype(str).isin(("mean", "std"))
    rows = table[detectors & (table.direction == direction) & (table.explainer == explainer)]
    rows = rows.astype({"ci_low": float, "ci_high": float})
    return rows.groupby("k").agg(ci_low=("ci_low", "min"), ci_high=("ci_high", "max"))


def figure_audio_labelflip(table: pd.DataFrame, path: str | Path) -> plt.Figure:
    """Fig. 2: label-flip rate vs k per direction, the mean over detectors of each detector's rate; LIME and the
    norm baseline in bold, each with the band that holds every detector's 95 % interval."""
    directions = ("nosing_to_sing", "sing_to_nosing")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    means = table[table.seed.astype(str) == "mean"].astype({"label_flip_rate": float})
    styles = explainer_styles(sorted(means.explainer.unique()))
    for ax, direction in zip(axes[0], directions):
        rows = means[means.direction == direction]
        ax.set_title(direction.replace("_", " ").replace("nosing", "no sing"))
        if not rows.label_flip_rate.notna().any():
            label_empty(ax, "no adversarial excerpt in this direction")
            continue
        for explainer in sorted(rows.explainer.unique(), key=lambda e: (e in ("lime", "norm"), e)):
            line = rows[rows.explainer == explainer].sort_values("k")
            bold = explainer in ("lime", "norm")
            ax.plot(line.k, line.label_flip_rate, lw=2.2 if bold else 1.0, alpha=1 if bold else 0.7,
                    marker="o" if bold else None, ms=3, label=explainer, **styles[explainer])
            if bold and "ci_low" in table:
                envelope = detector_envelope(table, direction, explainer)
                colour = styles[explainer]["color"]
                interval_band(ax, envelope.index, envelope.ci_low, envelope.ci_high, colour, band_alpha(2))
        ax.set_title(direction.replace("_", " ").replace("nosing", "no sing"))
        ax.set_xlabel("segments added (k)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("label-flip rate")
    legend_on_last_drawn(axes[0], fontsize=7, ncol=2, handlelength=LEGEND_HANDLE_LENGTH)
    return save(figure, path)


def figure_nothing(title: str, reason: str, path: str | Path) -> plt.Figure:
    """A figure that has no data at all: its title and the reason, so the output exists and says why."""
    figure, ax = plt.subplots(figsize=(6, 3))
    ax.set_title(title)
    label_empty(ax, reason)
    return save(figure, path)


def figure_audio_excerpt(clean: np.ndarray, delta: np.ndarray, weights: np.ndarray, grid: np.ndarray, title: str,
                         path: str | Path) -> plt.Figure:
    """One excerpt (time × mel): clean log-mel with its segments, the perturbation, LIME's segment weights."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = [(clean, "clean log-mel", "magma"), (delta, "perturbation Δ (log-mel)", "coolwarm"),
              (weights[grid], "LIME weight per segment", "viridis")]
    for ax, (image, label, cmap) in zip(axes, panels):
        limit = np.abs(image).max() or 1.0
        shown = ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap,
                          **({"vmin": -limit, "vmax": limit} if cmap == "coolwarm" else {}))
        ax.contour(grid.T, levels=np.arange(grid.max()) + 0.5, colors="white", linewidths=0.5)
        ax.set_title(label)
        ax.set_xlabel("frame")
        figure.colorbar(shown, ax=ax, fraction=0.046)
    axes[0].set_ylabel("mel band")
    figure.suptitle(title)
    return save(figure, path)
