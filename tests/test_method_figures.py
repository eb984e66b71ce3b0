"""The method figures on a tiny fabricated example file: what they count and print is known."""

from __future__ import annotations

import numpy as np

from advxai.report import method_figures

QUADRANTS = (2 * (np.arange(8)[:, None] >= 4) + (np.arange(8)[None, :] >= 4)).astype(np.int64)


def _examples() -> dict[str, np.ndarray]:
    """Two examples on 4 quadrants; only the second still flips at k = 1. Its truth is quadrant 3, which
    explainer ``right`` ranks first and ``wrong`` last."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, (2, 8, 8, 3)).astype(np.float32)
    adversarial = clean + np.float32(0.05)
    examples = {
        "ids": np.array(["a", "b"]),
        "clean_prediction": np.array([1, 2]),
        "final_prediction": np.array([5, 6]),
        "clean_pixels": clean,
        "adversarial_pixels": adversarial,
        "masks/rect": np.stack([QUADRANTS, QUADRANTS]),
        "attributions/ig": rng.normal(size=(2, 3, 8, 8)).astype(np.float16),
    }
    for explainer in ("lime", "sal", "ig", "gbp"):
        for aggregation in ("mean", "mean_abs", "mean_pos"):
            examples[f"scores/{explainer}/rect/{aggregation}"] = rng.normal(size=(2, 4))
    base = "refined/rect/k1"
    examples.update(
        {
            f"{base}/segment_ids": np.array([[0], [3]]),
            f"{base}/flipped": np.array([False, True]),
            f"{base}/prediction": np.array([1, 7]),
            "refined/rect/drawn": np.int64(1),  # the example that still flips (stages.examples.drawn_example)
            f"{base}/pixels": adversarial[1:],
            f"{base}/scores/right": np.array([[0, 0, 0, 1.0]]),
            f"{base}/scores/wrong": np.array([[1.0, 0, 0, 0]]),
        }
    )
    return examples


def _titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes]


def test_refined_figure_shows_the_flipping_example_and_counts_each_explainers_recovered_segments(tmp_path):
    figure = method_figures.figure_refined_image(
        _examples(), "rect", [1], ["right", "wrong"], "t", tmp_path / "refined.png"
    )
    titles = _titles(figure)
    assert any(t.startswith("b\n") for t in titles)  # the example that still flips, not the first
    assert "k=1, right: 1 of 1 found" in titles and "k=1, wrong: 0 of 1 found" in titles
    assert any("class 7: still flips" in t for t in titles)
    assert (tmp_path / "refined.png").stat().st_size > 0


def test_the_drawn_example_flips_at_the_most_k_first_on_ties():
    from advxai.stages.examples import drawn_example

    flipped = {"refined/rect/k1/flipped": np.array([False, True, True]), "refined/rect/k3/flipped": np.array([False, False, True])}
    assert drawn_example(flipped, "rect", [1, 3]) == 2
    assert drawn_example(flipped, "rect", [1]) == 1  # a tie between rows 1 and 2: the first
    assert drawn_example(flipped, "rect", [3]) == 2


def test_adversary_figure_prints_the_linf_of_each_perturbation(tmp_path):
    figure = method_figures.figure_adversaries(_examples(), "t", tmp_path / "fig10.png")
    assert sum("L∞ = 0.0500 (12.8/255)" in t for t in _titles(figure)) == 2


def test_explanation_and_aggregation_figures_draw_every_panel(tmp_path):
    examples = _examples()
    fig1 = method_figures.figure_explanations(examples, method_figures.STANDARD, "rect", "t", tmp_path / "fig1.png")
    assert "lime (mean)" in _titles(fig1) and "ig (mean_abs)" in _titles(fig1)
    fig9 = method_figures.figure_explanations(
        examples, method_figures.ENSEMBLE_EXPLAINERS[:1], "rect", "t", tmp_path / "fig9.png"
    )
    assert not fig9.axes[1].images  # sal-sg is not in the file: a labelled empty panel
    fig4 = method_figures.figure_aggregations(examples, ["rect"], "t", tmp_path / "fig4.png")
    assert "rect: mean |·|" in _titles(fig4)


def test_score_map_colours_each_segment_and_leaves_absent_ones_blank():
    shown = method_figures.score_map(np.array([1.0, 2.0, -1e5]), np.array([[0, 1], [2, 3]]))
    assert shown[0, 0] == 1.0 and shown[0, 1] == 2.0 and np.isnan(shown[1]).all()
