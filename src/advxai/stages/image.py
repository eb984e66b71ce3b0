"""The image domain's model stages, one function per workflow rule (the others: :mod:`advxai.stages.image_shards`).

Each function reads its input files, builds the inputs, calls the library (the evaluation
algorithms live in :mod:`advxai.evaluation`) and writes one output file atomically with
provenance. The thin scripts in ``scripts/`` call them with typed settings
(:mod:`advxai.stages.settings`); they are usable without Snakemake. Long stages resume from
per-batch checkpoints beside their output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..attacks.pgd import draw_targets, targeted_pgd
from ..batching import explanation_batch_size, job_batch_size, lime_batch_size
from ..data.model_inputs import pixel_bounds, to_model_input
from ..evaluation.baselines import magnitude_scores
from ..evaluation.flips import ClassChange
from ..evaluation.labelflip import k_settings, label_flips
from ..evaluation.localised import explain_refined
from ..evaluation.selection import pad_scores, selection_width
from ..explainers.engine import explain_all, flatten_scores, unflatten_scores
from ..explainers.guided import audit_guided_activations
from ..models import predict
from ..store import BatchCheckpoint, dataset_names, read_h5, require_params, write_h5
from .image_models import check_labels_fit, engine_settings, model_attrs, model_from_spec
from .image_subset_reader import ShardFiles, open_subset
from .refined_files import read_refinements, require_refined
from .settings import (
    ExplainFamilySettings,
    LabelflipSettings,
    LocalisedSettings,
    ModelSpec,
    PgdSettings,
)

log = logging.getLogger("advxai")


# ------------------------------------------------------------------------------------ stages
def clean_predictions(images_path: str, output: str, *, model: ModelSpec, batch_size: int | str, device: torch.device) -> None:
    """Clean top-1 and top-5 predictions of one shard."""
    bundle = model_from_spec(model, device)
    images = read_h5(images_path)
    check_labels_fit(images["labels"], images["ids"], bundle, images_path)
    batch_size = job_batch_size(batch_size, bundle, device, backward=False)
    try:
        logits = predict(bundle.module, to_model_input(images["images"]).to(device), batch_size)
    except (RuntimeError, AssertionError) as error:  # e.g. a ViT built for 224 px, or a fixed-size plug-in
        raise ValueError(f"model {bundle.name!r} cannot classify the {model.crop} px images of {images_path}: {error} "
                         "(image.models.<label>.input_size sets the size; docs/plugins.md)") from error
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu().numpy()
    write_h5(
        output,
        {"ids": images["ids"], "labels": images["labels"], "top1": top5[:, 0], "top5": top5},
        stage="clean_predictions",
        params={"model": model.as_params()},
        attrs=model_attrs(bundle, device, batch_size=batch_size),
    )


def attack_shard(images_path: str, clean_path: str, output: str, *, model: ModelSpec, pgd: PgdSettings, batch_size: int | str,
                 device: torch.device) -> None:
    """Targeted PGD on every image of the shard, in resumable batches (docs/method.md §5.3)."""
    bundle = model_from_spec(model, device)
    require_params(clean_path, {"model": model.as_params()})
    images = read_h5(images_path)
    clean = read_h5(clean_path)
    ids = images["ids"]
    targets = draw_targets(pgd.seed, list(ids), clean["top1"], bundle.n_classes)
    lower, upper = (b.to(device) for b in pixel_bounds())
    params = {"model": model.as_params(), "pgd": pgd.as_params()}
    checkpoint = BatchCheckpoint(output, params, inputs=[images_path, clean_path])
    batch_size = job_batch_size(batch_size, bundle, device, backward=True, checkpoint=checkpoint)

    def attack(batch: slice) -> dict[str, np.ndarray]:
        x = to_model_input(images["images"][batch]).to(device)
        result = targeted_pgd(
            bundle.module, x, torch.as_tensor(targets[batch], device=device), pgd.epsilon, pgd.step_size,
            n_steps=pgd.steps, lower=lower, upper=upper, early_stop=pgd.early_stop, batch_size=batch_size,
        )
        log.info("attacked %d images, %d successful", x.shape[0], int(result.success.sum()))
        return {
            "perturbation": (result.adversaries - x).cpu().numpy().astype(np.float32),
            "success": result.success,
            "first_success_step": result.first_success_step,
            "final_prediction": result.final_predictions,
        }

    done = checkpoint.run(len(ids), batch_size, attack)
    write_h5(
        output,
        {"ids": ids, "labels": images["labels"], "clean_prediction": clean["top1"], "target": targets, **done},
        stage="attack",
        params=params,
        seeds={"seed": pgd.seed, "stage": "pgd-target"},
        attrs=model_attrs(bundle, device, batch_size=batch_size),
    )
    checkpoint.remove()


def explain_shard(
    shard: ShardFiles, segment_files: Mapping[str, str], output: str, *, model: ModelSpec, explain: ExplainFamilySettings,
    batch_size: int | str, device: torch.device,
) -> None:
    """One explanation family on the shard's label-flip subset, explaining the adversarial prediction.

    ``segment_files`` maps each segmentation the family is aggregated on to its segments file.
    """
    bundle = model_from_spec(model, device)
    subset = open_subset(shard, "labelflip", model, segment_files)
    ids, counts = subset.ids, subset.counts
    if explain.family == "gbp" and len(ids):
        example = subset.inputs(slice(0, 1))["adversarial"].to(device)
        guided = audit_guided_activations(bundle.module, example, relu_modules_only=bool(explain.explainer.unguided_functional_relu))
        log.info("guided activations: %s", guided)
    builtin = [] if explain.family == "extra" else list(explain.explainers)
    params = {"model": model.as_params(), "explain": explain.as_params()}
    checkpoint = BatchCheckpoint(output, params, inputs=[*shard.paths, *segment_files.values()])
    # LIME makes forwards only, which a CPU runs fastest in other batches than gradient passes
    pass_rows = job_batch_size(batch_size, bundle, device, backward=not explain.forwards_only, checkpoint=checkpoint)
    if explain.forwards_only:
        lime_rows = lime_batch_size(batch_size, pass_rows, device)
    else:
        pass_rows, lime_rows = explanation_batch_size(batch_size, pass_rows, device), None
    settings = engine_settings(explain.explainer, explain.seed, pass_rows, lime_rows)

    def run(batch: slice) -> dict[str, np.ndarray]:
        pixel_maps: dict[str, np.ndarray] | None = {} if explain.keep_attributions else None
        scores = explain_all(
            bundle.module, subset.inputs(batch)["adversarial"].to(device),
            torch.as_tensor(subset.adversarial_prediction[batch], device=device), list(ids[batch]),
            {s: m.to(device) for s, m in subset.masks(batch).items()}, {s: c[batch] for s, c in counts.items()},
            builtin, settings, extras=explain.extra, pixel_maps=pixel_maps,
        )
        log.info("explained %d images with %s", batch.stop - batch.start, list(explain.explainers))
        return {**flatten_scores(_pad_scores(scores, counts)), **{f"attributions/{e}": m for e, m in (pixel_maps or {}).items()}}

    arrays = checkpoint.run(len(ids), pass_rows, run) if len(ids) else {}
    write_h5(output, {"ids": np.array(ids, dtype=str), "targets": subset.adversarial_prediction, **arrays}, stage="explain", params=params,
             seeds={"seed": explain.seed, "stages": ["noise", "lime"]},
             attrs=model_attrs(bundle, device, batch_size=pass_rows, **({"lime_batch_size": lime_rows} if lime_rows else {})))
    checkpoint.remove()


def _pad_scores(scores, counts):
    """Pad every score array to the shard's widest segmentation so batches concatenate."""
    width = {seg: int(np.max(c)) for seg, c in counts.items()}
    return {
        e: {seg: {agg: pad_scores(v, width[seg]) for agg, v in by_agg.items()} for seg, by_agg in by_seg.items()}
        for e, by_seg in scores.items()
    }


# ------------------------------------------------------------------------------------ metrics
def read_rankings(explanation_paths: Sequence[str], segmentation: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """``"<explainer>/<aggregation>"`` → (N, S) scores of one segmentation, from every explanation file."""
    rankings: dict[str, np.ndarray] = {}
    for path in explanation_paths:
        # the scores only: a file may also hold pixel maps (keep_attributions), 300 KB per image and explainer
        wanted = [name for name in dataset_names(path, "scores") if name.split("/")[2] == segmentation]
        stored = read_h5(path, ["ids", *wanted])
        if not np.array_equal(stored["ids"], np.asarray(ids, dtype=str)):
            raise ValueError(f"{path} explains other images than the subset of this shard; rerun its rule")
        for explainer, by_seg in unflatten_scores(stored).items():
            for agg, values in by_seg.get(segmentation, {}).items():
                rankings[f"{explainer}/{agg}"] = values
    return rankings


def labelflip_shard(
    shard: ShardFiles, segments_file: str, explanation_files: Sequence[str], output: str, *, model: ModelSpec, labelflip: LabelflipSettings,
    batch_size: int | str, device: torch.device,
) -> None:
    """Did adding back only the top-k segments flip the clean prediction? Every ranking, every k (docs/method.md §8.1–8.2).

    The subset is read and predicted ``batch_size`` items at a time, in resumable slices: each
    item's distinct hybrids are predicted once, so nothing is shared across slices.
    """
    bundle = model_from_spec(model, device)
    segmentation = labelflip.segmentation
    subset = open_subset(shard, "labelflip", model, {segmentation: segments_file})
    ids, counts = subset.ids, subset.counts[segmentation]
    settings = k_settings([labelflip.k, *labelflip.ks], labelflip.fractions, counts,
                          empty_fraction_selects_all=labelflip.empty_fraction_selects_all)
    fewer_segments = settings.per_item > counts[:, None]
    if fewer_segments.any():
        log.info("%d of %d images have fewer segments than some k: they get their full adversary back",
                 int(fewer_segments.any(1).sum()), len(ids))
    rankings = read_rankings(explanation_files, segmentation, ids)
    width = selection_width(counts, settings.per_item)  # the shard's, so that every slice's baselines have one width
    params = {"model": model.as_params(), "labelflip": labelflip.as_params()}
    checkpoint = BatchCheckpoint(output, params, inputs=[*shard.paths, segments_file, *explanation_files])
    batch_size = job_batch_size(batch_size, bundle, device, backward=False, checkpoint=checkpoint)

    def run(items: slice) -> dict[str, np.ndarray]:
        data, masks = subset.inputs(items), subset.masks(items)[segmentation]
        ranked = {name: values[items] for name, values in rankings.items()}
        ranked.update({f"{name}/-": values for name, values in magnitude_scores(data["clean"], data["adversarial"], masks, width).items()})
        flips = label_flips(
            bundle.module, ClassChange(subset.clean_prediction[items]), data["clean"].to(device), data["adversarial"].to(device),
            masks.to(device), counts[items], ranked, settings.per_item[items], batch_size,
        )
        return {f"flips/{name}": values for name, values in flips.items()}

    arrays = checkpoint.run(len(ids), batch_size, run) if len(ids) else {}
    write_h5(
        output,
        {"ids": np.array(ids, dtype=str), "n_segments": counts, "k": settings.k, "fraction": settings.fraction,
         "per_item_k": settings.per_item, "fewer_segments": fewer_segments, **arrays},
        stage="labelflip",
        params=params,
        attrs=model_attrs(bundle, device, batch_size=batch_size),
    )
    checkpoint.remove()


def localised_shard(shard: ShardFiles, segments_file: str, refined_file: str, output: str, *, model: ModelSpec,
                    localised: LocalisedSettings, batch_size: int | str, device: torch.device) -> None:
    """Explain the refined adversaries of the refine stage that still flip, count recovered segments (docs/method.md §8.3)."""
    bundle, segmentation = model_from_spec(model, device), localised.segmentation
    subset = open_subset(shard, "localised", model, {segmentation: segments_file})
    ids, counts = subset.ids, subset.counts[segmentation]
    require_refined(refined_file, model, segmentation, localised.ks)
    refinements = read_refinements(refined_file, localised.ks, ids)
    names = list(localised.explainers) + [e["name"] for e in localised.extra]
    params = {"model": model.as_params(), "localised": localised.as_params()}
    checkpoint = BatchCheckpoint(output, params, inputs=[*shard.paths, segments_file, refined_file])
    forward_batch = job_batch_size(batch_size, bundle, device, backward=False, checkpoint=checkpoint)
    lime_rows = lime_batch_size(batch_size, forward_batch, device)  # LIME makes forwards, the other explainers backward passes too
    gradient_batch = forward_batch
    if localised.makes_gradients:  # the gradient explainers' batch, sized for backward passes
        backward_batch = job_batch_size(batch_size, bundle, device, backward=True, checkpoint=checkpoint)
        gradient_batch = explanation_batch_size(batch_size, backward_batch, device)
    settings = engine_settings(localised.explainer, localised.seed, gradient_batch, lime_rows)

    def explain(inputs: torch.Tensor, classes: torch.Tensor, item_ids: Sequence[str], item_masks: torch.Tensor, n_segments: np.ndarray):
        # Decision 8: every explainer, LIME included, ranks by mean_abs here, as the authors' runner did
        scores = explain_all(bundle.module, inputs, classes, item_ids, {segmentation: item_masks}, {segmentation: n_segments},
                             list(localised.explainers), settings, extras=localised.extra)
        return {name: scores[name][segmentation]["mean_abs"] for name in names}

    def run(batch: slice) -> dict[str, np.ndarray]:
        inputs = subset.inputs(batch)
        experiment = explain_refined(ClassChange(subset.clean_prediction[batch]), inputs["clean"].to(device),
                                     inputs["adversarial"].to(device), subset.masks(batch)[segmentation].to(device), counts[batch],
                                     list(ids[batch]), {k: r.rows(batch) for k, r in refinements.items()}, explain, names)
        return {name: values for k, result in experiment.items() for name, values in result.arrays(k, counts[batch]).items()}

    arrays = checkpoint.run(len(ids), gradient_batch, run) if len(ids) else {}
    write_h5(output, {"ids": np.array(ids, dtype=str), "ks": np.array(localised.ks), **arrays}, stage="localised", params=params,
             attrs=model_attrs(bundle, device, batch_size=gradient_batch, forward_batch_size=forward_batch, lime_batch_size=lime_rows))
    checkpoint.remove()
