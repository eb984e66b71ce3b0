"""advxai's side: the engine's families timed, its own work beyond the model, and the model passes it makes.

``pass_efficiency`` compares the engine with the model's own passes at the engine's batch sizes,
timed in the same rounds as the engine (:func:`pass_baseline_step`): a baseline read once at
start-up, minutes before, read 7–11 % slower than the steady state and gave efficiencies above 1.
Where IG runs through the model's linear stem (``advxai.explainers.stem``), its rows are charged
at that cost: a forward+backward from the stem's output per row, and the stem's convolution and
its transpose once per noisy copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from advxai.names import FAMILIES, LIME_FAMILY

from .settings import PAPER, engine_rows
from .timing import Step, alternate_rounds, pass_work, timed


def engine_parts(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    run: Mapping[str, int],
    seed: int,
    batch_sizes: Mapping[str, int],
    device: torch.device,
    only: Sequence[str] | None = None,
) -> tuple[dict[str, float], dict]:
    """Seconds of ``explain_all`` per family, each at its batch size, and its scores
    ``[explainer][seg][agg]`` (every family, or those in ``only``)."""
    from advxai.explainers.engine import ExplainSettings, explain_all
    from advxai.explainers.settings import ExplainerSettings

    families = {**{name: list(members) for name, members in FAMILIES.items()}, LIME_FAMILY: [LIME_FAMILY]}
    times, scores = {}, {}
    for family, members in families.items():
        if only is not None and family not in only:
            continue
        settings = ExplainSettings(
            explainer=ExplainerSettings.paper(lime_samples=run["lime_samples"], noise_samples=run["noise"], ig_steps=run["ig_steps"]),
            seed=seed,
            batch_size=batch_sizes[family],
        )
        work = lambda: explain_all(model, images, targets, ids, masks, counts, members, settings)
        times[family], family_scores = timed(work, device)
        scores.update(family_scores)
    return times, scores


class FreeModel(nn.Module):
    """A classifier that costs next to nothing: a linear map of the mean of 16 pixels per channel (differentiable,
    no activations to guide), so that an engine run with it times only the engine's own work."""

    def __init__(self, n_channels: int = 3, n_classes: int = 1000) -> None:
        super().__init__()
        self.linear = nn.Linear(n_channels, n_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs[:, :, ::64, ::64].mean((2, 3)))


def own_work_seconds(
    images: torch.Tensor,
    targets: torch.Tensor,
    ids: Sequence[str],
    masks: Mapping[str, torch.Tensor],
    counts: Mapping[str, np.ndarray],
    seed: int,
    batch_sizes: Mapping[str, int],
    device: torch.device,
) -> dict[str, float]:
    """Each family's seconds per image beyond the model, at the paper's settings: ``explain_all`` with
    :class:`FreeModel`, everything else as in the stage (noise, building the passes' inputs, the
    reductions, the aggregation; LIME's drawing, perturbed inputs, kernel and surrogate fits).

    Without a model it is cheap at the paper's settings, and measuring it apart keeps the model's
    time, and the noise other load puts on it, out of the number. On a GPU this work, not the
    model, is what keeps a fast model's passes from filling the device.
    """
    model = FreeModel(images.shape[1]).to(device).eval()
    work: Step = lambda: engine_parts(model, images, targets, ids, masks, counts, PAPER, seed, batch_sizes, device)
    work()  # warm-up
    seconds = alternate_rounds({"own": work}, 2).best["own"]
    return {family: value / len(images) for family, value in seconds.items()}


# ------------------------------------------------------------------------------------------------ model passes
def pass_baseline_step(
    model: nn.Module, example: torch.Tensor, batch_sizes: Mapping[str, int], device: torch.device, calls: int = 2
) -> Step:
    """A round's step timing the model's own passes at the engine's batch sizes, seconds per row:
    ``forward`` at LIME's batch, ``backward`` (forward+backward to the input) at the gradient
    families' batch, and, where IG runs through a linear stem, ``after_stem`` (forward+backward
    from the stem's output) and ``stem_per_copy`` (the stem's convolution and its transpose)."""
    from advxai.explainers.stem import find_linear_stem

    side = example.shape[-1]
    lime_batch, gradient_batch = batch_sizes[LIME_FAMILY], batch_sizes[next(iter(FAMILIES))]
    work = {
        "forward": (pass_work(model, lime_batch, side, device)["forward"], lime_batch),
        "backward": (pass_work(model, gradient_batch, side, device)["backward"], gradient_batch),
    }
    stem = find_linear_stem(model, example[:1])
    if stem is not None:
        inputs = torch.randn(gradient_batch, 3, side, side, device=device)
        with torch.no_grad():
            at_stem_values = stem.conv(inputs)

        def after_stem() -> None:
            at_stem = at_stem_values.clone().requires_grad_(True)
            with torch.enable_grad(), stem.replaced_by(at_stem):
                torch.autograd.grad(model(inputs)[:, 0].sum(), at_stem)

        def stem_per_copy() -> None:
            stem.input_gradient(stem.linear(inputs), inputs.shape)

        work.update({"after_stem": (after_stem, gradient_batch), "stem_per_copy": (stem_per_copy, gradient_batch)})

    def step() -> tuple[dict[str, float], None]:
        return {
            kind: min(timed(call, device)[0] for _ in range(calls)) / rows for kind, (call, rows) in work.items()
        }, None

    return step


def baseline_seconds(
    family: str, n_images: int, run: Mapping[str, int], batch_size: int, passes: Mapping[str, float]
) -> float:
    """The model's own seconds for the passes one engine family makes (padding included), at ``passes``' speed."""
    forward_rows, backward_rows = engine_rows(family, n_images, run, batch_size)
    if family == "ig" and "after_stem" in passes:
        copies = n_images * (1 + run["noise"])
        return (
            forward_rows * passes["forward"] + backward_rows * passes["after_stem"] + copies * passes["stem_per_copy"]
        )
    return forward_rows * passes["forward"] + backward_rows * passes["backward"]


def pass_efficiencies(
    engine_seconds: Mapping[str, float],
    n_images: int,
    run: Mapping[str, int],
    batch_sizes: Mapping[str, int],
    passes: Mapping[str, float],
) -> tuple[float, dict[str, float]]:
    """(all families, per family): the model's own seconds for the engine's passes over the engine's seconds."""
    own = {family: baseline_seconds(family, n_images, run, batch_sizes[family], passes) for family in engine_seconds}
    total = sum(own.values()) / sum(engine_seconds.values())
    return total, {family: own[family] / engine_seconds[family] for family in engine_seconds}
