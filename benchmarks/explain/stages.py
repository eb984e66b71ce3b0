"""The other compared stages: PGD (batch-1 captum loop against the batched attack), the label-flip
stage (every ranking at every k, predicted as the stage predicts), and LIME at captum's pass shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from advxai.names import LIME_FAMILY

from .reference import captum_lime
from .settings import LABELFLIP, LIME_PER_EVAL, PGD_EPSILON, PGD_STEP, SEGMENTATIONS
from .timing import Step, alternate_rounds, timed_step


def pgd_times(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    batch_size: int,
    loop_images: int,
    device: torch.device,
    rounds: int,
) -> tuple[float, float, str]:
    """(batch-1 captum loop s per image, advxai batched s per image, each best of ``rounds``
    alternating rounds; result check).

    The batched attack runs on all ``images`` (one full batch, as the stage attacks a shard); the
    loop on the first ``loop_images`` of them, whose time per image does not depend on how many it
    attacks (each is an attack of its own). Both at scalar bounds both accept.
    """
    from captum.robust import PGD

    from advxai.attacks.pgd import targeted_pgd
    from advxai.data.model_inputs import pixel_bounds

    lower, upper = (bound.to(device) for bound in pixel_bounds())
    low, high = float(lower.min()), float(upper.max())
    attack = PGD(model, nn.CrossEntropyLoss(reduction="none"), lower_bound=low, upper_bound=high)

    def loop() -> torch.Tensor:
        return torch.cat(
            [
                attack.perturb(
                    images[i : i + 1],
                    radius=PGD_EPSILON,
                    step_size=PGD_STEP,
                    step_num=steps,
                    target=targets[i : i + 1],
                    targeted=True,
                )
                for i in range(loop_images)
            ]
        )

    def batched():
        return targeted_pgd(
            model,
            images,
            targets,
            PGD_EPSILON,
            PGD_STEP,
            steps,
            lower=torch.tensor(low),
            upper=torch.tensor(high),
            batch_size=batch_size,
        )

    measured = alternate_rounds({"loop": timed_step(loop, device), "batched": timed_step(batched, device)}, rounds)
    reference, ours = measured.results["loop"], measured.results["batched"]
    compared = ours.adversaries[:loop_images]
    equal = sum(bool(torch.equal(a, b)) for a, b in zip(reference, compared))
    with torch.no_grad():
        agree = int((model(reference).argmax(1).cpu().numpy() == ours.final_predictions[:loop_images]).sum())
    largest = float((reference - compared).abs().max())
    check = (
        f"on the {loop_images} images both attacked: {equal} adversaries bitwise equal, final predictions agree "
        f"{agree}/{loop_images}, max |difference| {largest:.2e} (batch 1 vs batch {batch_size}: kernels may round differently)"
    )
    return measured.best["loop"]["all"] / loop_images, measured.best["batched"]["all"] / len(images), check


def labelflip_step(
    model: nn.Module,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    scores: Mapping[str, dict],
    batch_size: int,
    device: torch.device,
    sweep: bool = True,
) -> Step:
    """A round's step timing the label-flip stage for both segmentations: every ranking of
    ``scores["latest"]`` (read when the step runs), every k (the stage's own
    ``advxai.evaluation.labelflip.label_flips``, distinct hybrids predicted once); without
    ``sweep`` only the tables' k = 3. Its result: (hybrids, flip rates ``"<seg>/<ranking>"`` → one
    per k setting, the fractions of images flipped)."""
    from advxai.evaluation.baselines import magnitude_scores
    from advxai.evaluation.flips import ClassChange
    from advxai.evaluation.labelflip import k_settings, label_flips
    from advxai.evaluation.selection import selection_width

    with torch.no_grad():
        flip_test = ClassChange(model(clean).argmax(1).cpu().numpy())

    def stage() -> tuple[int, dict[str, np.ndarray]]:
        hybrids, rates = 0, {}
        for seg in SEGMENTATIONS:
            ks = [LABELFLIP["k"], *(LABELFLIP["rect_ks"] if sweep and seg == "rect" else [])]
            settings = k_settings(ks, LABELFLIP["slic_fractions"] if sweep and seg == "slic" else [], counts[seg])
            width = selection_width(counts[seg], settings.per_item)
            rankings = {
                f"{name}/{agg}": values[seg][agg] for name, values in scores["latest"].items() for agg in values[seg]
            }
            rankings.update(
                magnitude_scores(clean.cpu().numpy(), adversarial.cpu().numpy(), masks[seg].cpu().numpy(), width)
            )
            flips = label_flips(
                model, flip_test, clean, adversarial, masks[seg], counts[seg], rankings, settings.per_item, batch_size
            )
            rates.update({f"{seg}/{name}": flipped.mean(axis=0) for name, flipped in flips.items()})
            hybrids += len(clean) * len(rankings) * settings.per_item.shape[1]
        return hybrids, rates

    return timed_step(stage, device)


# Samples of the alternating LIME comparison at least: at 32 (4 passes per image) the machine's
# noise decided its sign (EfficientNet-Lite0: 0.96 at 32 samples, 1.03-1.22 in 5 rounds at 128).
LIME_SHAPE_SAMPLES = 128


def lime_at_captum_shape(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    samples: int,
    seed: int,
    device: torch.device,
    rounds: int,
) -> tuple[float, float]:
    """(captum s, engine s) for LIME on both segmentations, the engine at captum's 16 rows per pass,
    best of ``rounds`` alternating rounds.

    Both make the same forward passes, so only what each does around the model differs.
    """
    from advxai.explainers.engine import ExplainSettings, explain_all
    from advxai.explainers.settings import ExplainerSettings

    settings = ExplainSettings(explainer=ExplainerSettings.paper(lime_samples=samples), seed=seed, batch_size=LIME_PER_EVAL)

    def captum() -> tuple[dict[str, float], None]:
        return {
            "all": sum(
                captum_lime(model, images, targets, ids, masks[seg], counts[seg], samples, seed, device)[0]
                for seg in SEGMENTATIONS
            )
        }, None

    engine = timed_step(
        lambda: explain_all(model, images, targets, ids, masks, counts, [LIME_FAMILY], settings), device
    )
    measured = alternate_rounds({"captum": captum, "engine": engine}, rounds)
    return measured.best["captum"]["all"], measured.best["engine"]["all"]
