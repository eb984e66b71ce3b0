"""The image domain's stages, one function per workflow rule.

Each function reads its input files, computes, and writes one output file atomically with
provenance. They are what the thin scripts in ``scripts/`` call, and are usable without Snakemake.
Long stages resume from per-batch checkpoints beside their output.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import metrics, segments
from ..attacks.pgd import draw_targets, targeted_pgd
from ..batching import run_batched
from ..data.image_items import locate, read_image_manifest
from ..data.images import load_image, pixel_bounds, preprocess, to_model_input
from ..explainers.engine import ExplainSettings, GradientSettings, LimeSettings, explain_all, flatten_scores, unflatten_scores
from ..guided import audit_guided_activations
from ..models import ModelBundle, load_model, predict
from ..seeding import numpy_rng
from ..store import BatchCheckpoint, dataset_shape, read_h5, require_params, write_h5

log = logging.getLogger("advxai")


# ------------------------------------------------------------------------------------ loading
def model_from_spec(spec: Mapping[str, Any], device: torch.device) -> ModelBundle:
    return load_model(spec["architecture"], weights=spec.get("weights", "DEFAULT"), device=str(device))


def shard_inputs(images_path: str, adversaries_path: str, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Clean and adversarial normalised inputs of a shard (optionally only ``ids``, in that order)."""
    images = read_h5(images_path)
    adv = read_h5(adversaries_path)
    position = {item_id: i for i, item_id in enumerate(images["ids"])}
    if not np.array_equal(images["ids"], adv["ids"]):
        raise ValueError(f"{adversaries_path} does not hold the images of {images_path}")
    rows = np.array([position[i] for i in ids], dtype=int) if ids is not None else np.arange(len(images["ids"]))
    clean = to_model_input(images["images"][rows]) if len(rows) else torch.empty(0)
    perturbation = torch.from_numpy(adv["perturbation"][rows]) if len(rows) else torch.empty(0)
    return {
        "ids": images["ids"][rows],
        "rows": rows,
        "clean": clean,
        "adversarial": clean + perturbation if len(rows) else clean,
        "clean_prediction": adv["clean_prediction"][rows],
        "adversarial_prediction": adv["final_prediction"][rows],
    }


def subset_ids(subset_path: str, ids: Sequence[str], which: str) -> list[str]:
    """The ids of this shard (in shard order) that belong to the ``which`` subset."""
    chosen = set(read_h5(subset_path, [f"{which}_ids"])[f"{which}_ids"])
    return [i for i in ids if i in chosen]


# ------------------------------------------------------------------------------------ stages
def shard_rows(shard: int, shard_size: int, max_images: int | None) -> tuple[int, int]:
    """Manifest rows ``start, stop`` of a shard: items in data set order, the first ``max_images`` only."""
    start = shard * shard_size
    stop = start + shard_size
    return start, stop if max_images is None else min(stop, max_images)


def build_image_shard(manifest: str, root: str | None, output: str, params: Mapping[str, Any]) -> None:
    """Decode, resize and centre-crop one shard of a manifest's items to uint8 (docs/method.md §5.2).

    ``root`` is where the manifest's files lie now (None for bundled photographs); the shard
    stores their paths relative to it, so that it does not depend on where the data lies.
    """
    start, stop = shard_rows(params["shard"], params["shard_size"], params["max_images"])
    shard = read_image_manifest(manifest, start, stop)
    if not shard:
        raise ValueError(f"shard {params['shard']} is empty: {manifest} has no rows {start}..{stop - 1}")
    images = np.stack([preprocess(load_image(locate(item, root)), params["resize"], params["crop"]) for item in tqdm(shard, desc="decode")])
    write_h5(
        output,
        {"ids": [i.id for i in shard], "sources": [i.source for i in shard], "labels": np.array([i.label for i in shard]), "images": images},
        stage="image_shard",
        params=params,
    )


def clean_predictions(images_path: str, output: str, *, model: Mapping[str, Any], batch_size: int, device: torch.device) -> None:
    """Clean top-1 and top-5 predictions of one shard."""
    bundle = model_from_spec(model, device)
    images = read_h5(images_path)
    logits = predict(bundle.module, to_model_input(images["images"]).to(device), batch_size)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu().numpy()
    write_h5(
        output,
        {"ids": images["ids"], "labels": images["labels"], "top1": top5[:, 0], "top5": top5},
        stage="clean_predictions",
        params={"model": dict(model)},
    )


def attack_shard(
    images_path: str, clean_path: str, output: str, *, model: Mapping[str, Any], pgd: Mapping[str, Any], batch_size: int, device: torch.device
) -> None:
    """Targeted PGD on every image of the shard, in resumable batches (docs/method.md §5.3)."""
    bundle = model_from_spec(model, device)
    require_params(clean_path, {"model": dict(model)})
    images = read_h5(images_path)
    clean = read_h5(clean_path)
    ids = images["ids"]
    targets = draw_targets(pgd["seed"], list(ids), clean["top1"], bundle.n_classes)
    lower, upper = (b.to(device) for b in pixel_bounds())
    params = {"model": dict(model), "pgd": dict(pgd)}

    def attack(batch: slice) -> dict[str, np.ndarray]:
        x = to_model_input(images["images"][batch]).to(device)
        result = targeted_pgd(
            bundle.module, x, torch.as_tensor(targets[batch], device=device), pgd["epsilon"], pgd["step_size"],
            n_steps=pgd["steps"], lower=lower, upper=upper, early_stop=pgd["early_stop"], batch_size=batch_size,
        )
        log.info("attacked %d images, %d successful", x.shape[0], int(result.success.sum()))
        return {
            "perturbation": (result.adversaries - x).cpu().numpy().astype(np.float32),
            "success": result.success,
            "first_success_step": result.first_success_step,
            "final_prediction": result.final_predictions,
        }

    checkpoint = BatchCheckpoint(output, params)
    done = checkpoint.run(len(ids), batch_size, attack)
    write_h5(
        output,
        {"ids": ids, "labels": images["labels"], "clean_prediction": clean["top1"], "target": targets, **done},
        stage="attack",
        params=params,
        seeds={"seed": pgd["seed"], "stage": "pgd-target"},
    )
    checkpoint.remove()


def draw_subset(candidates: Sequence[str], size: int, seed: int, stage: str, model: str) -> list[str]:
    """A seeded draw without replacement of ``size`` candidates (all if fewer), in candidate order."""
    if not candidates:
        return []
    chosen = numpy_rng(seed, stage, model).choice(len(candidates), size=min(size, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(chosen)]


def subset_size(fraction: float, n_images: int) -> int:
    """The paper's subset: a fraction of all images (10 % of 50 000 = 5 000), at least one."""
    return max(1, int(round(fraction * n_images)))


def draw_subsets(adversary_paths: Sequence[str], output: str, *, subset: Mapping[str, Any]) -> None:
    """The evaluation subsets of one model: label flip and localised (docs/decisions.md §10.10), from successful adversaries."""
    ids, success = [], []
    for path in adversary_paths:
        shard = read_h5(path, ["ids", "success"])
        ids += list(shard["ids"])
        success += list(shard["success"])
    successful = [i for i, ok in zip(ids, success) if ok]
    labelflip = draw_subset(successful, subset_size(subset["fraction"], len(ids)), subset["seed"], "subset-labelflip", subset["model"])
    localised = draw_subset(successful, subset_size(subset["localised_fraction"], len(ids)), subset["seed"], "subset-localised", subset["model"])
    write_h5(
        output,
        {"labelflip_ids": np.array(labelflip, dtype=str), "localised_ids": np.array(localised, dtype=str),
         "n_images": len(ids), "n_adversaries": len(successful)},
        stage="subsets",
        params=dict(subset),
        seeds={"seed": subset["seed"], "stages": ["subset-labelflip", "subset-localised"]},
    )


def segment_shard(images_path: str, adversaries_path: str, subset_path: str, output: str, *, segmentation: Mapping[str, Any]) -> None:
    """Segment id maps of the shard's subset images, and the segment count of every successful adversary.

    4×4 rectangles, or SLIC on the normalised adversary. The maps feed the explanation and metric
    jobs, which process the subsets only; the counts of all successful adversaries are Table 6, as
    the paper counts the SLIC segments of all adversaries. SLIC runs once per adversary.
    """
    all_ids = read_h5(images_path, ["ids"])["ids"]
    chosen = set(subset_ids(subset_path, all_ids, "labelflip")) | set(subset_ids(subset_path, all_ids, "localised"))
    success = read_h5(adversaries_path, ["success"])["success"]
    adversary_ids = [i for i, ok in zip(all_ids, success) if ok]
    height, width = dataset_shape(images_path, "images")[1:3]
    if segmentation["method"] == "rect":
        grid = segments.rectangles(height, width, segmentation["grid"])
        maps = (grid for _ in adversary_ids)
    else:
        slic_args = {k: segmentation[k] for k in ("n_segments", "compactness", "sigma")}
        adversarial = shard_inputs(images_path, adversaries_path, adversary_ids)["adversarial"]
        maps = (segments.slic(x.numpy(), **slic_args) for x in tqdm(adversarial, desc="slic"))
    counts, masks, ids = [], [], []
    for item_id, mask in zip(adversary_ids, maps):
        counts.append(segments.n_segments(mask))
        if item_id in chosen:
            ids.append(item_id)
            masks.append(mask.astype(np.int16))
    counts = np.array(counts, dtype=np.int64)
    write_h5(
        output,
        {"ids": np.array(ids, dtype=str), "masks": np.stack(masks) if masks else np.zeros((0, height, width), np.int16),
         "n_segments": counts[[i in chosen for i in adversary_ids]], "adversary_ids": np.array(adversary_ids, dtype=str), "adversary_n_segments": counts},
        stage="segments",
        params=dict(segmentation),
    )


def _masks(path: str, ids: Sequence[str]) -> tuple[torch.Tensor, np.ndarray]:
    stored = read_h5(path)
    position = {item_id: i for i, item_id in enumerate(stored["ids"])}
    missing = [i for i in ids if i not in position]
    if missing:
        raise ValueError(f"{path} has no segmentation for {missing[:3]}")
    rows = [position[i] for i in ids]
    return torch.from_numpy(stored["masks"][rows].astype(np.int64)), stored["n_segments"][rows]


def explain_settings(explain: Mapping[str, Any], batch_size: int) -> ExplainSettings:
    """Engine settings from the config keys of ``image.explain`` that a job received (paper defaults otherwise)."""
    lime, gradients = LimeSettings(), GradientSettings()
    return ExplainSettings(
        lime=LimeSettings(n_samples=explain.get("lime_samples", lime.n_samples), kernel_width=explain.get("lime_kernel_width", lime.kernel_width)),
        gradients=GradientSettings(n_noise=explain.get("noise_samples", gradients.n_noise), noise_std=explain.get("noise_std", gradients.noise_std),
                                   ig_steps=explain.get("ig_steps", gradients.ig_steps)),
        seed=explain["seed"],
        batch_size=batch_size,
    )


def subset_inputs(
    inputs: Mapping[str, str], which: str, model: Mapping[str, Any], segment_files: Mapping[str, str]
) -> tuple[list[str], dict[str, Any], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """(ids, clean/adversarial inputs, masks and segment counts per segmentation) of the shard's ``which`` subset.

    The adversaries must come from ``model``: a stale file written for other weights fails here.
    """
    require_params(inputs["adversaries"], {"model": dict(model)})
    ids = subset_ids(inputs["subset"], read_h5(inputs["images"], ["ids"])["ids"], which)
    data = shard_inputs(inputs["images"], inputs["adversaries"], ids)
    masks, counts = {}, {}
    for segmentation, path in segment_files.items():
        masks[segmentation], counts[segmentation] = _masks(path, ids)
    return ids, data, masks, counts


def explain_shard(inputs: Mapping[str, str], output: str, *, model: Mapping[str, Any], explain: Mapping[str, Any], batch_size: int, device: torch.device) -> None:
    """One explanation family on the shard's label-flip subset, explaining the adversarial prediction."""
    bundle = model_from_spec(model, device)
    segment_files = {key.removeprefix("segments_"): path for key, path in inputs.items() if key.startswith("segments_")}
    ids, data, masks, counts = subset_inputs(inputs, "labelflip", model, segment_files)
    if explain["family"] == "gbp" and len(ids):
        log.info("guided activations: %s", audit_guided_activations(bundle.module, data["adversarial"][:1].to(device)))
    settings = explain_settings(explain, batch_size)
    extras = explain.get("extra", []) if explain["family"] == "extra" else []
    builtin = [] if extras else explain["explainers"]
    params = {"model": dict(model), "explain": dict(explain)}

    def run(batch: slice) -> dict[str, np.ndarray]:
        pixel_maps: dict[str, np.ndarray] | None = {} if explain.get("keep_attributions") else None
        scores = explain_all(
            bundle.module, data["adversarial"][batch].to(device), torch.as_tensor(data["adversarial_prediction"][batch], device=device),
            list(ids[batch]), {s: m[batch].to(device) for s, m in masks.items()}, {s: c[batch] for s, c in counts.items()},
            builtin, settings, extras=extras, pixel_maps=pixel_maps,
        )
        log.info("explained %d images with %s", batch.stop - batch.start, explain["explainers"])
        return {**flatten_scores(_pad_scores(scores, counts)), **{f"attributions/{e}": m for e, m in (pixel_maps or {}).items()}}

    checkpoint = BatchCheckpoint(output, params)
    arrays = checkpoint.run(len(ids), batch_size, run) if len(ids) else {}
    write_h5(output, {"ids": np.array(ids, dtype=str), "targets": data["adversarial_prediction"], **arrays}, stage="explain", params=params,
             seeds={"seed": explain["seed"], "stages": ["noise", "lime"]})
    checkpoint.remove()


def _pad_scores(scores, counts):
    """Pad every score array to the shard's widest segmentation so batches concatenate."""
    width = {seg: int(np.max(c)) for seg, c in counts.items()}
    return {
        e: {seg: {agg: _pad(v, width[seg]) for agg, v in by_agg.items()} for seg, by_agg in by_seg.items()}
        for e, by_seg in scores.items()
    }


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] >= width:
        return values
    return np.pad(values, ((0, 0), (0, width - values.shape[1])), constant_values=metrics.ABSENT)


# ------------------------------------------------------------------------------------ metrics
def selection_width(counts: np.ndarray, ks: np.ndarray) -> int:
    """Columns of the score matrices that top-k selects from: the widest segmentation, and at least the largest k.

    An image with fewer segments than k is kept, as the authors' code kept it: its absent segment
    ids score ``metrics.ABSENT`` and rank last, so top-k selects every real segment (the hybrid is
    the full adversary) and the image stays in the denominator.
    """
    return max(int(np.max(counts, initial=0)), int(np.max(ks, initial=0)))


def read_rankings(explanation_paths: Sequence[str], segmentation: str, ids: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """(explainer, aggregation) → (N, S) scores of one segmentation, from every explanation file."""
    rankings: dict[tuple[str, str], np.ndarray] = {}
    for path in explanation_paths:
        stored = read_h5(path)
        if not np.array_equal(stored["ids"], np.asarray(ids, dtype=str)):
            raise ValueError(f"{path} explains other images than the subset of this shard; rerun its rule")
        for explainer, by_seg in unflatten_scores(stored).items():
            for agg, values in by_seg.get(segmentation, {}).items():
                rankings[(explainer, agg)] = values
    return rankings


def flip_settings(labelflip: Mapping[str, Any], n_segments: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k per setting, fraction per setting, per-item k matrix (N, n_settings)) for the fixed k and the sweeps."""
    ks = [labelflip["k"], *labelflip["ks"]]
    fractions = [np.nan] * len(ks) + list(labelflip["fractions"])
    per_item = [np.full(len(n_segments), k) for k in ks] + [np.floor(p * n_segments + 1e-9).astype(int) for p in labelflip["fractions"]]
    k_column = ks + [0] * len(labelflip["fractions"])
    return np.array(k_column), np.array(fractions, dtype=float), np.stack(per_item, axis=1) if per_item else np.zeros((len(n_segments), 0), int)


def predict_selections(model: torch.nn.Module, clean: torch.Tensor, adversarial: torch.Tensor, masks: torch.Tensor, selections: np.ndarray, batch_size: int) -> np.ndarray:
    """Predictions of the hybrids for boolean ``selections`` (N, R, S).

    Each item's identical hybrids are predicted once, and the hybrids of all items share the
    fixed-shape forward passes of :func:`run_batched` (only the last one is padded).
    """
    n_items, n_rows, _ = selections.shape
    if n_items == 0:
        return np.empty((0, n_rows), dtype=np.int64)
    uniques, inverses = zip(*(np.unique(selections[i], axis=0, return_inverse=True) for i in range(n_items)))
    counts = [len(unique) for unique in uniques]
    owner = torch.from_numpy(np.repeat(np.arange(n_items), counts)).to(clean.device)
    selected = torch.from_numpy(np.concatenate(uniques)).to(clean.device)

    def hybrid_logits(rows: torch.Tensor) -> torch.Tensor:
        items = owner[rows]
        return model(metrics.hybrid(clean[items], adversarial[items], masks[items], selected[rows]))

    with torch.no_grad():
        logits = run_batched(hybrid_logits, torch.arange(len(owner), device=clean.device), batch_size)
    unique_predictions = logits.argmax(1).cpu().numpy()
    starts = np.cumsum([0, *counts])
    return np.stack([unique_predictions[starts[i] : starts[i + 1]][inverses[i].ravel()] for i in range(n_items)])


def labelflip_shard(inputs: Mapping[str, str], output: str, *, model: Mapping[str, Any], labelflip: Mapping[str, Any], batch_size: int, device: torch.device) -> None:
    """Did adding back only the top-k segments flip the clean prediction? Every ranking, every k (docs/method.md §8.1–8.2)."""
    bundle = model_from_spec(model, device)
    segmentation = labelflip["segmentation"]
    ids, data, masks, counts = subset_inputs(inputs, "labelflip", model, {segmentation: inputs["segments"]})
    masks, counts = masks[segmentation], counts[segmentation]
    k_column, fraction_column, per_item_k = flip_settings(labelflip, counts)
    fewer_segments = per_item_k > counts[:, None]
    if fewer_segments.any():
        log.info("%d of %d images have fewer segments than some k: they get their full adversary back", int(fewer_segments.any(1).sum()), len(ids))
    width = selection_width(counts, per_item_k)
    rankings = read_rankings([p for key, p in inputs.items() if key.startswith("explanations_")], segmentation, ids)
    if len(ids):
        baselines = metrics.magnitude_scores(data["clean"].numpy(), data["adversarial"].numpy(), masks.numpy(), width)
        rankings.update({(name, "-"): values for name, values in baselines.items()})
    names = sorted(rankings)
    arrays: dict[str, np.ndarray] = {}
    if len(ids):
        selections = np.stack(
            [np.stack([metrics.top_k(_pad(rankings[name], width), per_item_k[:, j]) for j in range(per_item_k.shape[1])], axis=1) for name in names],
            axis=1,
        )  # (N, rankings, settings, S)
        n, r, s, _ = selections.shape
        predictions = predict_selections(bundle.module, data["clean"].to(device), data["adversarial"].to(device), masks.to(device), selections.reshape(n, r * s, width), batch_size)
        flips = predictions.reshape(n, r, s) != data["clean_prediction"][:, None, None]
        arrays = {f"flips/{e}/{agg}": flips[:, j] for j, (e, agg) in enumerate(names)}
    write_h5(
        output,
        {"ids": np.array(ids, dtype=str), "n_segments": counts, "k": k_column, "fraction": fraction_column, "per_item_k": per_item_k,
         "fewer_segments": fewer_segments, **arrays},
        stage="labelflip",
        params={"model": dict(model), "labelflip": dict(labelflip)},
    )


def localised_shard(inputs: Mapping[str, str], output: str, *, model: Mapping[str, Any], localised: Mapping[str, Any], batch_size: int, device: torch.device) -> None:
    """Keep only the top-k magnitude segments of the perturbation, explain what still flips, count recovered segments (docs/method.md §8.3)."""
    bundle = model_from_spec(model, device)
    segmentation = localised["segmentation"]
    ids, data, masks, counts = subset_inputs(inputs, "localised", model, {segmentation: inputs["segments"]})
    masks, counts = masks[segmentation], counts[segmentation]
    settings = explain_settings(localised, batch_size)
    names = list(localised["explainers"]) + [e["name"] for e in localised["extra"]]
    params = {"model": dict(model), "localised": dict(localised)}

    def run(batch: slice) -> dict[str, np.ndarray]:
        clean, adversarial, mask = data["clean"][batch].to(device), data["adversarial"][batch].to(device), masks[batch].to(device)
        width = selection_width(counts[batch], np.array(localised["ks"]))
        magnitude = metrics.magnitude_scores(clean.cpu().numpy(), adversarial.cpu().numpy(), mask.cpu().numpy(), width)["magnitude"]
        out: dict[str, np.ndarray] = {}
        for k in localised["ks"]:
            truth = metrics.top_k(magnitude, k)
            refined = metrics.hybrid(clean, adversarial, mask, torch.from_numpy(truth).to(device))
            prediction = predict(bundle.module, refined, batch_size).argmax(1).cpu().numpy()
            kept = prediction != data["clean_prediction"][batch]
            recovered = {name: np.full(len(kept), -1) for name in names}
            if kept.any():
                keep = torch.from_numpy(kept).to(device)
                scores = explain_all(
                    bundle.module, refined[keep], torch.as_tensor(prediction[kept], device=device),
                    [f"{i}#localised-k{k}" for i in np.asarray(ids[batch])[kept]], {segmentation: mask[keep]},
                    {segmentation: counts[batch][kept]}, localised["explainers"], settings, extras=localised["extra"],
                )
                for name in names:
                    found = metrics.top_k(_pad(scores[name][segmentation]["mean_abs"], width), k)
                    recovered[name][kept] = metrics.recovered(truth[kept], found)
            out[f"k{k}/prediction"] = prediction
            out[f"k{k}/kept"] = kept
            out[f"k{k}/fewer_segments"] = counts[batch] < k
            out.update({f"k{k}/recovered/{name}": values for name, values in recovered.items()})
        return out

    checkpoint = BatchCheckpoint(output, params)
    arrays = checkpoint.run(len(ids), batch_size, run) if len(ids) else {}
    write_h5(output, {"ids": np.array(ids, dtype=str), "ks": np.array(localised["ks"]), **arrays}, stage="localised", params=params)
    checkpoint.remove()
