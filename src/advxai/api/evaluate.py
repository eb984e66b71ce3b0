"""``advxai.evaluate``: score explainers against adversarial ground truth in one call.

The call runs, chunk by chunk, what the workflow's image stages run on a shard (docs/method.md
§5–§8): clean predictions, targeted PGD seeded per item (or the caller's adversaries), the
segmentations, every explainer on the adversarial prediction (the engine shares passes as in the
workflow), label flips of every explainer and of the magnitude baselines, and the localised
experiment. Only per-item outcomes outlive a chunk, so memory is set by the chunk (the batch
size), not by the number of images. The batch sizes follow the workflow's policy
(:func:`advxai.batching.job_batch_size` and the two rules beside it), so the same images and
settings give the workflow's numbers bitwise (tests/test_api.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .. import segments
from ..attacks.pgd import draw_targets, targeted_pgd
from ..batching import explanation_batch_size, job_batch_size, lime_batch_size
from ..data.model_inputs import pixel_bounds
from ..evaluation.baselines import magnitude_scores
from ..evaluation.flips import ClassChange
from ..evaluation.labelflip import k_settings, label_flips
from ..evaluation.localised import localised_experiment
from ..evaluation.selection import selection_width
from ..explainers.engine import ExplainSettings, explain_all
from ..explainers.settings import ExplainerSettings
from ..models import ModelBundle, predict
from ..names import BASELINE_AGGREGATION, BUILTIN_EXPLAINERS, reported_aggregation
from ..runtime import use_device
from ..stages.settings import PgdSettings, SegmentationSettings
from ..types import Scores
from .explainers import Explainers, sort_explainers
from .inputs import Chunk, count_classes, image_chunks, resolve_model
from .result import Result

Segmentation = str | SegmentationSettings | torch.Tensor | np.ndarray
"""``"rect"``, ``"slic"`` (the paper's settings), a :class:`SegmentationSettings`, or segment id maps ``(N, H, W)``."""


@dataclass
class _Plan:
    """What every chunk of one call runs with."""

    bundle: ModelBundle
    device: torch.device
    explainers: Explainers
    segmentations: dict[str, SegmentationSettings | torch.Tensor]
    ks: list[int]
    localised_ks: list[int]
    attack: PgdSettings | None
    engine: ExplainSettings  # gradient passes at the backward size, LIME at its own
    forward_batch: int
    attack_batch: int


def _segmentations(segmentation: Segmentation | Sequence[Segmentation] | Mapping[str, Segmentation]) -> dict[str, Any]:
    """Name → settings or id maps; maps given without a name are called ``masks``."""
    if isinstance(segmentation, Mapping):
        items = list(segmentation.items())
    elif isinstance(segmentation, (str, SegmentationSettings, torch.Tensor, np.ndarray)):
        items = [(None, segmentation)]
    else:
        items = [(None, s) for s in segmentation]
    named: dict[str, Any] = {}
    for name, value in items:
        if isinstance(value, str):
            value = SegmentationSettings.paper(value)
        if isinstance(value, SegmentationSettings):
            named[name or value.method] = value
        else:
            named[name or "masks"] = torch.as_tensor(
                np.asarray(value) if not isinstance(value, torch.Tensor) else value
            ).long()
    return named


def _segment(setting: SegmentationSettings | torch.Tensor, adversarial: torch.Tensor, rows: slice) -> torch.Tensor:
    """Segment id maps ``(n, H, W)`` of a chunk: rectangles, SLIC on the normalised adversary (decision 12),
    or the caller's maps."""
    if isinstance(setting, torch.Tensor):
        return setting[rows].clone()
    height, width = adversarial.shape[-2:]
    if setting.method == "rect":
        grid = torch.from_numpy(segments.rectangles(height, width, setting.grid))
        return grid.expand(len(adversarial), -1, -1).clone()
    maps = [
        segments.slic(x, n_segments=setting.n_segments, compactness=setting.compactness, sigma=setting.sigma)
        for x in adversarial.numpy()
    ]
    return torch.from_numpy(np.stack(maps).astype(np.int16).astype(np.int64))  # int16 as the workflow stores them


def _explain(
    plan: _Plan,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    builtin: Sequence[str],
) -> Scores:
    """Every explainer's segment scores: the engine's (built-ins and extras), then the caller's segment scorers."""
    scores = explain_all(
        plan.bundle.module, inputs, targets, ids, masks, counts, builtin, plan.engine, extras=plan.explainers.extras
    )
    for name, scorer in plan.explainers.segment_scorers.items():
        scores[name] = {
            seg: {
                "mean_abs": np.asarray(
                    torch.as_tensor(scorer(plan.bundle.module, inputs, targets, masks=m)).detach().cpu(),
                    dtype=np.float64,
                )
            }
            for seg, m in masks.items()
        }
    return scores


def _adversaries(
    plan: _Plan, chunk: Chunk, clean: torch.Tensor, clean_prediction: np.ndarray, supplied: Chunk | None, seed: int
):
    """Adversarial inputs and their predictions, and which of them flip the clean decision."""
    module = plan.bundle.module
    if supplied is None:
        targets = draw_targets(seed, chunk.ids, clean_prediction, plan.bundle.n_classes)
        lower, upper = (bound.to(plan.device) for bound in pixel_bounds())
        pgd = plan.attack
        result = targeted_pgd(
            module,
            clean,
            torch.as_tensor(targets, device=plan.device),
            pgd.epsilon,
            pgd.step_size,
            n_steps=pgd.steps,
            lower=lower,
            upper=upper,
            early_stop=pgd.early_stop,
            batch_size=plan.attack_batch,
        )
        # The workflow stores the float32 perturbation and adds it back: the same adversary, bit for bit.
        perturbation = (result.adversaries - clean).cpu()
        return clean.cpu() + perturbation, result.final_predictions, result.success
    adversarial = supplied.inputs
    predicted = predict(module, adversarial, plan.forward_batch).argmax(1).cpu().numpy()
    return adversarial, predicted, predicted != clean_prediction


def _score_chunk(plan: _Plan, chunk: Chunk, supplied: Chunk | None, seed: int, start: int) -> Result:
    """The outcomes of one chunk's items (see the module docstring)."""
    device, module = plan.device, plan.bundle.module
    logits = predict(module, chunk.inputs, plan.forward_batch)
    clean_prediction = logits.topk(1, dim=1).indices[:, 0].cpu().numpy()  # the workflow's top-1
    labelled = chunk.labels >= 0
    part = Result(
        ids=[],
        ks=plan.ks,
        localised_ks=plan.localised_ks,
        n_images=len(chunk.ids),
        n_labelled=int(labelled.sum()),
        n_correct=int(np.sum(clean_prediction[labelled] == chunk.labels[labelled])),
    )
    adversarial, predicted, success = _adversaries(
        plan, chunk, chunk.inputs.to(device), clean_prediction, supplied, seed
    )
    rows = np.flatnonzero(success)
    part.n_adversaries = len(rows)
    if not len(rows):
        return part
    ids = [chunk.ids[i] for i in rows]
    index = torch.from_numpy(rows)
    clean, adversarial = chunk.inputs[index], adversarial[index]
    masks = {
        name: _segment(s, adversarial, slice(start, start + len(chunk.ids)))[index]
        if isinstance(s, torch.Tensor)
        else _segment(s, adversarial, slice(None))
        for name, s in plan.segmentations.items()
    }
    counts = {name: np.array([segments.n_segments(m) for m in maps.numpy()]) for name, maps in masks.items()}
    on_device = {name: maps.to(device) for name, maps in masks.items()}
    targets = torch.as_tensor(predicted[rows], device=device)
    scores = (
        _explain(plan, adversarial.to(device), targets, ids, on_device, counts, plan.explainers.builtin)
        if plan.ks
        else {}
    )
    flip_test = ClassChange(clean_prediction[rows])
    part.ids = ids
    for name in masks:
        if plan.ks:
            part.flips[name] = _label_flips(
                plan, flip_test, clean, adversarial, masks[name], counts[name], scores, name
            )
        if plan.localised_ks:
            part.recovered[name] = _localised(plan, flip_test, clean, adversarial, masks[name], counts[name], ids, name)
    return part


def _label_flips(
    plan: _Plan,
    flip_test: ClassChange,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: torch.Tensor,
    counts: np.ndarray,
    scores: Scores,
    segmentation: str,
) -> dict[tuple[str, str], np.ndarray]:
    """Flips ``(n, len(ks))`` of each explainer's reported ranking and of both magnitude baselines."""
    per_item = k_settings(plan.ks, [], counts).per_item
    rankings = {
        (name, reported_aggregation(name)): scores[name][segmentation][reported_aggregation(name)]
        for name in plan.explainers.names
    }
    width = selection_width(counts, per_item)
    rankings.update(
        {
            (name, BASELINE_AGGREGATION): values
            for name, values in magnitude_scores(clean, adversarial, masks, width).items()
        }
    )
    device = plan.device
    flips = label_flips(
        plan.bundle.module,
        flip_test,
        clean.to(device),
        adversarial.to(device),
        masks.to(device),
        counts,
        {"/".join(key): values for key, values in rankings.items()},
        per_item,
        plan.forward_batch,
    )
    return {key: flips["/".join(key)] for key in rankings}


def _localised(
    plan: _Plan,
    flip_test: ClassChange,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: torch.Tensor,
    counts: np.ndarray,
    ids: Sequence[str],
    segmentation: str,
) -> dict[int, dict[str, np.ndarray]]:
    """Recovered counts per k and explainer; every explainer ranks by mean_abs here, as in the workflow (decision 8)."""
    names = plan.explainers.names

    def explain_refined(inputs, classes, item_ids, item_masks, n_segments):
        scores = _explain(
            plan,
            inputs,
            classes,
            item_ids,
            {segmentation: item_masks},
            {segmentation: n_segments},
            plan.explainers.builtin,
        )
        return {name: scores[name][segmentation]["mean_abs"] for name in names}

    device = plan.device
    experiment = localised_experiment(
        plan.bundle.module,
        flip_test,
        clean.to(device),
        adversarial.to(device),
        masks.to(device),
        counts,
        list(ids),
        plan.localised_ks,
        explain_refined,
        names,
        plan.forward_batch,
    )
    return {k: dict(result.recovered) for k, result in experiment.items()}


def _batch_sizes(
    batch_size: int | str, bundle: ModelBundle, device: torch.device, forwards_only: bool
) -> tuple[int, int, int, int]:
    """(gradient pass rows, LIME rows, forward rows, PGD rows) by the workflow's policy for ``image.batch_size``."""
    forward = job_batch_size(batch_size, bundle, device, backward=False)
    backward = forward if forwards_only else job_batch_size(batch_size, bundle, device, backward=True)
    return (
        explanation_batch_size(batch_size, backward, device),
        lime_batch_size(batch_size, forward, device),
        forward,
        backward,
    )


def _stream(plan: _Plan, images: Any, attack: Any, seed: int, ids: Any, labels: Any) -> Result:
    """Score ``images`` chunk by chunk (with the supplied adversaries, where ``attack`` holds them)."""
    result = Result(ids=[], ks=plan.ks, localised_ks=plan.localised_ks, seed=seed)
    pgd, bundle, chosen = plan.attack, plan.bundle, plan.device
    gradient_rows = plan.engine.batch_size
    adversary_chunks = None if pgd is not None else image_chunks(attack, bundle, gradient_rows)
    start = 0
    for chunk in image_chunks(images, bundle, gradient_rows, ids=ids, labels=labels):
        plan.bundle = bundle = count_classes(bundle, chunk.inputs.to(chosen))
        supplied = None if adversary_chunks is None else next(adversary_chunks, None)
        if adversary_chunks is not None and (supplied is None or len(supplied.ids) != len(chunk.ids)):
            raise ValueError("attack: the supplied adversaries must match the images one for one")
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            result.extend(_score_chunk(plan, chunk, supplied, pgd.seed if pgd else seed, start))
        start += len(chunk.ids)
    return result


def evaluate(
    model: Any,
    images: Any,
    *,
    attack: PgdSettings | Any,
    explainers: Sequence[Any] | Mapping[str, Any] = BUILTIN_EXPLAINERS,
    segmentation: Segmentation | Sequence[Segmentation] | Mapping[str, Segmentation] = "slic",
    k: Iterable[int] = (1, 3, 5),
    localised_k: Iterable[int] | None = None,
    settings: ExplainerSettings | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | str = 8,
    labels: Iterable[int] | None = None,
    ids: Iterable[str] | None = None,
    weights: str | None = "DEFAULT",
    arithmetic: str = "exact",
) -> Result:
    """Score explainers against adversarial ground truth (docs/api.md).

    Args:
        model: an ``nn.Module`` taking normalised inputs and returning logits, or a name: a
            torchvision model, ``efficientnet_lite0``, ``timm:<name>`` or ``package.module:function``.
        images: a float tensor of model inputs ``(N, C, H, W)``, uint8 images ``(N, H, W, 3)``, a
            folder of image files, or an iterable or DataLoader of batches (or ``(batch, labels)``).
        attack: ``advxai.PGD(epsilon=, step_size=, steps=)`` (targeted, seeded per item), or the
            adversaries themselves, in any form ``images`` takes and in the same order.
        explainers: built-in names, config entries, captum attributions or callables (docs/api.md).
        segmentation: ``"slic"``, ``"rect"``, a ``SegmentationSettings``, segment id maps, or several.
        k: label-flip k values; localised_k: the localised experiment's (default: ``k``).
        settings: the explainers' settings (default: the paper's, ``ExplainerSettings.paper()``).
        seed: seeds PGD's targets, LIME's samples and the noise, per item id.
        device: ``auto``, ``cpu`` or ``cuda``; batch_size: rows per pass, or ``auto`` (as ``image.batch_size``).
        labels: classes per image (``Result.clean_accuracy``); ids: item ids (seeds), default ``"0"``, ``"1"``, ...
        weights: for a model name (``None``: random); arithmetic: ``exact``, ``tf32`` or ``bf16``.
    """
    from .audio import Excerpts, evaluate_excerpts

    if isinstance(images, Excerpts):
        audio = dict(k=k, localised_k=localised_k, settings=settings, seed=seed, device=device, batch_size=batch_size)
        return evaluate_excerpts(model, images, explainers=explainers, **audio)
    chosen = use_device(device, arithmetic)
    bundle = resolve_model(model, weights, chosen, arithmetic)
    sorted_ = sort_explainers(explainers)
    pgd = (
        replace(attack, seed=seed if attack.seed is None else attack.seed) if isinstance(attack, PgdSettings) else None
    )
    forwards_only = pgd is None and not sorted_.extras and all(name == "lime" for name in sorted_.builtin)
    gradient_rows, lime_rows, forward_rows, attack_rows = _batch_sizes(batch_size, bundle, chosen, forwards_only)
    engine = ExplainSettings(
        explainer=settings or ExplainerSettings.paper(), seed=seed, batch_size=gradient_rows, lime_batch_size=lime_rows
    )
    ks, localised_ks = sorted(set(k)), sorted(set(k if localised_k is None else localised_k))
    plan = _Plan(
        bundle, chosen, sorted_, _segmentations(segmentation), ks, localised_ks, pgd, engine, forward_rows, attack_rows
    )
    return _stream(plan, images, attack, seed, ids, labels)
