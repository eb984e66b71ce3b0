"""The example items of the method figures, one file per model (images) or detector (audio).

The paper's Figs 1, 4, 9 and 10–12 and the refined-perturbation figures show a few items. Their
choice is seeded (``image.examples``: a ranking of the localised subset by per-item seed, or the
ids a user names) and the same everywhere. Only these items keep pixel maps: the explanation
stages keep segment scores, so a paper-scale run does not store thousands of maps per model.

An image example file holds, per example: the clean image and its adversary in pixel units, both
predictions, each segmentation's segment map, every explainer's scores of the clean image for its
clean prediction (as in the paper's Figs 1 and 9) with the raw IG pixel map (Fig. 4), and per
segmentation and k the refinement (from the refine stage) with each localised explainer's
``mean_abs`` scores of the refined input, for the class it is assigned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import job_batch_size, lime_batch_size
from ..data.model_inputs import denormalize
from ..evaluation.flips import ThresholdCrossing
from ..evaluation.localised import Refinement
from ..evaluation.selection import hybrid
from ..explainers.engine import explain_all, flatten_scores
from ..names import AUDIO_DIRECTIONS, GRADIENT_METHODS
from ..seeding import item_seed
from ..store import read_h5, read_h5_rows, read_provenance, write_h5
from ..svds.model import load_detector
from .audio import ExcerptTensors, _explain_function
from .audio_files import read_excerpts
from .image_models import engine_settings, model_attrs, model_from_spec
from .image_shards import rows_of, shard_ids, shard_inputs_at
from .refined_files import read_refinements
from .settings import ExamplesSettings, ModelSpec

log = logging.getLogger("advxai")

EXAMPLES_STAGE = "examples"
PIXEL_MAP_EXPLAINER = GRADIENT_METHODS["ig"]  # Fig. 4 shows the raw Integrated Gradients map


def choose_examples(
    candidates: Sequence[str], count: int, seed: int, scope: str, wanted: Sequence[str] | None = None
) -> list[str]:
    """``wanted`` if given (each must be a candidate), else the ``count`` candidates first in a per-item seeded order.

    The order depends on the seed, ``scope`` (the model or detector) and each id only, so the
    choice does not change with the shard size or the order of the candidates.
    """
    if wanted is not None:
        missing = [item for item in wanted if item not in set(candidates)]
        if missing:
            raise ValueError(
                f"image.examples.ids: {missing} are not in the localised subset of {scope} "
                "(successful adversaries drawn for the localised experiment)"
            )
        return [str(item) for item in wanted]
    return [
        str(item)
        for item in sorted(candidates, key=lambda item: item_seed(seed, f"{EXAMPLES_STAGE}-{scope}", item))[:count]
    ]


@dataclass(frozen=True)
class ShardSources:
    """One shard's files the examples are read from; ``segments`` and ``refined`` per segmentation."""

    images: str
    adversaries: str
    segments: dict[str, str]
    refined: dict[str, str]


def _read_examples(shards: Sequence[ShardSources], wanted: Sequence[str], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """The stored arrays of the ``wanted`` items, in that order, gathered from the shards that hold them."""
    parts: dict[str, dict[str, np.ndarray]] = {}
    for shard in shards:
        ids = shard_ids(shard.images, shard.adversaries)
        here = [item for item in wanted if item in set(ids)]
        if not here:
            continue
        rows = rows_of(here, ids, shard.images)
        clean, adversarial = shard_inputs_at(shard.images, shard.adversaries, rows)
        stored = read_h5_rows(shard.adversaries, ["clean_prediction", "final_prediction", "labels"], rows)
        for i, item in enumerate(here):
            parts[item] = {"clean": clean[i], "adversarial": adversarial[i], **{k: v[i] for k, v in stored.items()}}
        for seg, path in shard.segments.items():
            seg_ids = read_h5(path, ["ids"])["ids"]
            masks = read_h5_rows(path, ["masks", "n_segments"], rows_of(here, seg_ids, path))
            refine_ids = list(read_h5(shard.refined[seg], ["ids"])["ids"])
            refinements = read_refinements(shard.refined[seg], ks, refine_ids)
            for i, item in enumerate(here):
                parts[item][f"masks/{seg}"] = masks["masks"][i].astype(np.int64)
                parts[item][f"n_segments/{seg}"] = masks["n_segments"][i]
                row = refine_ids.index(item)
                for k, r in refinements.items():
                    parts[item].update(
                        {
                            f"refined/{seg}/k{k}/segment_ids": r.segment_ids()[row],
                            f"refined/{seg}/k{k}/truth": r.truth[row],
                            f"refined/{seg}/k{k}/prediction": r.decisions[row],
                            f"refined/{seg}/k{k}/flipped": r.kept[row],
                        }
                    )
    lost = [item for item in wanted if item not in parts]
    if lost:
        raise ValueError(f"no shard holds the example items {lost}")
    return {name: _stack_padded([parts[item][name] for item in wanted]) for name in parts[wanted[0]]}


def _stack_padded(values: Sequence[np.ndarray]) -> np.ndarray:
    """``values`` stacked; per-segment arrays of items from shards of other selection widths padded
    with zeros (no segment there), as at shard size 1."""
    width = max((np.shape(v)[-1] for v in values if np.ndim(v)), default=0)
    pad = [np.pad(v, [(0, 0)] * (np.ndim(v) - 1) + [(0, width - np.shape(v)[-1])]) if np.ndim(v) else v for v in values]
    return np.stack(pad)


def _explain(module, inputs, classes, ids, masks, counts, settings: ExamplesSettings, engine, pixel_maps=None):
    return explain_all(
        module,
        inputs,
        classes,
        ids,
        masks,
        counts,
        list(settings.explainers),
        engine,
        extras=settings.extra,
        pixel_maps=pixel_maps,
    )


NO_EXAMPLES = {"ids": np.array([], dtype=str)}
"""An example file without an example: its figures say why (no adversary, or no excerpt)."""


def image_examples(
    shards: Sequence[ShardSources],
    subset: str,
    output: str,
    *,
    model: ModelSpec,
    label: str,
    examples: ExamplesSettings,
    batch_size: int | str,
    device: torch.device,
) -> None:
    """Choose the model's example images and write what the method figures draw of them."""
    bundle = model_from_spec(model, device)
    provenance = {"stage": "image_examples", "params": {"model": model.as_params(), "examples": examples.as_params()},
                  "attrs": model_attrs(bundle, device)}
    chosen = choose_examples(
        list(read_h5(subset, ["localised_ids"])["localised_ids"]), examples.count, examples.seed, label, examples.ids
    )
    log.info("example images of %s: %s", label, chosen)
    if not chosen:  # no adversary to show
        return write_h5(output, NO_EXAMPLES, **provenance)
    data = _read_examples(shards, chosen, examples.ks)
    rows = job_batch_size(batch_size, bundle, device, backward=True)
    engine = engine_settings(examples.explainer, examples.seed, rows, lime_batch_size(batch_size, rows, device))
    clean, adversarial = (torch.from_numpy(data[name]).to(device) for name in ("clean", "adversarial"))
    masks = {seg: torch.from_numpy(data[f"masks/{seg}"]).to(device) for seg in examples.segmentations}
    counts = {seg: data[f"n_segments/{seg}"] for seg in examples.segmentations}
    pixel_maps: dict[str, np.ndarray] = {}
    scores = _explain(
        bundle.module,
        clean,
        torch.as_tensor(data["clean_prediction"], device=device),
        [f"{i}#example" for i in chosen],
        masks,
        counts,
        examples,
        engine,
        pixel_maps,
    )
    arrays = {
        "ids": np.array(chosen, dtype=str),
        **{k: v for k, v in data.items() if k not in ("clean", "adversarial")},
        "clean_pixels": _pixels(clean),
        "adversarial_pixels": _pixels(adversarial),
        **flatten_scores(scores),
        f"attributions/{PIXEL_MAP_EXPLAINER}": pixel_maps[PIXEL_MAP_EXPLAINER],
    }
    arrays.update(_refined_arrays(bundle.module, clean, adversarial, masks, counts, data, chosen, examples, engine))
    write_h5(output, arrays, **provenance, seeds={"seed": examples.seed, "stages": [EXAMPLES_STAGE, "noise", "lime"]})


def drawn_example(data: Mapping[str, np.ndarray], segmentation: str, ks: Sequence[int]) -> int:
    """The row whose refined inputs still flip at the most k (first on ties): the one example the refined
    figure draws, since the localised experiment explains only refined inputs that flip."""
    flips = sum(np.asarray(data[f"refined/{segmentation}/k{k}/flipped"], dtype=int) for k in ks)
    return int(np.argmax(flips))


def _refined_arrays(module, clean, adversarial, masks, counts, data, chosen, examples: ExamplesSettings, engine):
    """Per segmentation, the drawn example's row (``refined/<seg>/drawn``) and per k its refined input's pixels
    and each explainer's ``mean_abs`` scores of it, for the class the refinement assigns (leading axis of 1)."""
    device, arrays = clean.device, {}
    for seg in examples.segmentations:
        row = drawn_example(data, seg, examples.ks)
        one = slice(row, row + 1)
        arrays[f"refined/{seg}/drawn"] = np.int64(row)
        for k in examples.ks:
            truth = torch.from_numpy(data[f"refined/{seg}/k{k}/truth"][one]).to(device)
            refined = hybrid(clean[one], adversarial[one], masks[seg][one], truth)
            classes = torch.as_tensor(data[f"refined/{seg}/k{k}/prediction"][one], device=device)
            found = _explain(
                module,
                refined,
                classes,
                [f"{chosen[row]}#example-k{k}"],
                {seg: masks[seg][one]},
                {seg: counts[seg][one]},
                examples,
                engine,
            )
            arrays.update({f"refined/{seg}/k{k}/scores/{e}": by_seg[seg]["mean_abs"] for e, by_seg in found.items()})
            arrays[f"refined/{seg}/k{k}/pixels"] = _pixels(refined)
    return arrays


def _pixels(inputs: torch.Tensor) -> np.ndarray:
    """Normalised model inputs ``(N, 3, H, W)`` as float32 pixels in ``[0, 1]``, ``(N, H, W, 3)``."""
    return denormalize(inputs).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------------ audio
def audio_example(
    detector: str,
    evaluation: str,
    excerpts: str,
    refined: str,
    output: str,
    *,
    explain,
    ks: Sequence[int],
    seed: int,
    device: torch.device,
) -> None:
    """One seeded adversarial excerpt, its refinements and each explainer's scores of every refined excerpt.

    The excerpt is the first, in a per-item seeded order over both directions, whose refined
    excerpt still flips at the most ks, so that the figure shows explanations where there are any.
    """
    provenance = {"stage": "audio_examples", "params": {**explain.as_params(), "ks": list(ks), "seed": seed}}
    by_target = read_excerpts(excerpts)
    refinements_by_target = {
        target: read_refinements(refined, ks, list(data["ids"]), prefix=f"{AUDIO_DIRECTIONS[target]}/")
        for target, data in by_target.items()
    }
    chosen = _choose_audio_example(by_target, refinements_by_target, seed)
    if chosen is None:  # no adversarial excerpt to show
        log.info("detector seed %s: no adversarial excerpt to show", seed)
        return write_h5(output, NO_EXAMPLES, **provenance)
    target, row = chosen
    run = _explain_function(load_detector(detector, device=device), explain)
    name, everything, refinements = AUDIO_DIRECTIONS[target], by_target[target], refinements_by_target[target]
    data = {key: value[row : row + 1] for key, value in everything.items()}
    flip_test = ThresholdCrossing(np.array([target]), float(read_provenance(refined)["params"]["threshold"]))
    x = ExcerptTensors.of(data, device)
    arrays = {
        "ids": data["ids"],
        "direction": np.array([name]),
        "target": np.array([target]),
        "ks": np.array(ks),
        "threshold": flip_test.threshold,
        "clean_logmel": data["clean_logmel"][0],
        "adv_logmel": data["adv_logmel"][0],
        "grid": x.masks[0].cpu().numpy(),
    }
    for k, r in refinements.items():
        inputs = hybrid(x.clean, x.adversarial, x.masks, torch.from_numpy(r.truth[row : row + 1]).to(device))
        classes = torch.as_tensor(flip_test.explained_class(r.decisions[row : row + 1]), device=device)
        scores = run(inputs, classes, [f"{data['ids'][0]}#example-k{k}"])
        arrays.update(
            {
                f"k{k}/segment_ids": r.segment_ids()[row],
                f"k{k}/flipped": r.kept[row],
                f"k{k}/prediction": r.decisions[row],
                f"k{k}/refined_logmel": inputs[0].cpu().numpy(),
                **{f"k{k}/scores/{e}": v[0] for e, v in scores.items()},
            }
        )
    write_h5(output, arrays, **provenance, seeds={"seed": seed, "stages": [f"{EXAMPLES_STAGE}-audio", "noise", "lime"]})


def _choose_audio_example(
    by_target: Mapping[int, Mapping[str, np.ndarray]], refinements_by_target: Mapping[int, Mapping[int, Refinement]], seed: int
) -> tuple[int, int] | None:
    """``(target, row)`` of the excerpt flipping at the most ks, ties broken by a per-item seeded order;
    None without any adversarial excerpt."""
    candidates = []
    for target, data in by_target.items():
        refinements = refinements_by_target[target].values()
        flips = sum(r.kept.astype(int) for r in refinements) if len(data["ids"]) else []
        candidates += [
            (-int(f), item_seed(seed, f"{EXAMPLES_STAGE}-audio", item), target, row)
            for row, (item, f) in enumerate(zip(data["ids"], flips))
        ]
    if not candidates:
        return None
    *_, target, row = min(candidates)
    return target, row
