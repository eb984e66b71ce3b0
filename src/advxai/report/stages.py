"""The report stages, one function per workflow rule: per-shard and per-detector files → CSV
tables, their Markdown beside the paper's values, and the figures. Torch-free (but the audio
excerpt figure): the report jobs start fast.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from ..names import AUDIO_DIRECTIONS
from ..segments import audio_grid
from ..store import read_h5, write_csv, write_text
from . import plots, tables


def _group_inputs(inputs: Mapping[str, Any], stage: str) -> dict:
    """``{"<stage>__<model>[__<seg>]": paths}`` → {model or (model, seg): paths}."""
    grouped = {}
    for key, paths in inputs.items():
        parts = key.split("__")
        if parts[0] == stage:
            grouped[parts[1] if len(parts) == 2 else tuple(parts[1:])] = [paths] if isinstance(paths, str) else list(paths)
    return grouped


def write_image_tables(inputs: Mapping[str, Any], outputs: Mapping[str, str], *, k: int) -> None:
    """The image CSV tables and their Markdown version (docs/method.md §9 values beside ours)."""
    adversaries = _group_inputs(inputs, "adversaries")
    accuracy = tables.accuracy_table(adversaries)
    labelflip_files, localised_files = _group_inputs(inputs, "labelflip"), _group_inputs(inputs, "localised")
    labelflip = tables.labelflip_table(labelflip_files)
    localised = tables.localised_table(localised_files)
    slic_inputs = {model: paths for (model, seg), paths in _group_inputs(inputs, "segments").items() if seg == "slic"}
    slic = tables.slic_segments_table(slic_inputs)
    architectures = tables.model_architectures(adversaries)
    for name, frame in (("accuracy", accuracy), ("labelflip", labelflip), ("localised", localised), ("slic", slic)):
        write_csv(frame, outputs[name])
    fewer_segments = tables.fewer_segments_table(labelflip_files, localised_files)
    write_text(tables.image_report(accuracy, labelflip, slic if slic_inputs else None, architectures, k, fewer_segments), outputs["markdown"])


def write_image_figures(labelflip_csv: str, localised_csv: str, outputs: Sequence[str]) -> None:
    """Figs 5–8; output names say which figure, model and segmentation."""
    labelflip = pd.read_csv(labelflip_csv)
    localised = pd.read_csv(localised_csv)
    for path in outputs:
        name = path.rsplit("/", 1)[-1].removesuffix(".png").removeprefix("image_")
        figure, _, rest = name.partition("_")
        if figure == "fig5":
            plots.figure_all_explainers(labelflip, rest, path)
        elif figure == "fig6":
            plots.figure_standard_vs_baseline(labelflip, rest, path)
        elif figure == "fig7":
            plots.figure_models(labelflip, rest, path)
        elif figure == "fig8":
            model, seg = rest.rsplit("_", 1)
            rows = localised[(localised.model == model) & (localised.segmentation == seg)]
            plots.figure_recovered(rows, f"{model}, {seg}", path)
        else:
            raise ValueError(f"no figure is named like {path}")


def write_audio_tables(inputs: Mapping[str, Sequence[str]], outputs: Mapping[str, str], *, experiment_seeds: Sequence[int]) -> None:
    """audio_svds / audio_labelflip / audio_localised CSVs, their Markdown, and Figs 2, 3 and an excerpt figure.

    ``evaluations`` hold every trained detector; the experiment inputs (label flips, localised,
    excerpts, explanations) hold the ``experiment_seeds`` detectors, in that order.
    """
    svds = tables.audio_svds_table(list(inputs["evaluations"]))
    labelflip = tables.audio_labelflip_table(dict(zip(experiment_seeds, inputs["labelflips"], strict=True)))
    localised_rows = tables.audio_localised_table(dict(zip(experiment_seeds, inputs["localised"], strict=True)))
    write_csv(svds, outputs["svds"])
    write_csv(labelflip, outputs["labelflip"])
    write_csv(localised_rows, outputs["localised"])
    write_text(tables.audio_report(svds, labelflip, localised_rows), outputs["markdown"])
    plots.figure_audio_labelflip(labelflip, outputs["fig2"])
    plots.figure_recovered(tables.recovered_mean_over_seeds(localised_rows), "audio, both directions pooled, mean over detectors", outputs["fig3"])
    write_excerpt_figure(list(inputs["excerpts"]), list(inputs["explanations"]), outputs["excerpt"])


def write_excerpt_figure(excerpts: Sequence[str], explanations: Sequence[str], output: str) -> None:
    """The first adversarial excerpt that has a LIME explanation, over seeds and directions."""
    from ..stages.audio import read_excerpts  # torch: only this figure needs it

    for excerpt_path, explanation_path in zip(excerpts, explanations):
        weights = read_h5(explanation_path)
        for target, data in read_excerpts(excerpt_path).items():
            name = AUDIO_DIRECTIONS[target]
            if len(data["ids"]) and f"{name}/scores/lime" in weights:
                plots.figure_audio_excerpt(data["clean_logmel"][0], data["adv_logmel"][0] - data["clean_logmel"][0],
                                           weights[f"{name}/scores/lime"][0], audio_grid(), f"{data['ids'][0]} ({name})", output)
                return
    raise ValueError(f"{list(excerpts)}: no adversarial excerpt with a LIME explanation to draw")
