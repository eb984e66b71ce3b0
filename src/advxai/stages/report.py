"""The report stages, one function per workflow rule: per-shard and per-detector files → CSV
tables, their Markdown beside the paper's values, and the figures. Inputs come as lists whose
groups the rule's params name (models, (model, segmentation) pairs, seeds, figure records).
Torch-free, the audio excerpt figure included: the report jobs start fast.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pandas as pd

from ..names import AUDIO_DIRECTIONS
from ..report import comparisons, empty, findings, findings_report, intervals, outcomes, plots, tables
from ..report.empty import EMPTY_CAUSES
from ..segments import audio_grid
from ..store import read_h5, write_csv, write_text
from .audio_files import read_excerpts

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
                   slic_models: Sequence[str]) -> ImageReportInputs:
        """From the rule's inputs, one list per stage, in the order of ``models``, ``pairs`` and ``slic_models``."""
        pairs = [tuple(pair) for pair in pairs]
        return cls(adversaries=split_groups(inputs["adversaries"], models), labelflip=split_groups(inputs["labelflip"], pairs),
                   localised=split_groups(inputs["localised"], pairs), slic_segments=split_groups(inputs["slic_segments"], slic_models))


def write_image_tables(inputs: ImageReportInputs, outputs: Mapping[str, str], *, k: int) -> None:
    """The image CSV tables with their 95 % intervals, the paired comparisons, and their Markdown
    version (docs/method.md §9 values beside ours)."""
    accuracy = intervals.with_accuracy_interval(tables.accuracy_table(inputs.adversaries), inputs.adversaries)
    labelflip = intervals.with_rate_interval(tables.labelflip_table(inputs.labelflip))
    localised = intervals.with_histogram_interval(tables.localised_table(inputs.localised), ["model", "segmentation", "explainer", "k"])
    slic = tables.slic_segments_table(inputs.slic_segments)
    paired = comparisons.image_comparisons(inputs.labelflip, inputs.localised)
    architectures = tables.model_architectures(inputs.adversaries)
    for name, frame in (("accuracy", accuracy), ("labelflip", labelflip), ("localised", localised), ("slic", slic),
                        ("comparisons", paired)):
        write_csv(frame, outputs[name])
    fewer_segments = tables.fewer_segments_table(inputs.labelflip, inputs.localised)
    report = tables.image_report(accuracy, labelflip, slic if inputs.slic_segments else None, architectures, k, fewer_segments, paired)
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
    """audio_svds / audio_labelflip / audio_localised CSVs (rates with 95 % intervals), the paired
    comparisons with the norm baseline, and their Markdown.

    ``evaluations`` hold every trained detector; ``labelflips`` and ``localised`` hold the
    ``experiment_seeds`` detectors, in that order.
    """
    svds = tables.audio_svds_table(list(inputs["evaluations"]))
    labelflips = dict(zip(experiment_seeds, inputs["labelflips"], strict=True))
    labelflip = intervals.with_rate_interval(tables.audio_labelflip_table(labelflips))
    per_seed = tables.audio_localised_table(dict(zip(experiment_seeds, inputs["localised"], strict=True)))
    localised_rows = intervals.with_histogram_interval(per_seed, ["seed", "direction", "explainer", "k"])
    paired = comparisons.audio_comparisons(labelflips)
    write_csv(svds, outputs["svds"])
    write_csv(labelflip, outputs["labelflip"])
    write_csv(localised_rows, outputs["localised"])
    write_csv(paired, outputs["comparisons"])
    report = tables.audio_report(svds, labelflip, localised_rows, comparisons=paired)
    write_text(report + with_empty_section(empty.audio_notes(labelflip, localised_rows)), outputs["markdown"])


def write_audio_figures(inputs: Mapping[str, Any], outputs: Mapping[str, str]) -> None:
    """Figs 2 and 3 from the audio tables, and an excerpt figure (``excerpts[i]`` explained by ``explanations[i]``)."""
    plots.figure_audio_labelflip(pd.read_csv(inputs["labelflip"]), outputs["fig2"])
    localised = pd.read_csv(inputs["localised"])
    plots.figure_recovered(tables.recovered_mean_over_seeds(localised), "audio, both directions pooled, mean over detectors",
                           outputs["fig3"])
    write_excerpt_figure(list(inputs["excerpts"]), list(inputs["explanations"]), outputs["excerpt"])


def write_excerpt_figure(excerpts: Sequence[str], explanations: Sequence[str], output: str) -> None:
    """The first adversarial excerpt that has a LIME explanation, over seeds and directions; without
    one, a figure that says why (no excerpt at all, or LIME not among the explainers)."""
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


def image_evidence(inputs: ImageReportInputs, k: int) -> dict[str, Any]:
    """The per-item image outcomes the findings read: flips at the fixed k, recovered counts, architectures."""
    flips = {}
    for pair, paths in inputs.labelflip.items():
        result = outcomes.image_flip_outcomes(paths)
        flips[pair] = result.at_k(k) if result is not None else {}
    recovered = {pair: outcomes.image_recovered_outcomes(paths) for pair, paths in inputs.localised.items()}
    return {"image_flips": flips, "image_recovered": recovered, "architectures": tables.model_architectures(inputs.adversaries)}


def write_findings(inputs: Mapping[str, Sequence[str]], outputs: Mapping[str, str], *, models: Sequence[str],
                   pairs: Sequence[Sequence[str]], experiment_seeds: Sequence[int], k: int) -> None:
    """The findings of the paper's §7 decided on this run: Markdown, and one CSV row per claim.

    ``inputs`` as the rule lists them: the image ``adversaries``, ``labelflip`` and ``localised``
    shards in the order of ``models`` and ``pairs``, and the ``audio_labelflips`` and
    ``audio_localised`` files of ``experiment_seeds``. A domain without models or seeds did not run.
    """
    evidence: dict[str, Any] = {}
    if models:
        image = ImageReportInputs.from_lists({**inputs, "slic_segments": []}, models=models, pairs=pairs, slic_models=[])
        evidence.update(image_evidence(image, k))
    if experiment_seeds:
        evidence["audio_flips"] = outcomes.pooled_audio_flips(dict(zip(experiment_seeds, inputs["audio_labelflips"], strict=True)))
        evidence["audio_recovered"] = outcomes.pooled_audio_recovered(dict(zip(experiment_seeds, inputs["audio_localised"], strict=True)))
    checked = findings.check_findings(findings.Evidence(k=k, **evidence))
    write_csv(findings_report.findings_table(checked), outputs["table"])
    write_text(findings_report.findings_markdown(checked), outputs["markdown"])
