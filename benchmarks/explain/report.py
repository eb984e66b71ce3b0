"""What the benchmark prints: one line per finding, and the lines other tools parse (SUMMARY, FAST, SWEEP).

The SUMMARY line keeps the form of its first fields; fields added later are appended::

    SUMMARY model=<name> device=<cpu|cuda> speedup=<x> pass_efficiency=<x> lime_overhead_ms_per_sample=<x>
            pgd_speedup=<x> labelflip_share=<x> max_rel_diff=<x> reference_images=<n> elementwise_rel_diff=<x>
            topk_agreement=<x> tolerance=<x> pass_efficiency_noise=<x> lime_same_shape=<x>
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from advxai.names import LIME_FAMILY

from .agreement import ELEMENT_FLOOR, Agreement
from .settings import LABELFLIP, LIME_PER_EVAL, PAPER, SEGMENTATIONS, family_speedups, padding_share
from .timing import PassTimes


def settings_text(settings: Mapping[str, int]) -> str:
    return f"J={settings['noise']}, IG {settings['ig_steps']} points, LIME {settings['lime_samples']} samples"


def header(
    name: str,
    device: torch.device,
    n: int,
    run: Mapping[str, int],
    passes: PassTimes,
    batch_sizes: Mapping[str, int],
    batch_size: int,
    forward_batch: int,
) -> None:
    print(
        f"\n== {name} on {device}: {n} images at 224 px, run settings {settings_text(run)}; "
        f"paper settings {settings_text(PAPER)}"
    )
    print(
        f"model passes (to size the batches): forward {passes.forward * 1e3:.2f} ms/row (best at batch {passes.forward_batch}), "
        f"forward+backward {passes.backward * 1e3:.2f} ms/row (best at batch {passes.backward_batch}); "
        f"engine batch size {batch_sizes['saliency']} for the gradient families, {batch_sizes[LIME_FAMILY]} for LIME, "
        f"{batch_size} for PGD and {forward_batch} for the label-flip stage (forwards only)"
    )


def scaling(
    points: tuple[Mapping, Mapping],
    flat: list[str],
    reference_batch: str,
    best: Mapping[str, Mapping[str, float]],
    engine_paper: Mapping[str, float],
    reference_paper: Mapping[str, float],
    n: int,
) -> None:
    low, high = points
    if low != PAPER:
        print(
            f"EXTRAPOLATED: timed at {settings_text(low)} and at {settings_text(high)}; each part's seconds read at "
            f"{settings_text(PAPER)} on the line through its two (rows, seconds) points (a fixed cost per call is "
            "charged once)"
            + (f"; no rise between the points, scaled in proportion instead: {', '.join(flat)}" if flat else "")
        )
    print(
        f"engine (explain_all) on {n} images, s at the run settings -> at the paper's: "
        + ", ".join(
            f"{family} {best['engine'][family]:.2f} -> {seconds:.2f}" for family, seconds in engine_paper.items()
        )
    )
    print(
        f"reference (captum pattern), {reference_batch}; s per image at the run settings -> at the paper's: "
        + ", ".join(
            f"{part} {best['reference'][part]:.2f} -> {seconds:.2f}" for part, seconds in reference_paper.items()
        )
    )


def efficiency(
    total: float,
    per_family: Mapping[str, float],
    noise: float,
    passes: Mapping[str, float],
    batch_sizes: Mapping[str, int],
    n: int,
    run: Mapping[str, int],
) -> None:
    stem = (
        (
            f", IG's rows through the linear stem {passes['after_stem'] * 1e3:.2f} ms/row and "
            f"{passes['stem_per_copy'] * 1e3:.2f} ms per noisy copy"
        )
        if "after_stem" in passes
        else ""
    )
    print(
        f"model passes in steady state (timed in the rounds, at the engine's batch sizes): forward "
        f"{passes['forward'] * 1e3:.2f} ms/row, forward+backward {passes['backward'] * 1e3:.2f} ms/row{stem}"
    )
    print(
        f"pass efficiency {total:.2f} (noise ±{noise:.2f}: the spread of the baseline and the engine over the rounds); "
        "per family: " + ", ".join(f"{family} {value:.2f}" for family, value in per_family.items())
    )
    if total > 1 + noise:
        print(
            "pass efficiency above 1 beyond the rounds' spread: the baseline's passes ran slower than the engine's "
            "(the machine's load changed within a round, or the engine's shapes run faster than random inputs)"
        )
    print(
        "engine rows padded to full batches: "
        f"{padding_share(run, n, batch_sizes):.1%} at the run settings, {padding_share(PAPER, n, batch_sizes):.1%} at the paper's"
    )


def own_work(seconds: Mapping[str, float]) -> None:
    print(
        "engine's own work (a model that costs nothing), s per image at the paper's settings: "
        + ", ".join(f"{family} {value:.3f}" for family, value in seconds.items())
    )


def agreement(
    found: Agreement, skip: tuple[str, ...], images: int, tolerance: float, device: str, run: Mapping[str, int]
) -> None:
    if skip:
        print(
            "GBP left out of the agreement: the model has activations other than nn.ReLU, which advxai guides "
            "and captum does not (docs/decisions.md, decision 22)"
        )
    verdict = "within" if found.elementwise_rel_diff <= tolerance else "ABOVE"
    print(
        f"agreement on {images} image(s) at {settings_text(run)}, same random draws: largest |a-b| over the array's "
        f"largest |a| {found.max_rel_diff:.2e} ({found.max_rel_where}); element-wise |a-b| / max(|a|, {ELEMENT_FLOOR:g} "
        f"of the array's largest) {found.elementwise_rel_diff:.2e} ({found.elementwise_where}), {verdict} the "
        f"{device} tolerance {tolerance:g}; top-{LABELFLIP['k']} segments the same in "
        f"{found.rankings - len(found.topk_differs)} of {found.rankings} rankings"
        + (
            f" (differ: {', '.join(found.topk_differs[:5])}{' ...' if len(found.topk_differs) > 5 else ''})"
            if found.topk_differs
            else ""
        )
    )


def per_image(
    hybrids: int,
    labelflip_seconds: float,
    n: int,
    swept: bool,
    reference_per_image: float,
    engine_per_image: float,
    reference_paper: Mapping[str, float],
    engine_paper: Mapping[str, float],
) -> None:
    print(
        f"label-flip stage: {hybrids} hybrid selections, {labelflip_seconds:.2f} s for {n} images "
        f"({labelflip_seconds / n:.3f} s/image)" + ("" if swept else "; k = 3 only (--no-labelflip-sweep)")
    )
    print(f"per image at the paper's settings: reference {reference_per_image:.2f} s, advxai {engine_per_image:.2f} s")
    by_family = family_speedups(reference_paper, {family: seconds / n for family, seconds in engine_paper.items()})
    print(
        "speedup per family (reference s / advxai s per image, paper settings): "
        + ", ".join(f"{family} {ratio:.2f}" for family, ratio in by_family.items())
    )


def lime_shape(captum: float, engine: float, samples: int, rounds: int, images: int) -> None:
    print(
        f"LIME at captum's {LIME_PER_EVAL} rows per pass, {samples} samples, {len(SEGMENTATIONS)} segmentations, best of "
        f"{rounds} alternating rounds on {images} image(s): captum {captum:.2f} s, advxai {engine:.2f} s -> {captum / engine:.2f}x"
    )


def summary_line(
    name: str,
    device: str,
    speedup: float,
    efficiency: float,
    own_work: Mapping[str, float],
    pgd_speedup: float,
    labelflip_share: float,
    found: Agreement,
    reference_images: int,
    tolerance: float,
    noise: float,
    lime_same_shape: float,
) -> str:
    lime_overhead = own_work[LIME_FAMILY] / (PAPER["lime_samples"] * len(SEGMENTATIONS))
    return (
        f"SUMMARY model={name} device={device} speedup={speedup:.2f} pass_efficiency={efficiency:.2f} "
        f"lime_overhead_ms_per_sample={lime_overhead * 1e3:.3f} pgd_speedup={pgd_speedup:.2f} "
        f"labelflip_share={labelflip_share:.3f} max_rel_diff={found.max_rel_diff:.2e} "
        f"reference_images={reference_images} elementwise_rel_diff={found.elementwise_rel_diff:.2e} "
        f"topk_agreement={found.topk_agreement:.3f} tolerance={tolerance:g} pass_efficiency_noise={noise:.2f} "
        f"lime_same_shape={lime_same_shape:.2f}"
    )


def sweep_line(
    name: str, device: str, batch: int, reference_paper: Mapping[str, float], engine_per_image: Mapping[str, float]
) -> None:
    by_family = family_speedups(reference_paper, engine_per_image)
    print(
        f"SWEEP model={name} device={device} batch={batch} "
        + " ".join(f"{family}={ratio:.2f}" for family, ratio in by_family.items())
    )


def fast_details(
    arithmetic: str,
    exact: Mapping[str, float],
    fast: Mapping[str, float],
    exact_flip: float,
    fast_flip: float,
    rounds: int,
    correlations: np.ndarray,
) -> None:
    undefined = int(np.isnan(correlations).sum())
    print(
        f"{arithmetic}: engine s at the run settings "
        + ", ".join(f"{family} {exact[family]:.2f} -> {fast[family]:.2f}" for family in exact)
        + f" (exact -> {arithmetic}, best of {rounds} alternating rounds); label-flip stage {exact_flip:.2f} -> {fast_flip:.2f} s; "
        f"{len(correlations) - undefined} segment rankings compared ({undefined} constant on one side, left out)"
    )


def fast_line(
    name: str, device: str, arithmetic: str, speedup: float, correlations: np.ndarray, rate_difference: float
) -> str:
    return (
        f"FAST model={name} device={device} arithmetic={arithmetic} speedup_vs_exact={speedup:.2f} "
        f"score_rank_corr={np.nanmean(correlations):.4f} score_rank_corr_min={np.nanmin(correlations):.4f} "
        f"labelflip_rate_max_abs_diff={rate_difference:.3f}"
    )
