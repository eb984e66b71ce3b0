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
from collections.abc import Callable

import torch

__all__ = ["Batched", "pad_rows", "run_batched"]

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
        try:
            result = fn(pad_rows(chunk, batch_size))
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            out_of_memory = True
        else:
            out_of_memory = False
        # Outside the except block, so the exception's frames (and their tensors) are freed.
        if out_of_memory:
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("out of memory: batch size halved to %d", batch_size)
            continue
        result = _first_rows(result, len(chunk))
        if consume is not None:
            consume(start, result)
        else:
            results.append(result)
        start += len(chunk)
    return None if consume is not None else _concatenated(results)
