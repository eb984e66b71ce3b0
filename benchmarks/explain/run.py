"""One model's benchmark: its inputs and batch sizes, PGD, then the rounds in which the engine, the
model's own passes, the label-flip stage and the reference alternate, and what they show."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import report
from .agreement import TOLERANCE, agreement, max_rate_difference, score_rank_correlations
from .engine import engine_parts, own_work_seconds, pass_baseline_step, pass_efficiencies
from .inputs import attack_targets, bundled_inputs, load, segmentations
from .reference import ReferenceBatch, captum_guides_alike, reference_parts
from .settings import (
    AUTHORS_BATCH,
    LABELFLIP,
    PASS_BATCHES,
    PGD_EPSILON,
    PGD_STEP,
    engine_rows,
    extrapolate_parts,
    job_family_batch_sizes,
    pass_count_bound,
    reference_part_rows,
    reference_passes,
    second_point,
)
from .stages import labelflip_step, lime_at_captum_shape, pgd_times
from .timing import PassTimes, Rounds, Step, alternate_rounds, best_pass_times


@dataclass
class Bench:
    """What every measurement of one model shares: the model, the adversaries it explains, their
    segmentations, the batch sizes its jobs would take, and the two run settings."""

    name: str
    model: nn.Module
    device: torch.device
    args: argparse.Namespace
    clean: torch.Tensor
    adversarial: torch.Tensor
    explained: torch.Tensor
    ids: list[str]
    masks: dict[str, torch.Tensor]
    counts: dict[str, np.ndarray]
    passes: PassTimes
    batch_sizes: dict[str, int]
    forward_batch: int
    points: tuple[dict[str, int], dict[str, int]] = field(default_factory=tuple)

    def first(self, n: int) -> tuple:
        """(adversaries, explained classes, ids, masks, counts) of the first ``n`` images."""
        return (
            self.adversarial[:n],
            self.explained[:n],
            self.ids[:n],
            {s: m[:n] for s, m in self.masks.items()},
            {s: c[:n] for s, c in self.counts.items()},
        )

    def engine_rows(self, family: str, settings: Mapping[str, int]) -> int:
        return sum(engine_rows(family, len(self.adversarial), settings, self.batch_sizes[family]))


@dataclass
class FastRun:
    """One model in one fast arithmetic, measured in the same rounds as exact."""

    arithmetic: str
    model: nn.Module


def prepare(name: str, args: argparse.Namespace, device: torch.device) -> tuple[Bench, float]:
    """The model, its batch sizes (as ``batch_size: auto`` sizes a job, or ``--batch-size``), the
    adversaries it explains, and PGD's speedup over captum's batch-1 loop."""
    model = load(name, device)
    ids, clean = bundled_inputs(args.images, 224, device)
    run = {"noise": args.noise, "ig_steps": args.ig_steps, "lime_samples": args.lime_samples}
    passes = best_pass_times(model, 224, device, [b for b in PASS_BATCHES if b <= args.max_pass_batch], args.repeats)
    batch_size = args.batch_size or passes.backward_batch  # the gradient families and PGD
    forward_batch = (
        args.batch_size or passes.forward_batch
    )  # the label-flip stage, and LIME (as lime_batch_size sizes it)
    batch_sizes = job_family_batch_sizes(args.batch_size or "auto", batch_size, forward_batch, device)
    report.header(name, device, len(clean), run, passes, batch_sizes, batch_size, forward_batch)
    pgd_speedup = measure_pgd(model, args, device, batch_size)
    from advxai.attacks.pgd import targeted_pgd
    from advxai.data.model_inputs import pixel_bounds

    with torch.no_grad():
        lower, upper = pixel_bounds()
        adversarial = targeted_pgd(
            model,
            clean,
            attack_targets(model, clean),
            PGD_EPSILON,
            PGD_STEP,
            args.pgd_steps,
            lower=lower,
            upper=upper,
            batch_size=min(batch_size, len(clean)),
        ).adversaries
        explained = model(adversarial).argmax(1)
    masks, counts = segmentations(adversarial)
    bench = Bench(
        name,
        model,
        device,
        args,
        clean,
        adversarial,
        explained,
        ids,
        masks,
        counts,
        passes,
        batch_sizes,
        forward_batch,
        (run, second_point(run)),
    )
    return bench, pgd_speedup


def measure_pgd(model: nn.Module, args: argparse.Namespace, device: torch.device, batch_size: int) -> float:
    """The stage attacks a shard at its batch size: the batched attack is timed on one full batch of
    images (the bundled photos repeated), the batch-1 loop on a few of them (--pgd-loop-images)."""
    pgd_images = args.pgd_images or batch_size
    loop_images = min(args.pgd_loop_images, pgd_images)
    inputs = bundled_inputs(pgd_images, 224, device)[1]
    loop, batched, check = pgd_times(
        model,
        inputs,
        attack_targets(model, inputs),
        args.pgd_steps,
        min(batch_size, pgd_images),
        loop_images,
        device,
        args.repeats,
    )
    print(
        f"PGD, {args.pgd_steps} steps, s per image, best of {args.repeats} alternating rounds: batch-1 captum loop "
        f"{loop:.3f} (on {loop_images} images), advxai batched {batched:.3f} (on {pgd_images} images, batch "
        f"{min(batch_size, pgd_images)}) -> {loop / batched:.2f}x; {check}"
    )
    return loop / batched


def engine_steps(bench: Bench, model: nn.Module, label: str, scores: dict) -> dict[str, Step]:
    """The engine at the first run setting (every family; its scores kept in ``scores["latest"]``)
    and, where the second differs, at the second (the families whose rows change)."""
    low, high = bench.points
    images, targets, ids, masks, counts = bench.first(len(bench.adversarial))

    def at_low() -> tuple[dict[str, float], dict]:
        seconds, scores["latest"] = engine_parts(
            model, images, targets, ids, masks, counts, low, bench.args.seed, bench.batch_sizes, bench.device
        )
        return seconds, scores["latest"]

    steps: dict[str, Step] = {label: at_low}
    changed = [f for f in bench.batch_sizes if bench.engine_rows(f, low) != bench.engine_rows(f, high)]
    if changed:
        steps[f"{label}@2"] = lambda: engine_parts(
            model,
            images,
            targets,
            ids,
            masks,
            counts,
            high,
            bench.args.seed,
            bench.batch_sizes,
            bench.device,
            only=changed,
        )
    return steps


def reference_steps(bench: Bench, batch: ReferenceBatch) -> dict[str, Step]:
    """The reference at both run settings, seconds per image (the batch may shrink on running out of memory)."""
    low, high = bench.points

    def at(settings: Mapping[str, int], only: list[str] | None) -> Step:
        def measure(n: int) -> tuple[dict[str, float], dict]:
            seconds, scores = reference_parts(
                bench.model, *bench.first(n), settings, bench.args.seed, bench.device, only
            )
            return {part: value / n for part, value in seconds.items()}, scores

        return lambda: batch.run(measure)

    steps = {"reference": at(low, None)}
    changed = [
        part for part in reference_passes(low) if reference_part_rows(part, low) != reference_part_rows(part, high)
    ]
    if changed:
        steps["reference@2"] = at(high, changed)
    return steps


def round_steps(bench: Bench, batch: ReferenceBatch, fast_runs: list[FastRun]) -> dict[str, Step]:
    """Everything timed in the alternating rounds, in a round's order."""
    from advxai.runtime import cuda_arithmetic

    scores: dict = {}
    steps = engine_steps(bench, bench.model, "engine", scores)
    steps["passes"] = pass_baseline_step(bench.model, bench.adversarial, bench.batch_sizes, bench.device)
    steps["labelflip"] = labelflip_step(
        bench.model,
        bench.clean,
        bench.adversarial,
        bench.masks,
        bench.counts,
        scores,
        bench.forward_batch,
        bench.device,
        bench.args.labelflip_sweep,
    )
    steps.update(reference_steps(bench, batch))
    for fast in fast_runs:
        fast_scores: dict = {}
        within = {
            **engine_steps(bench, fast.model, f"engine/{fast.arithmetic}", fast_scores),
            f"labelflip/{fast.arithmetic}": labelflip_step(
                fast.model,
                bench.clean,
                bench.adversarial,
                bench.masks,
                bench.counts,
                fast_scores,
                bench.forward_batch,
                bench.device,
                bench.args.labelflip_sweep,
            ),
        }
        steps.update({name: in_arithmetic(step, fast.arithmetic, cuda_arithmetic) for name, step in within.items()})
    return steps


def in_arithmetic(step: Step, arithmetic: str, context) -> Step:
    def run() -> tuple:
        with context(arithmetic):
            return step()

    return run


def paper_engine_seconds(bench: Bench, rounds: Rounds, label: str = "engine") -> tuple[dict[str, float], list[str]]:
    """The engine's seconds per family at the paper's settings, on the benchmark's images (two-point fit)."""
    return extrapolate_parts(
        rounds.best[label],
        rounds.best.get(f"{label}@2", {}),
        lambda family, settings: bench.engine_rows(family, settings),
        bench.points,
    )


def paper_reference_seconds(bench: Bench, rounds: Rounds) -> tuple[dict[str, float], list[str]]:
    """The reference's seconds per image and part at the paper's settings (two-point fit)."""
    return extrapolate_parts(
        rounds.best["reference"], rounds.best.get("reference@2", {}), reference_part_rows, bench.points
    )


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> list[str]:
    """Every measurement of one model; its SUMMARY line (and FAST lines)."""
    bench, pgd_speedup = prepare(name, args, device)
    n = len(bench.adversarial)
    fast_runs = [FastRun(arithmetic, load(name, device, arithmetic)) for arithmetic in args.arithmetic]
    batch = ReferenceBatch.of(min(args.reference_images, n))
    rounds = alternate_rounds(round_steps(bench, batch, fast_runs), args.repeats)
    engine_paper, engine_flat = paper_engine_seconds(bench, rounds)
    reference_paper, reference_flat = paper_reference_seconds(bench, rounds)
    report.scaling(
        bench.points,
        engine_flat + reference_flat,
        batch.describe(AUTHORS_BATCH),
        rounds.best,
        engine_paper,
        reference_paper,
        n,
    )
    efficiency, per_family = pass_efficiencies(
        rounds.best["engine"], n, bench.points[0], bench.batch_sizes, rounds.best["passes"]
    )
    noise = rounds.spread("passes") + rounds.spread("engine")
    report.efficiency(efficiency, per_family, noise, rounds.best["passes"], bench.batch_sizes, n, bench.points[0])
    own_work = own_work_seconds(*bench.first(n), args.seed, bench.batch_sizes, device)
    report.own_work(own_work)

    skip = () if captum_guides_alike(bench.model, bench.adversarial[:1]) else ("gbp",)
    found = agreement(rounds.results["reference"], rounds.results["engine"], LABELFLIP["k"], skip)
    report.agreement(found, skip, batch.images, TOLERANCE[device.type], device.type, bench.points[0])

    sweep(bench, reference_paper)
    engine_per_image = sum(engine_paper.values()) / n
    reference_per_image = sum(reference_paper.values())
    labelflip_share = rounds.best["labelflip"]["all"] / n / engine_per_image
    report.per_image(
        rounds.results["labelflip"][0],
        rounds.best["labelflip"]["all"],
        n,
        args.labelflip_sweep,
        reference_per_image,
        engine_per_image,
        reference_paper,
        engine_paper,
    )
    samples = max(bench.points[0]["lime_samples"], args.lime_shape_samples)
    lime_rounds = max(3, args.repeats)
    captum_lime, engine_lime = lime_at_captum_shape(
        bench.model, *bench.first(batch.images), samples, args.seed, device, lime_rounds
    )
    report.lime_shape(captum_lime, engine_lime, samples, lime_rounds, batch.images)
    print(
        f"bound on the speedup from model passes alone (both at the model's best time per pass): "
        f"{pass_count_bound(bench.passes.forward, bench.passes.backward):.2f}"
    )
    lines = [
        report.summary_line(
            name,
            device.type,
            reference_per_image / engine_per_image,
            efficiency,
            own_work,
            pgd_speedup,
            labelflip_share,
            found,
            batch.images,
            TOLERANCE[device.type],
            noise,
            captum_lime / engine_lime,
        )
    ]
    lines += [fast_line(bench, rounds, fast, engine_paper) for fast in fast_runs]
    return lines


def sweep(bench: Bench, reference_paper: Mapping[str, float]) -> None:
    """``--sweep-batches``: every engine family again at each batch size, against the same reference."""
    n = len(bench.adversarial)
    for size in bench.args.sweep_batches:
        sized = Bench(**{**bench.__dict__, "batch_sizes": job_family_batch_sizes(size, size, size, bench.device)})
        rounds = alternate_rounds(engine_steps(sized, bench.model, "engine", {}), bench.args.repeats)
        engine_paper = paper_engine_seconds(sized, rounds)[0]
        report.sweep_line(
            bench.name,
            bench.device.type,
            size,
            reference_paper,
            {family: seconds / n for family, seconds in engine_paper.items()},
        )


def fast_line(bench: Bench, rounds: Rounds, fast: FastRun, exact_paper: Mapping[str, float]) -> str:
    """One fast arithmetic against exact, from the same rounds: speed, rankings and label-flip rates."""
    label = f"engine/{fast.arithmetic}"
    fast_paper = paper_engine_seconds(bench, rounds, label)[0]
    correlations = score_rank_correlations(rounds.results["engine"], rounds.results[label], bench.counts)
    exact_flips, fast_flips = rounds.results["labelflip"][1], rounds.results[f"labelflip/{fast.arithmetic}"][1]
    report.fast_details(
        fast.arithmetic,
        rounds.best["engine"],
        rounds.best[label],
        rounds.best["labelflip"]["all"],
        rounds.best[f"labelflip/{fast.arithmetic}"]["all"],
        bench.args.repeats,
        correlations,
    )
    return report.fast_line(
        bench.name,
        bench.device.type,
        fast.arithmetic,
        sum(exact_paper.values()) / sum(fast_paper.values()),
        correlations,
        max_rate_difference(exact_flips, fast_flips),
    )
