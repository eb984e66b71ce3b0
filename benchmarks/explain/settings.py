"""What each side computes at given settings, and how a part's time at two run settings reaches the paper's.

The reference's parts are the authors' captum calls; :func:`reference_passes` says how captum
batches each. The engine's families are row streams of one batch shape (:func:`engine_rows`).
Either side's time for a part is a straight line in its rows, ``t = fixed + per_row · rows``:
:func:`extrapolate` fits it through two run settings and reads it at the paper's rows, so a part's
fixed cost (a call's set-up, IG's per-copy stem work) is charged once, not once per scaled row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from advxai.batching import CAPTUM_LIME_ROWS, explanation_batch_size, lime_batch_size
from advxai.names import FAMILIES, LIME_FAMILY

PAPER = {"noise": 25, "ig_steps": 50, "lime_samples": 512}
AUTHORS_BATCH = 32  # images per batch of the authors' data loader (their label_flip_exps.py)
# On a CPU the paper's J = 25 is kept, so that captum's NoiseTunnel passes have the paper's shapes
# (J rows per image; IG under it one point per pass), and only IG's points and LIME's samples are
# fewer. The reference runs on 2 images there: enough for the agreement check, and a CPU's cost
# per row hardly depends on the batch (the authors' 32 images would take hours per model).
CPU_DEFAULTS = {"images": 2, "reference_images": 2, "noise": 25, "ig_steps": 2, "lime_samples": 32, "pgd_steps": 5}
GPU_DEFAULTS = {"images": AUTHORS_BATCH, "reference_images": AUTHORS_BATCH, **PAPER, "pgd_steps": 100}
MODELS = ("efficientnet_lite0", "alexnet", "resnet50")
SEGMENTATIONS = ("rect", "slic")
PGD_EPSILON, PGD_STEP = 0.05, 0.01
PGD_LOOP_IMAGES = 8  # the batch-1 loop's time per image does not depend on how many it attacks
LABELFLIP = {"k": 3, "rect_ks": list(range(1, 17)), "slic_fractions": [i / 10 for i in range(1, 11)]}
PASS_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
IG_INTERNAL_BATCH, LIME_PER_EVAL = 10, CAPTUM_LIME_ROWS  # the authors' captum settings

# The reference parts that make the explainers of each engine family: its plain map and its three
# noise ensembles (the engine computes them from one set of passes), or LIME.
FAMILY_PARTS = {"saliency": ("sal", "sal-nt"), "ig": ("ig", "ig-nt"), "gbp": ("gbp", "gbp-nt"), LIME_FAMILY: ("lime",)}


# ------------------------------------------------------------------------------------------------ two points
def second_point(run: Mapping[str, int]) -> dict[str, int]:
    """The second run setting of the two-point fit: each setting below the paper's doubled, the others kept."""
    return {key: value if value == PAPER[key] else 2 * value for key, value in run.items()}


def extrapolate(low: tuple[int, float], high: tuple[int, float], rows: int) -> tuple[float, bool]:
    """(seconds at ``rows``, whether the line rose) on the line through two (rows, seconds) points.

    Where the second point is not slower (the part's growth is below the machine's noise), the
    line says nothing: the faster point's seconds per row are scaled to ``rows`` instead, and the
    flag is False so that the report can say so.
    """
    (rows_low, seconds_low), (rows_high, seconds_high) = low, high
    if rows_low == rows_high:
        raise ValueError(f"two points need two row counts, got {rows_low} at both")
    slope = (seconds_high - seconds_low) / (rows_high - rows_low)
    if slope <= 0:
        return min(seconds_low / rows_low, seconds_high / rows_high) * rows, False
    return seconds_low + slope * (rows - rows_low), True


def extrapolate_parts(
    low: Mapping[str, float], high: Mapping[str, float], rows_of, settings: tuple[Mapping, Mapping]
) -> tuple[dict[str, float], list[str]]:
    """Each part's seconds at the paper's settings from its seconds at two run settings.

    ``rows_of(part, settings)`` gives a part's rows; a part whose rows are the same at both run
    settings and at the paper's was timed as it is (best of both points where both timed it).
    Returns the seconds and the parts whose two points did not rise (scaled in proportion instead).
    """
    paper_seconds, flat = {}, []
    for part, seconds_low in low.items():
        rows_low, rows_high, rows_paper = (rows_of(part, s) for s in (*settings, PAPER))
        if rows_low == rows_high:
            if rows_low != rows_paper:
                raise ValueError(f"{part}: its rows do not change between the two points, yet differ from the paper's")
            paper_seconds[part] = min(seconds_low, high.get(part, seconds_low))
            continue
        paper_seconds[part], rose = extrapolate((rows_low, seconds_low), (rows_high, high[part]), rows_paper)
        if not rose:
            flat.append(part)
    return paper_seconds, flat


# ------------------------------------------------------------------------------------------------ reference
@dataclass(frozen=True)
class ReferencePart:
    """How one reference part calls captum per image and segmentation, and how captum batches a call."""

    calls: int
    rows_per_call: int
    rows_per_pass: int  # of a full pass; a call's last pass holds the rest

    @property
    def rows(self) -> int:
        return self.calls * self.rows_per_call


def reference_passes(settings: Mapping[str, int], images: int = 1) -> dict[str, ReferencePart]:
    """Each reference part's captum calls per segmentation on ``images`` images, as captum batches them.

    NoiseTunnel sends the J copies of every image in one pass (one call per ensemble: SG, SG²,
    VarGrad); IG runs ``internal_batch_size // examples`` points per pass, at least one; Lime is
    called per image and evaluates ``perturbations_per_eval`` samples per pass.
    """
    noise, steps, samples = settings["noise"], settings["ig_steps"], settings["lime_samples"]
    ensembles = 3
    points = min(steps, max(1, IG_INTERNAL_BATCH // images))
    tunnel_points = min(steps, max(1, IG_INTERNAL_BATCH // (noise * images)))
    return {
        "sal": ReferencePart(1, images, images),
        "gbp": ReferencePart(1, images, images),
        "sal-nt": ReferencePart(ensembles, noise * images, noise * images),
        "gbp-nt": ReferencePart(ensembles, noise * images, noise * images),
        "ig": ReferencePart(1, steps * images, points * images),
        "ig-nt": ReferencePart(ensembles, noise * steps * images, noise * tunnel_points * images),
        "lime": ReferencePart(images, samples, min(samples, LIME_PER_EVAL)),
    }


def reference_part_rows(part: str, settings: Mapping[str, int]) -> int:
    return reference_passes(settings)[part].rows


def family_speedups(
    reference_per_image: Mapping[str, float], engine_per_image: Mapping[str, float]
) -> dict[str, float]:
    """Reference s per image over the engine's, for each family: is any explainer slower than captum's?"""
    return {
        family: sum(reference_per_image[part] for part in parts) / engine_per_image[family]
        for family, parts in FAMILY_PARTS.items()
    }


# ------------------------------------------------------------------------------------------------ engine
def engine_streams(family: str, n_images: int, settings: Mapping[str, int]) -> list[tuple[int, bool]]:
    """The engine's row streams for one family on ``n_images`` images: (rows, with backward) each.

    A gradient family is one stream over every item, noise copy and IG point; LIME is one stream
    of forwards per segmentation.
    """
    if family == LIME_FAMILY:
        return [(n_images * settings["lime_samples"], False)] * len(SEGMENTATIONS)
    per_copy = settings["ig_steps"] if family == "ig" else 1
    return [(n_images * per_copy * (1 + settings["noise"]), True)]


def padded(rows: int, batch_size: int) -> int:
    """Rows a stream of ``rows`` costs at a fixed batch shape: its last batch is padded."""
    return -(-rows // batch_size) * batch_size


def engine_rows(family: str, n_images: int, settings: Mapping[str, int], batch_size: int) -> tuple[int, int]:
    """(forward rows, forward+backward rows) the engine computes for one family, padding included."""
    streams = engine_streams(family, n_images, settings)
    return (
        sum(padded(rows, batch_size) for rows, backward in streams if not backward),
        sum(padded(rows, batch_size) for rows, backward in streams if backward),
    )


def padding_share(settings: Mapping[str, int], n_images: int, batch_sizes: Mapping[str, int]) -> float:
    """Share of the engine's computed rows that are padding, over every family."""
    needed = sum(rows for family in batch_sizes for rows, _ in engine_streams(family, n_images, settings))
    computed = sum(sum(engine_rows(family, n_images, settings, size)) for family, size in batch_sizes.items())
    return 1 - needed / computed


def job_family_batch_sizes(
    setting: int | str, backward_batch: int, forward_batch: int, device: torch.device
) -> dict[str, int]:
    """Each family's rows per pass as its job takes them from ``image.batch_size`` = ``setting`` and the
    job's pass sizes: LIME's jobs make forwards only (``lime_batch_size``), the gradient families take
    ``explanation_batch_size``."""
    gradient_batch = explanation_batch_size(setting, backward_batch, device)
    lime_batch = lime_batch_size(setting, forward_batch, device)
    return {family: lime_batch if family == LIME_FAMILY else gradient_batch for family in (*FAMILIES, LIME_FAMILY)}


def pass_count_bound(forward: float, backward: float) -> float:
    """Reference over engine model time per image at the paper's settings, were every pass at
    ``forward`` / ``backward`` seconds per row.

    Per segmentation the reference runs LIME (512 forwards), Saliency, IG (50 points) and GBP, and
    nine NoiseTunnels of 25 draws (3 × 25 × (1 + 50 + 1) gradients); the engine runs LIME per
    segmentation but every gradient map once for both: (1 + 25) × (1 + 50 + 1) gradients.
    """
    noise, steps, samples = PAPER["noise"], PAPER["ig_steps"], PAPER["lime_samples"]
    per_method = 1 + steps + 1  # Saliency, IG's points, GBP
    segs = len(SEGMENTATIONS)
    reference = segs * samples * forward + segs * (1 + 3 * noise) * per_method * backward
    engine = segs * samples * forward + (1 + noise) * per_method * backward
    return reference / engine
