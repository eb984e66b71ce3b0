"""Empty results, named: which tables and figures have nothing in them, and why.

See docs/decisions.md, "Empty is a result".

A legal run may leave a stage with nothing to do: a model that no adversary fooled, a subset with
no item, a k at which no refined input still flips, a detector without an adversarial excerpt.
The stages then write valid empty outputs; the tables keep their columns; the figures label the
panels that have no data; and the Markdown reports end with a section, built here, that names
each empty result and its cause.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..names import AUDIO_DIRECTIONS

EMPTY_CAUSES = {
    "no_adversaries": "no successful adversary: PGD fooled the model on none of its images at this epsilon and "
                      "number of steps, so its label-flip and localised subsets, its SLIC counts and its figure "
                      "panels are empty",
    "empty_subset": "the evaluation subset is empty",
    "nothing_flips": "no refined input still flips, so nothing was explained at this k (the histogram has n = 0)",
    "no_example_image": "no example image: no successful adversary in the localised subset",
    "no_excerpts": "no adversarial excerpt: the C&W attack flipped no frame towards this target, or no flipped frame "
                   "has a whole excerpt window inside its song",
}
"""The causes, as the Markdown and the figures print them."""

SECTION_TITLE = "## Empty results"


def section(notes: Sequence[str]) -> list[str]:
    """Markdown lines of the empty-results section (none where every result has data)."""
    if not notes:
        return []
    return ["", SECTION_TITLE, "", *(f"- {note}" for note in notes)]


def image_notes(
    accuracy: pd.DataFrame, labelflip: pd.DataFrame, localised: pd.DataFrame, pairs: Sequence[tuple[str, str]],
) -> list[str]:
    """The empty image results: a model without adversaries; else a (model, segmentation) without
    label-flip rows; a localised k at which no refined input still flips."""
    notes = []
    no_adversaries = set()
    for row in accuracy.itertuples():
        if row.n_adversaries == 0:
            no_adversaries.add(row.model)
            notes.append(f"model `{row.model}`: 0 of {row.n_images} images — {EMPTY_CAUSES['no_adversaries']}.")
    for model, segmentation in pairs:
        if model in no_adversaries:
            continue
        if not ((labelflip.model == model) & (labelflip.segmentation == segmentation)).any():
            notes.append(f"model `{model}`, {segmentation}: {EMPTY_CAUSES['empty_subset']} (label flips).")
        rows = localised[(localised.model == model) & (localised.segmentation == segmentation)]
        for k, counts in rows.groupby("k", sort=True)["count"]:
            if counts.sum() == 0:
                notes.append(f"model `{model}`, {segmentation}, localised k = {k}: {EMPTY_CAUSES['nothing_flips']}.")
    return notes


def audio_notes(labelflip: pd.DataFrame, localised: pd.DataFrame) -> list[str]:
    """The empty audio results, per detector seed: a direction without adversarial excerpts; a
    localised k at which no refined excerpt still flips (in a direction that has excerpts)."""
    notes = []
    per_seed = labelflip[~labelflip.seed.astype(str).isin(("mean", "std"))]
    for (seed, direction), rows in per_seed.groupby(["seed", "direction"], sort=False):
        if (rows.n.astype(int) == 0).all():
            notes.append(f"detector seed {seed}, {direction}: {EMPTY_CAUSES['no_excerpts']}.")
    without_excerpts = per_seed[per_seed.n.astype(int) == 0][["seed", "direction"]]
    empty_directions = {(str(seed), d) for seed, d in without_excerpts.itertuples(index=False)}
    histograms = localised[~localised.seed.astype(str).isin(("mean", "std"))]
    for (seed, direction, k), rows in histograms.groupby(["seed", "direction", "k"], sort=False):
        has_excerpts = direction in AUDIO_DIRECTIONS.values() and (str(seed), direction) not in empty_directions
        if has_excerpts and rows["count"].astype(int).sum() == 0:
            notes.append(f"detector seed {seed}, {direction}, localised k = {k}: {EMPTY_CAUSES['nothing_flips']}.")
    return notes
