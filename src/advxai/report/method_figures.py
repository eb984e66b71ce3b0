"""Figures that show the method on example items: the paper's Figs 1, 4, 9 and 10–12, and the refined
k-segment perturbations of both domains beside what each explainer ranks highest.

They read the example files of :mod:`advxai.stages.examples` (torch-free). Segment scores are drawn
over the item by colouring each segment with its score, with one colour bar per panel: explainers
score on different scales.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..names import ENSEMBLES, GRADIENT_METHODS, LIME_FAMILY, reported_aggregation  # noqa: E402
from ..segments import ABSENT  # noqa: E402
from .empty import EMPTY_CAUSES  # noqa: E402
from .plots import figure_nothing, save  # noqa: E402

STANDARD = (LIME_FAMILY, *GRADIENT_METHODS.values())  # Fig. 1's order: LIME, Saliency, IG, GBP
ENSEMBLE_EXPLAINERS = tuple(f"{m}-{e}" for m in GRADIENT_METHODS.values() for e in ENSEMBLES)  # Fig. 9
AGGREGATION_TITLES = {"mean": "mean", "mean_abs": "mean |·|", "mean_pos": "mean of positives"}
TOP_PIXEL_SHARE = 0.1  # Fig. 4's binarised map: the 10 % most relevant pixels (by |IG| summed over channels)
TRUTH_COLOUR, FOUND_COLOUR = "lime", "red"
EXPLAINERS_PER_ROW = 7


def score_map(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each pixel coloured by its segment's score; absent scores as NaN (drawn blank)."""
    values = np.where(np.asarray(scores) <= ABSENT, np.nan, scores).astype(float)
    padded = np.concatenate([values, np.full(max(0, int(mask.max()) + 1 - len(values)), np.nan)])
    return padded[mask]


def _scores_panel(figure, ax, image: np.ndarray, mask: np.ndarray, scores: np.ndarray, title: str) -> None:
    ax.imshow(image, alpha=0.35)
    shown = ax.imshow(score_map(scores, mask), cmap="viridis", alpha=0.75)
    _outline(ax, mask, "white", 0.3)
    _colour_bar(figure, shown, ax)
    ax.set_title(title, fontsize=8)


def _colour_bar(figure, shown, ax) -> None:
    """A narrow colour bar whose ticks carry their own exponent: a shared offset label would sit on the next title."""
    bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, format=matplotlib.ticker.FormatStrFormatter("%.2g"))
    bar.ax.tick_params(labelsize=6)


def _outline(ax, labels: np.ndarray, colour: str, width: float) -> None:
    """Draw the borders between the regions of an integer map."""
    edges = (np.diff(labels, axis=0, prepend=labels[:1]) != 0) | (np.diff(labels, axis=1, prepend=labels[:, :1]) != 0)
    overlay = np.zeros((*labels.shape, 4))
    overlay[edges] = matplotlib.colors.to_rgba(colour, alpha=width)
    ax.imshow(overlay)


def _selected_outline(ax, mask: np.ndarray, segment_ids: np.ndarray, colour: str) -> None:
    """Outline the union of the given segments."""
    selected = np.isin(mask, segment_ids)
    if selected.any():
        ax.contour(selected.astype(float), levels=[0.5], colors=colour, linewidths=1.2)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _missing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, transform=ax.transAxes)
    ax.axis("off")


def figure_explanations(
    examples: Mapping[str, np.ndarray], explainers: Sequence[str], segmentation: str, title: str, path: str | Path
) -> plt.Figure:
    """Figs 1 and 9: each example (row) and each explainer's segment scores of it for its clean prediction."""
    n = len(examples["ids"])
    columns = len(explainers) + 1
    figure, axes = plt.subplots(n, columns, figsize=(2.7 * columns, 2.4 * n), squeeze=False, gridspec_kw={"wspace": 0.45})
    for row in range(n):
        image, mask = examples["clean_pixels"][row], examples[f"masks/{segmentation}"][row]
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"{examples['ids'][row]}\nclass {examples['clean_prediction'][row]}", fontsize=7)
        for ax, explainer in zip(axes[row, 1:], explainers):
            key = f"scores/{explainer}/{segmentation}/{reported_aggregation(explainer)}"
            if key in examples:
                _scores_panel(
                    figure, ax, image, mask, examples[key][row], f"{explainer} ({reported_aggregation(explainer)})"
                )
            else:
                _missing(ax, f"{explainer}\nnot configured")
        for ax in axes[row]:
            _off(ax)
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def figure_aggregations(
    examples: Mapping[str, np.ndarray], segmentations: Sequence[str], title: str, path: str | Path
) -> plt.Figure:
    """Fig. 4 on the first example: input, raw IG, its top pixels binarised; IG's aggregations per segmentation."""
    image = examples["clean_pixels"][0]
    raw = (
        examples[f"attributions/{GRADIENT_METHODS['ig']}"][0].astype(np.float64).sum(axis=0)
    )  # (H, W), channels summed
    figure, axes = plt.subplots(1 + len(segmentations), 3, figsize=(10, 3.2 * (1 + len(segmentations))), squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(f"input {examples['ids'][0]}", fontsize=8)
    limit = np.abs(raw).max() or 1.0
    _colour_bar(figure, axes[0, 1].imshow(raw, cmap="coolwarm", vmin=-limit, vmax=limit), axes[0, 1])
    axes[0, 1].set_title("raw IG (summed over channels)", fontsize=8)
    magnitude = np.abs(raw)
    axes[0, 2].imshow(magnitude >= np.quantile(magnitude, 1 - TOP_PIXEL_SHARE), cmap="gray")
    axes[0, 2].set_title(f"top {TOP_PIXEL_SHARE:.0%} pixels by |IG|, binarised", fontsize=8)
    for row, segmentation in enumerate(segmentations, start=1):
        for ax, aggregation in zip(axes[row], AGGREGATION_TITLES):
            scores = examples[f"scores/{GRADIENT_METHODS['ig']}/{segmentation}/{aggregation}"][0]
            _scores_panel(
                figure,
                ax,
                image,
                examples[f"masks/{segmentation}"][0],
                scores,
                f"{segmentation}: {AGGREGATION_TITLES[aggregation]}",
            )
    for ax in axes.ravel():
        _off(ax)
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def figure_adversaries(examples: Mapping[str, np.ndarray], title: str, path: str | Path) -> plt.Figure:
    """Figs 10–12: clean images above their adversaries, and the perturbation magnified with its L∞ in pixels."""
    n = len(examples["ids"])
    figure, axes = plt.subplots(3, n, figsize=(2.6 * n, 8.2), squeeze=False)
    for column in range(n):
        clean, adversarial = examples["clean_pixels"][column], examples["adversarial_pixels"][column]
        delta = adversarial.astype(np.float64) - clean
        linf = np.abs(delta).max()
        axes[0, column].imshow(clean)
        axes[0, column].set_title(
            f"{examples['ids'][column]}\nclean: class {examples['clean_prediction'][column]}", fontsize=7
        )
        axes[1, column].imshow(adversarial)
        axes[1, column].set_title(f"adversary: class {examples['final_prediction'][column]}", fontsize=7)
        axes[2, column].imshow(np.clip(0.5 + delta / (2 * linf if linf else 1.0), 0, 1))
        axes[2, column].set_title(
            f"perturbation ×{0.5 / linf if linf else 1:.0f}\nL∞ = {linf:.4f} ({linf * 255:.1f}/255)", fontsize=7
        )
    for ax in axes.ravel():
        _off(ax)
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def _magnified(delta: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(0.5 + delta / (2 * scale), 0, 1)


def _explainer_rows(explainers: Sequence[str]) -> tuple[int, int]:
    """Rows and columns of one k's explainer panels, at most EXPLAINERS_PER_ROW wide."""
    columns = min(len(explainers), EXPLAINERS_PER_ROW) or 1
    return -(-len(explainers) // columns), columns


def figure_refined_image(
    examples: Mapping[str, np.ndarray],
    segmentation: str,
    ks: Sequence[int],
    explainers: Sequence[str],
    title: str,
    path: str | Path,
) -> plt.Figure:
    """The refined perturbations of the drawn example (``refined/<seg>/drawn``, the one that flips at the most k):
    clean, adversary, full and refined perturbations (top-k magnitude segments outlined), then per k the refined
    input with each explainer's top-k outlined beside the truth."""
    i = int(examples[f"refined/{segmentation}/drawn"])
    clean, adversarial = examples["clean_pixels"][i], examples["adversarial_pixels"][i]
    mask = examples[f"masks/{segmentation}"][i]
    scale = np.abs(adversarial.astype(np.float64) - clean).max() or 1.0
    per_k, explainer_columns = _explainer_rows(explainers)
    columns = max(3 + len(ks), explainer_columns)
    figure, axes = plt.subplots(
        1 + per_k * len(ks), columns, figsize=(2.2 * columns, 2.5 * (1 + per_k * len(ks))), squeeze=False
    )
    panels = [
        (clean, f"{examples['ids'][i]}\nclean: class {examples['clean_prediction'][i]}"),
        (adversarial, f"adversary: class {examples['final_prediction'][i]}"),
        (_magnified(adversarial - clean, scale), f"full perturbation ×{0.5 / scale:.0f}"),
    ]
    for ax, (image, label) in zip(axes[0], panels):
        ax.imshow(image)
        ax.set_title(label, fontsize=7)
    for ax, k in zip(axes[0, 3:], ks):
        base = f"refined/{segmentation}/k{k}"
        ax.imshow(_magnified(examples[f"{base}/pixels"][0] - clean, scale))
        _selected_outline(ax, mask, examples[f"{base}/segment_ids"][i], TRUTH_COLOUR)
        flipped = "still flips" if examples[f"{base}/flipped"][i] else "no flip"
        ax.set_title(f"refined perturbation, k={k}\nclass {examples[f'{base}/prediction'][i]}: {flipped}", fontsize=7)
    for number, k in enumerate(ks):
        base = f"refined/{segmentation}/k{k}"
        truth = examples[f"{base}/segment_ids"][i]
        for j, explainer in enumerate(explainers):
            ax = axes[1 + number * per_k + j // explainer_columns, j % explainer_columns]
            ax.imshow(examples[f"{base}/pixels"][0])
            _selected_outline(ax, mask, truth, TRUTH_COLOUR)
            found = np.argsort(examples[f"{base}/scores/{explainer}"][0], kind="stable")[-k:]
            _selected_outline(ax, mask, found, FOUND_COLOUR)
            ax.set_title(
                f"k={k}, {explainer}: {len(set(found.tolist()) & set(truth.tolist()))} of {k} found", fontsize=7
            )
    for ax in axes.ravel():
        _off(ax)
        if not ax.images:
            ax.axis("off")
    figure.suptitle(
        f"{title}\ngreen: the k segments of largest perturbation (the truth); red: the explainer's top k", fontsize=10
    )
    return save(figure, path)


def figure_refined_audio(
    example: Mapping[str, np.ndarray], explainers: Sequence[str], title: str, path: str | Path
) -> plt.Figure:
    """The refined perturbations of one excerpt (time × mel): clean, adversary, full and refined Δ with the
    top-k norm tiles outlined, then per k each explainer's top-k tiles beside the truth on the refined excerpt."""
    ks = [int(k) for k in example["ks"]]
    grid, clean = example["grid"], example["clean_logmel"]
    delta = example["adv_logmel"] - clean
    limit = np.abs(delta).max() or 1.0
    per_k, explainer_columns = _explainer_rows(explainers)
    columns = max(3 + len(ks), explainer_columns)
    figure, axes = plt.subplots(
        1 + per_k * len(ks), columns, figsize=(2.4 * columns, 2.4 * (1 + per_k * len(ks))), squeeze=False
    )

    low, high = float(clean.min()), float(clean.max())  # one scale for every log-mel panel, the clean excerpt's

    def show(ax, image, label, diverging=False):
        kwargs = (
            {"cmap": "coolwarm", "vmin": -limit, "vmax": limit}
            if diverging
            else {"cmap": "magma", "vmin": low, "vmax": high}
        )
        shown = ax.imshow(image.T, origin="lower", aspect="auto", **kwargs)
        ax.set_title(label, fontsize=7)
        return shown

    show(axes[0, 0], clean, "clean log-mel")
    show(axes[0, 1], example["adv_logmel"], "adversarial log-mel")
    _colour_bar(figure, show(axes[0, 2], delta, "full perturbation Δ", True), axes[0, 2])
    for ax, k in zip(axes[0, 3:], ks):
        flipped = "still flips" if example[f"k{k}/flipped"] else "no flip"
        probability = f"P(sing) = {float(example[f'k{k}/prediction']):.2f}, τ = {float(example['threshold']):.2f}"
        show(ax, example[f"k{k}/refined_logmel"] - clean, f"refined Δ, k={k}\n{probability}: {flipped}", True)
        _selected_outline(ax, grid.T, example[f"k{k}/segment_ids"], TRUTH_COLOUR)
    for number, k in enumerate(ks):
        for j, explainer in enumerate(explainers):
            ax = axes[1 + number * per_k + j // explainer_columns, j % explainer_columns]
            show(ax, example[f"k{k}/refined_logmel"], "")
            _selected_outline(ax, grid.T, example[f"k{k}/segment_ids"], TRUTH_COLOUR)
            found = np.argsort(example[f"k{k}/scores/{explainer}"], kind="stable")[-k:]
            _selected_outline(ax, grid.T, found, FOUND_COLOUR)
            hits = len(set(found.tolist()) & set(example[f"k{k}/segment_ids"].tolist()))
            ax.set_title(f"k={k}, {explainer}: {hits} of {k} found", fontsize=7)
    for ax in axes.ravel():
        _off(ax)
        if not ax.images:
            ax.axis("off")
    axes[0, 0].set_ylabel("mel band (low to high)")
    direction = str(example["direction"][0]).replace("_", " ").replace("nosing", "no sing")
    figure.suptitle(
        f"{title}, excerpt {example['ids'][0]} ({direction}); time runs left to right, mel bands bottom to top\n"
        "green: the k tiles of largest Σ Δ² (the truth); red: the explainer's top k",
        fontsize=10,
    )
    return save(figure, path)


# ------------------------------------------------------------------------------------ report stages
def read_examples(path: str | Path) -> dict[str, np.ndarray]:
    from ..store import read_h5

    return read_h5(path)


def _without_examples(examples: Mapping[str, np.ndarray], title: str, reason: str, outputs: Sequence[str]) -> bool:
    """An example file without an example (stages.examples.NO_EXAMPLES): each figure says why."""
    if len(examples.get("ids", ())):
        return False
    for path in outputs:
        figure_nothing(title, reason, path)
    return True


def write_explanation_figures(examples_path: str, model: str, segmentation: str, outputs: Mapping[str, str]) -> None:
    """Figs 1 and 9 of one model and segmentation."""
    examples = read_examples(examples_path)
    if _without_examples(examples, model, EMPTY_CAUSES["no_example_image"], list(outputs.values())):
        return
    figure_explanations(
        examples, STANDARD, segmentation, f"{model}, {segmentation}: standard explainers (Fig. 1)", outputs["fig1"]
    )
    figure_explanations(
        examples,
        ENSEMBLE_EXPLAINERS,
        segmentation,
        f"{model}, {segmentation}: ensemble explainers (Fig. 9)",
        outputs["fig9"],
    )


def write_example_figures(
    examples_path: str, model: str, segmentations: Sequence[str], outputs: Mapping[str, str]
) -> None:
    """Fig. 4 and Figs 10–12 of one model."""
    examples = read_examples(examples_path)
    if _without_examples(examples, model, EMPTY_CAUSES["no_example_image"], list(outputs.values())):
        return
    figure_aggregations(
        examples, segmentations, f"{model}: from IG pixel attributions to segment scores (Fig. 4)", outputs["fig4"]
    )
    figure_adversaries(
        examples,
        f"{model}: clean images (top), PGD adversaries (middle), perturbations (bottom) (Figs 10-12)",
        outputs["fig10"],
    )


def write_refined_image_figure(
    examples_path: str, model: str, segmentation: str, ks: Sequence[int], explainers: Sequence[str], output: str
) -> None:
    examples = read_examples(examples_path)
    if _without_examples(examples, model, EMPTY_CAUSES["no_example_image"], [output]):
        return
    figure_refined_image(
        examples,
        segmentation,
        ks,
        explainers,
        f"{model}, {segmentation}: refined perturbations",
        output,
    )


def write_refined_audio_figure(example_path: str, explainers: Sequence[str], seed: int, output: str) -> None:
    example = read_examples(example_path)
    if _without_examples(example, f"detector seed {seed}: refined perturbations", EMPTY_CAUSES["no_excerpts"], [output]):
        return
    figure_refined_audio(example, explainers, f"detector seed {seed}", output)
