"""The authors' side: their captum call pattern on the engine's random draws.

Per segmentation: captum ``Lime`` (``perturbations_per_eval`` 16, ``SkLearnLinearRegression``, exp
kernel on the cosine distance, width 0.25) per image, ``Saliency``, ``IntegratedGradients``
(``internal_batch_size`` 10) and ``GuidedBackprop`` on a batch of images, and nine ``NoiseTunnel``
runs (SG, SG², VarGrad of each), every map aggregated to segments. captum's NoiseTunnel adds the
engine's per-item noise and its Lime draws the engine's per-item binary vectors, so both sides'
segment scores differ only by float rounding (``agreement``).

The authors fed batches of 32 images (:data:`settings.AUTHORS_BATCH`); on a GPU the pass shapes,
and so the reference's speed, depend on it. :class:`ReferenceBatch` runs it at the asked number
and halves it where the device runs out of memory, recording why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .settings import IG_INTERNAL_BATCH, LIME_PER_EVAL, SEGMENTATIONS
from .timing import timed


def shared_noise_tunnel(noise: torch.Tensor):
    """A captum ``NoiseTunnel`` that adds the given ``(N, J, ...)`` noise instead of drawing its own.

    captum adds ``(N·J, ...)`` noise to the inputs repeated item-major (``repeat_interleave``);
    ``noise`` is laid out the same way, so the reference sees exactly the engine's noisy inputs.
    """
    from captum.attr import NoiseTunnel

    class SharedNoiseTunnel(NoiseTunnel):
        def _add_noise_to_inputs(self, nt_samples_partition, inputs, stdevs):
            (single,) = inputs
            flat = noise.reshape(-1, *single.shape[1:]).to(single)
            return ((single.repeat_interleave(nt_samples_partition, dim=0) + flat).requires_grad_(),)

    return SharedNoiseTunnel


def shared_lime_draws(rows: np.ndarray) -> Callable[..., Iterator[torch.Tensor]]:
    """A captum ``perturb_func`` (generator) yielding the engine's binary vectors ``rows`` in order."""

    def perturb(original_inputs: torch.Tensor, **kwargs: object) -> Iterator[torch.Tensor]:
        for row in rows:
            yield torch.from_numpy(row.astype(np.int64))[None].to(original_inputs.device)

    return perturb


def reference_parts(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    run: Mapping[str, int],
    seed: int,
    device: torch.device,
    only: Sequence[str] | None = None,
) -> tuple[dict[str, float], dict]:
    """Seconds of the authors' pattern per part (``sal``, ``sal-nt``, ``ig``, ... ``lime``; every
    part or those in ``only``) and its scores ``[explainer][seg][agg]``."""
    from captum.attr import GuidedBackprop, IntegratedGradients, Saliency

    from advxai.explainers import aggregate
    from advxai.explainers.gradients import draw_noise

    noise = draw_noise(ids, images.shape[1:], run["noise"], 1.0, seed).to(device)
    tunnel = shared_noise_tunnel(noise)
    methods = {
        "sal": (Saliency, {"abs": False}),
        "ig": (
            IntegratedGradients,
            {"baselines": 0.0, "n_steps": run["ig_steps"], "internal_batch_size": IG_INTERNAL_BATCH},
        ),
        "gbp": (GuidedBackprop, {}),
    }
    wanted = lambda part: only is None or part in only
    times: dict[str, float] = {}
    scores: dict = {}
    for seg in SEGMENTATIONS:
        width = int(counts[seg].max())
        for method, (cls, options) in methods.items():
            if wanted(method):
                seconds, attribution = timed(lambda: cls(model).attribute(images, target=targets, **options), device)
                times[method] = times.get(method, 0.0) + seconds
                scores.setdefault(method, {})[seg] = aggregate(attribution, masks[seg], width)
            for ensemble, nt_type in (("sg", "smoothgrad"), ("sg2", "smoothgrad_sq"), ("vg", "vargrad")):
                if not wanted(f"{method}-nt"):
                    continue
                work = lambda: tunnel(cls(model)).attribute(
                    images, nt_type=nt_type, nt_samples=run["noise"], stdevs=1.0, target=targets, **options
                )
                seconds, attribution = timed(work, device)
                times[f"{method}-nt"] = times.get(f"{method}-nt", 0.0) + seconds
                scores.setdefault(f"{method}-{ensemble}", {})[seg] = aggregate(attribution, masks[seg], width)
        if wanted("lime"):
            seconds, scores.setdefault("lime", {})[seg] = captum_lime(
                model, images, targets, ids, masks[seg], counts[seg], run["lime_samples"], seed, device
            )
            times["lime"] = times.get("lime", 0.0) + seconds
    return times, scores


def captum_lime(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: torch.Tensor,
    counts: np.ndarray,
    samples: int,
    seed: int,
    device: torch.device,
) -> tuple[float, dict[str, np.ndarray]]:
    """(seconds, segment scores per aggregation) of captum's Lime on one segmentation, one call per
    image, drawing the engine's per-item binary vectors."""
    from captum._utils.models.linear_model import SkLearnLinearRegression
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    from advxai.explainers import aggregate
    from advxai.seeding import numpy_rng

    width = int(counts.max())
    total, coefficients = 0.0, []
    for item, item_id in enumerate(ids):
        rows = numpy_rng(seed, "lime", item_id).random((samples, int(counts[item]))) < 0.5
        lime = Lime(
            model,
            interpretable_model=SkLearnLinearRegression(),
            similarity_func=get_exp_kernel_similarity_function("cosine", 0.25),
            perturb_func=shared_lime_draws(rows),
        )
        work = lambda: lime.attribute(
            images[item : item + 1],
            target=int(targets[item]),
            n_samples=samples,
            feature_mask=masks[item].expand(1, 3, -1, -1),
            perturbations_per_eval=LIME_PER_EVAL,
            baselines=0.0,
        )
        seconds, attribution = timed(work, device)
        total += seconds
        coefficients.append(aggregate(attribution, masks[item : item + 1], width))
    return total, {agg: np.concatenate([c[agg] for c in coefficients]) for agg in coefficients[0]}


@dataclass
class ReferenceBatch:
    """How many images the reference runs on: ``asked``, halved on running out of device memory."""

    asked: int
    images: int
    out_of_memory_at: list[int]

    @classmethod
    def of(cls, asked: int) -> ReferenceBatch:
        return cls(asked, asked, [])

    def run(self, measure: Callable[[int], tuple[dict[str, float], dict]]) -> tuple[dict[str, float], dict]:
        """``measure(images)`` at the current number of images, halving it until the device holds it."""
        while True:
            try:
                return measure(self.images)
            except torch.OutOfMemoryError:
                if self.images == 1:
                    raise
                self.out_of_memory_at.append(self.images)
                self.images //= 2
                torch.cuda.empty_cache()

    def describe(self, authors_batch: int) -> str:
        said = f"the reference on {self.images} image(s) at once"
        if self.out_of_memory_at:
            said += f" (out of device memory at {', '.join(map(str, self.out_of_memory_at))})"
        if self.images != authors_batch:
            said += f"; the authors' batch was {authors_batch}"
        return said


def captum_guides_alike(model: nn.Module, example: torch.Tensor) -> bool:
    """Whether captum's GuidedBackprop guides every activation advxai guides.

    captum guides only ``nn.ReLU`` modules; advxai guides every ReLU-like activation (ReLU6,
    functional relu, ...; docs/decisions.md, decision 22), so their GBP maps differ by design when the
    model has others (EfficientNet-Lite's ReLU6).
    """
    from advxai.explainers.guided import audit_guided_activations

    relu_calls = []
    hooks = [
        module.register_forward_hook(lambda *_: relu_calls.append(1))
        for module in model.modules()
        if isinstance(module, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(audit_guided_activations(model, example).values()) == len(relu_calls)
