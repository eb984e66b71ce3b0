"""Batched model passes at a fixed batch shape.

Every model pass of the pipeline (predictions, PGD, the explainers' gradient and LIME passes,
hybrid predictions, the audio detector) goes through :func:`run_batched`, which calls the model
on exactly ``batch_size`` rows each time: the last (or only) chunk is padded with copies of its
last row and their results are dropped. Deep-learning kernels choose their blocking, and with it
the order of floating-point additions, from the batch shape, so a row computed alone can differ in
the last bits from the same row inside a larger batch; PGD's sign steps amplify such bits into
different adversaries. With one batch shape per ``batch_size``, results are identical for any
shard size and after any resume (``docs/exactness.md``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: models.py imports this module
    from .models import ModelBundle
    from .store import BatchCheckpoint

__all__ = [
    "Batched",
    "ScratchTensors",
    "batch_from_memory",
    "CAPTUM_LIME_ROWS",
    "MIN_GPU_PASS_ROWS",
    "choose_batch_size",
    "explanation_batch_size",
    "fastest_batch_size",
    "job_batch_size",
    "lime_batch_size",
    "pad_rows",
    "run_batched",
]

log = logging.getLogger("advxai")

Batched = torch.Tensor | tuple[torch.Tensor, ...]
"""What a batched function returns: one tensor, or a tuple of tensors, each with one row per input row."""


def pad_rows(inputs: torch.Tensor, rows: int) -> torch.Tensor:
    """``inputs`` with its last row repeated until it has ``rows`` rows (unchanged if it has as many).

    Repeating a real row keeps the padding valid for any function (indices, images, spectrograms),
    and the padded rows' results are simply dropped.
    """
    missing = rows - len(inputs)
    if missing <= 0:
        return inputs
    return torch.cat([inputs, inputs[-1:].expand(missing, *inputs.shape[1:])])


def _first_rows(result: Batched, rows: int) -> Batched:
    if isinstance(result, tuple):
        return tuple(part[:rows] for part in result)
    return result[:rows]


def _concatenated(results: list[Batched]) -> Batched:
    if isinstance(results[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*results))
    return torch.cat(results)


class ScratchTensors:
    """Named scratch tensors that every pass of a stream reuses instead of allocating its own.

    A stream of passes at one batch shape needs the same large intermediates each time (perturbed
    inputs, scaled inputs, float64 copies to reduce); on a CPU, fresh tensors of that size per
    pass made the work around the model up to 3x slower (benchmarks/README.md). A tensor handed
    out is valid until the same name is asked for again.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._tensors: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """A contiguous ``shape`` tensor of ``dtype`` (uninitialised), from storage kept under ``name``."""
        size = math.prod(shape)
        kept = self._tensors.get(name)
        if kept is None or kept.dtype != dtype or kept.numel() < size:
            kept = self._tensors[name] = torch.empty(size, dtype=dtype, device=self.device)
        return kept[:size].view(*shape)


def _padded_call(fn: Callable[[torch.Tensor], Batched], chunk: torch.Tensor, batch_size: int) -> Batched | None:
    """``fn`` of ``chunk`` padded to ``batch_size`` rows; ``None`` if it ran out of memory (raised at one row)."""
    try:
        return fn(pad_rows(chunk, batch_size))
    except torch.OutOfMemoryError:
        if batch_size == 1:
            raise
    return None  # outside the except block, so the exception's frames (and their tensors) are freed


def _halved(batch_size: int) -> int:
    """Half the batch size (at least 1), with the allocator's cached blocks released."""
    batch_size = max(1, batch_size // 2)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.warning("out of memory: batch size halved to %d", batch_size)
    return batch_size


def run_batched(
    fn: Callable[[torch.Tensor], Batched],
    inputs: torch.Tensor,
    batch_size: int,
    consume: Callable[[int, Batched], None] | None = None,
) -> Batched | None:
    """Applies ``fn`` to ``inputs`` in chunks of exactly ``batch_size`` rows, halving on out-of-memory.

    Every call of ``fn`` sees the same batch shape: the last (or only) chunk is padded with copies
    of its last row (:func:`pad_rows`) and the padded rows' results are dropped. A row's arithmetic
    then never depends on how many rows share its call, so results are identical for any shard size
    and after any resume (``docs/exactness.md``). Rows must not interact inside ``fn`` (models in
    eval mode, per-row losses summed).

    Args:
        fn: maps a chunk ``(batch_size, ...)`` to a tensor, or a tuple of tensors, with
            ``batch_size`` rows.
        inputs: the rows to process (e.g. images, or indices that ``fn`` looks up).
        batch_size: the chunk size; it halves (to 1 at least) while ``fn`` runs out of memory and
            stays halved for the rest of this call (rows after a halving agree with an unhalved
            run only statistically, see ``docs/exactness.md``).
        consume: if given, called as ``consume(first_row, result)`` with each chunk's result (padding
            removed) in row order instead of concatenating them, so a caller can reduce results
            as they come without holding all of them.

    Returns:
        The chunk results concatenated along dim 0 (a tuple if ``fn`` returns tuples); ``None``
        with ``consume``.

    Raises:
        ValueError: if ``batch_size`` is not positive.
        torch.OutOfMemoryError: if even a chunk of one item does not fit.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(inputs) == 0:
        return None if consume is not None else fn(inputs)
    results: list[Batched] = []
    start = 0
    while start < len(inputs):
        chunk = inputs[start : start + batch_size]
        result = _padded_call(fn, chunk, batch_size)
        if result is None:  # out of memory
            batch_size = _halved(batch_size)
            continue
        result = _first_rows(result, len(chunk))
        if consume is not None:
            consume(start, result)
        else:
            results.append(result)
        start += len(chunk)
    return None if consume is not None else _concatenated(results)


# ------------------------------------------------------------------------------------------------
# Batch sizes that fit the hardware
# ------------------------------------------------------------------------------------------------

CPU_CANDIDATES = (1, 2, 4, 8, 16, 32)
"""Batch sizes timed on a CPU; beyond 32 rows a CPU pass is no faster per row, only longer."""

LARGEST_BATCH = 1024
"""Upper bound of a batch size sized from GPU memory (beyond it a GPU pass gains nothing)."""


def batch_from_memory(per_row_bytes: float, free_bytes: float, *, fraction: float = 0.8, largest: int = LARGEST_BATCH) -> int:
    """The largest power of two whose rows fit in ``fraction`` of ``free_bytes`` (1 at least, ``largest`` at most).

    A power of two keeps the batch size, and with it every result, the same on GPUs whose free
    memory differs a little (docs/exactness.md: a different batch size changes results statistically).
    """
    if per_row_bytes <= 0:
        return largest
    rows = int(fraction * free_bytes // per_row_bytes)
    size = 1
    while size * 2 <= min(rows, largest):
        size *= 2
    return size


def fastest_batch_size(seconds_per_call: Callable[[int], float], candidates: Sequence[int] = CPU_CANDIDATES,
                       *, rounds: int = 3, tolerance: float = 0.05) -> int:
    """The smallest candidate whose seconds per row are within ``tolerance`` of the fastest.

    ``seconds_per_call(b)`` times one call at batch size ``b``. Each candidate is timed in
    ``rounds`` rounds that visit every candidate in turn, and keeps its fastest call: a call can
    only be slowed by other load, never sped up, and interleaving spreads the machine's drift over
    all candidates instead of charging it to whichever was timed during a slow spell. The smallest
    near-best size wastes the fewest padded rows at the end of a stream.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be positive, got {rounds}")
    fastest_call = dict.fromkeys(candidates, math.inf)
    for _ in range(rounds):
        for size in candidates:
            fastest_call[size] = min(fastest_call[size], seconds_per_call(size))
    per_row = {size: seconds / size for size, seconds in fastest_call.items()}
    best = min(per_row.values())
    return min(size for size, seconds in per_row.items() if seconds <= best * (1 + tolerance))


def _model_pass(model: torch.nn.Module, item_shape: Sequence[int], device: torch.device, backward: bool) -> Callable[[int], None]:
    """One forward (and backward to the input, as the explainers and PGD take) at batch size ``b``."""

    def step(size: int) -> None:
        inputs = torch.randn(size, *item_shape, device=device)
        if not backward:
            with torch.no_grad():
                model(inputs)
            return
        inputs.requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(model(inputs)[:, 0].sum(), inputs)
        del gradient

    return step


def _cuda_per_row_bytes(step: Callable[[int], None], device: torch.device, sizes: tuple[int, int] = (2, 4)) -> float:
    """Extra peak GPU memory per row of ``step``, from its peaks at two batch sizes."""
    peaks = []
    for size in sizes:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(size)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - before)
    return (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])


def choose_batch_size(
    setting: int | str,
    model: torch.nn.Module,
    item_shape: Sequence[int],
    device: torch.device | str,
    *,
    backward: bool = True,
) -> int:
    """The rows per pass for a job: ``setting`` if it is a number, else (``"auto"``) what fits the hardware.

    * GPU: the largest power of two that fits in 80 % of the free memory (the allocator's cached
      blocks included) at the per-row footprint measured with two small batches;
    * CPU: the candidate of :data:`CPU_CANDIDATES` with the fewest seconds per row, after a warm-up
      call at each, the fastest of three interleaved calls each (:func:`fastest_batch_size`).

    ``backward`` sizes for a forward and backward pass (explainers, PGD), else for a forward only.
    An out-of-memory error later still halves the batch in :func:`run_batched`. A measured size
    can differ between machines, and a different batch size changes results statistically
    (docs/exactness.md); fix the number in the config for bitwise-repeatable runs across machines.
    """
    if not isinstance(setting, str):
        if int(setting) < 1:
            raise ValueError(f"batch_size must be a positive number or 'auto', got {setting!r}")
        return int(setting)
    if setting != "auto":
        raise ValueError(f"batch_size must be a positive number or 'auto', got {setting!r}")
    device = torch.device(device)
    step = _model_pass(model, item_shape, device, backward)
    if device.type == "cuda":
        step(1)  # warm-up: kernels and allocator
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        size = batch_from_memory(_cuda_per_row_bytes(step, device), free + cached)
    else:

        def seconds(size: int) -> float:
            start = time.perf_counter()
            step(size)
            return time.perf_counter() - start

        for size in CPU_CANDIDATES:
            step(size)  # warm-up at every shape (allocator, kernel selection) before any is timed
        size = fastest_batch_size(seconds)
    log.info("batch size %d (measured on %s, %s)", size, device, "forward and backward" if backward else "forward")
    return size


# ------------------------------------------------------------------------------------ the image jobs' policy
def job_batch_size(
    setting: int | str, bundle: ModelBundle, device: torch.device, *, backward: bool, checkpoint: BatchCheckpoint | None = None,
) -> int:
    """Rows per model pass: ``image.batch_size`` if it is a number, else (``auto``) measured for this job.

    ``auto`` sizes the batch to the device (:func:`choose_batch_size`; docs/exactness.md):
    for a forward and backward pass where ``backward``, else a forward. A job with a checkpoint
    keeps each size it measured first, so that a resumed job continues in the same batches.
    """
    if setting != "auto":
        return int(setting)

    def measure() -> int:
        return choose_batch_size("auto", bundle.module, (3, bundle.input_size, bundle.input_size), device, backward=backward)

    kind = "batch_size" if backward else "forward_batch_size"
    size = checkpoint.kept(kind, measure) if checkpoint is not None else measure()
    log.info("batch_size auto: %d rows per %s pass", size, "forward and backward" if backward else "forward")
    return size


CAPTUM_LIME_ROWS = 16
"""The authors' ``perturbations_per_eval``: the rows of each LIME forward in their captum calls."""

MIN_GPU_PASS_ROWS = 16
"""On a GPU, the fewest rows of an image explanation pass when ``image.batch_size`` is a number.

A GPU runs a pass of a few rows in about the time of a pass of 25, so there the engine is faster
than captum's pattern only if it makes fewer passes. Per image and segmentation, captum makes 4
Saliency (or GBP) passes of 1 and 25 rows, 155 IG passes of 10 and 25 rows and 32 LIME passes of
16 at the paper's settings; the engine, sharing both segmentations, makes 26 / b and 1 300 / b
passes of b rows for a family, and LIME's 512. At 16 rows that is under a quarter of captum's
passes (docs/decisions.md, "On a GPU, image explanation passes hold at least 16 rows").
"""


def explanation_batch_size(setting: int | str, backward_batch: int, device: torch.device | str) -> int:
    """Rows per gradient-explainer pass (and items per call of an extra explainer): the job's size;
    for a number, at least 16 on a GPU (:data:`MIN_GPU_PASS_ROWS`).

    ``backward_batch`` is the job's forward+backward size (:func:`job_batch_size`). Under ``auto``
    it is kept: measured on a GPU, it is the largest size that fits. Out of memory, a pass still
    halves (:func:`run_batched`).
    """
    if setting == "auto" or torch.device(device).type == "cpu":
        return backward_batch
    return max(backward_batch, MIN_GPU_PASS_ROWS)


def lime_batch_size(setting: int | str, forward_batch: int, device: torch.device | str) -> int:
    """Rows per LIME forward: the measured forward size under ``auto``; for a number, captum's 16 rows
    on a CPU and ``max(batch_size, 16)`` on a GPU.

    LIME makes as many forwards as the authors' captum calls, which send 16 samples per pass, so it
    gains on them only by what it does around the model, and loses if its passes run slower per
    row. On a CPU they do at other sizes: AlexNet at 1-4 rows took 1.8-2x captum's time, and
    EfficientNet-Lite0 at 32 rows 1.16x (benchmarks/README.md); at 16 rows both make the same passes.
    A GPU runs larger passes faster per row (ResNet-50's LIME: 2.95x captum at 128 rows, 1.91x at
    16). A forward holds no activations for a backward, so 16 of them need less memory than a few
    rows of the gradient passes that ``batch_size`` is set for; out of memory, the pass still halves.
    """
    if setting == "auto":
        return forward_batch
    return CAPTUM_LIME_ROWS if torch.device(device).type == "cpu" else max(forward_batch, MIN_GPU_PASS_ROWS)
