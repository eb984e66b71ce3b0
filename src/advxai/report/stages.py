"""The report stages, one function per workflow rule: per-shard and per-detector files → CSV
tables, their Markdown beside the paper's values, and the figures. Inputs come as lists whose
groups the rule's params name (models, (model, segmentation) pairs, seeds, figure records).
Torch-free (but the audio excerpt figure): the report jobs start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Hashable, Mapping, Sequence, TypeVar

import pandas as pd

from ..names import AUDIO_DIRECTIONS
from ..segments import audio_grid
from ..store import read_h5, write_csv, write_text
from . import empty, plots, tables
from .empty import EMPTY_CAUSES


Key = TypeVar("Key", bound=Hashable)


def split_groups(files: Sequence[str], groups: Sequence[Key]) -> dict[Key, list[str]]:
    """Files listed group after group, each group with the same number of shards (the data set's),
    as {group: its files}.

    The workflow states the groups and their order in the rule's params; nothing is read from a
    file name, so any model label works.
    """
    if len(set(groups)) != len(groups):
        raise ValueError(f"report groups are listed twice: {groups}")
    if not groups:
        if files:
            raise ValueError(f"{len(files)} files but no group to assign them to")
        return {}
    per_group, rest = divmod(len(files), len(groups))
    if rest:
        raise ValueError(f"{len(files)} files do not split into {len(groups)} groups of equal size: {groups}")
    return {group: list(files[i * per_group:(i + 1) * per_group]) for i, group in enumerate(groups)}


@dataclass(frozen=True)
class ImageReportInputs:
    """The shard files of the image tables, per model or (model, segmentation)."""

    adversaries: dict[str, list[str]]
    labelflip: dict[tuple[str, str], list[str]]
    localised: dict[tuple[str, str], list[str]]
    slic_segments: dict[str, list[str]]

    @classmethod
    def from_lists(cls, inputs: Mapping[str, Sequence[str]], *, models: Sequence[str], pairs: Sequence[Sequence[str]],
                   slic_models: Sequence[str]) -> "ImageReportInputs":
        """From the rule's inputs, one list per stage, in the order of ``models``, ``pairs`` and ``slic_models``."""
        pairs = [tuple(pair) for pair in pairs]
        return cls(adversaries=split_groups(inputs["adversaries"], models), labelflip=split_groups(inputs["labelflip"], pairs),
                   localised=split_groups(inputs["localised"], pairs), slic_segments=split_groups(inputs["slic_segments"], slic_models))


def write_image_tables(inputs: ImageReportInputs, outputs: Mapping[str, str], *, k: int) -> None:
    """The image CSV tables and their Markdown version (docs/method.md §9 values beside ours)."""
    accuracy = tables.accuracy_table(inputs.adversaries)
    labelflip = tables.labelflip_table(inputs.labelflip)
    localised = tables.localised_table(inputs.localised)
    slic = tables.slic_segments_table(inputs.slic_segments)
    architectures = tables.model_architectures(inputs.adversaries)
    for name, frame in (("accuracy", accuracy), ("labelflip", labelflip), ("localised", localised), ("slic", slic)):
        write_csv(frame, outputs[name])
    fewer_segments = tables.fewer_segments_table(inputs.labelflip, inputs.localised)
    report = tables.image_report(accuracy, labelflip, slic if inputs.slic_segments else None, architectures, k, fewer_segments)
    empty_notes = empty.image_notes(accuracy, labelflip, localised, list(inputs.labelflip))
    write_text(report + with_empty_section(empty_notes), outputs["markdown"])


def with_empty_section(notes: Sequence[str]) -> str:
    """The Markdown section that names the empty results (:mod:`advxai.report.empty`), or nothing."""
    return "\n".join(empty.section(notes)) + "\n" if notes else ""


@dataclass(frozen=True)
class ImageFigure:
    """One of Figs 5–8: Fig. 5 per model, Figs 6 and 7 per segmentation, Fig. 8 per model and segmentation."""

    figure: str
    model: str | None = None
    segmentation: str | None = None

    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"fig5": ("model",), "fig6": ("segmentation",), "fig7": ("segmentation",),
                                                   "fig8": ("model", "segmentation")}

    def __post_init__(self) -> None:
        if self.figure not in self.NEEDS:
            raise ValueError(f"unknown image figure {self.figure!r}; known: {sorted(self.NEEDS)}")
        missing = [name for name in self.NEEDS[self.figure] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"image figure {self.figure} needs {missing}")


def write_image_figures(labelflip_csv: str, localised_csv: str, figures: Sequence[ImageFigure], outputs: Sequence[str]) -> None:
    """Figs 5–8, ``figures[i]`` drawn into ``outputs[i]``."""
    labelflip = pd.read_csv(labelflip_csv)
    localised = pd.read_csv(localised_csv)
    # every model and segmentation gets its panel, also one without rows (0 adversaries): it is labelled
    models = list(dict.fromkeys(spec.model for spec in figures if spec.model))
    segmentations = list(dict.fromkeys(spec.segmentation for spec in figures if spec.segmentation))
    for spec, path in zip(figures, outputs, strict=True):
        if spec.figure == "fig5":
            plots.figure_all_explainers(labelflip, spec.model, path, segmentations)
        elif spec.figure == "fig6":
            plots.figure_standard_vs_baseline(labelflip, spec.segmentation, path, models)
        elif spec.figure == "fig7":
            plots.figure_models(labelflip, spec.segmentation, path)
        else:
            rows = localised[(localised.model == spec.model) & (localised.segmentation == spec.segmentation)]
            plots.figure_recovered(rows, f"{spec.model}, {spec.segmentation}", path)


def write_audio_tables(inputs: Mapping[str, Sequence[str]], outputs: Mapping[str, str], *, experiment_seeds: Sequence[int]) -> None:
    """audio_svds / audio_labelflip / audio_localised CSVs and their Markdown.

    ``evaluations`` hold every trained detector; ``labelflips`` and ``localised`` hold the
    ``experiment_seeds`` detectors, in that order.
    """
    svds = tables.audio_svds_table(list(inputs["evaluations"]))
    labelflip = tables.audio_labelflip_table(dict(zip(experiment_seeds, inputs["labelflips"], strict=True)))
    localised_rows = tables.audio_localised_table(dict(zip(experiment_seeds, inputs["localised"], strict=True)))
    write_csv(svds, outputs["svds"])
    write_csv(labelflip, outputs["labelflip"])
    write_csv(localised_rows, outputs["localised"])
    report = tables.audio_report(svds, labelflip, localised_rows)
    write_text(report + with_empty_section(empty.audio_notes(labelflip, localised_rows)), outputs["markdown"])


def write_audio_figures(inputs: Mapping[str, Any], outputs: Mapping[str, str]) -> None:
    """Figs 2 and 3 from the audio tables, and an excerpt figure (``excerpts[i]`` explained by ``explanations[i]``)."""
    plots.figure_audio_labelflip(pd.read_csv(inputs["labelflip"]), outputs["fig2"])
    localised = pd.read_csv(inputs["localised"])
    plots.figure_recovered(tables.recovered_mean_over_seeds(localised), "audio, both directions pooled, mean over detectors", outputs["fig3"])
    write_excerpt_figure(list(inputs["excerpts"]), list(inputs["explanations"]), outputs["excerpt"])


def write_excerpt_figure(excerpts: Sequence[str], explanations: Sequence[str], output: str) -> None:
    """The first adversarial excerpt that has a LIME explanation, over seeds and directions; without
    one, a figure that says why (no excerpt at all, or LIME not among the explainers)."""
    from ..stages.audio import read_excerpts  # torch: only this figure needs it

    n_excerpts = 0
    for excerpt_path, explanation_path in zip(excerpts, explanations):
        weights = read_h5(explanation_path)
        for target, data in read_excerpts(excerpt_path).items():
            name = AUDIO_DIRECTIONS[target]
            n_excerpts += len(data["ids"])
            if len(data["ids"]) and f"{name}/scores/lime" in weights:
                plots.figure_audio_excerpt(data["clean_logmel"][0], data["adv_logmel"][0] - data["clean_logmel"][0],
                                           weights[f"{name}/scores/lime"][0], audio_grid(), f"{data['ids'][0]} ({name})", output)
                return
    reason = "LIME is not among audio.explainers" if n_excerpts else EMPTY_CAUSES["no_excerpts"]
    plots.figure_nothing("audio excerpt explained by LIME", reason, output)
