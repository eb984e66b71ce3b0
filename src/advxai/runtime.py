"""What every workflow job does first: log to its log file, size its threads, set up its device."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .constants import check_arithmetic

if TYPE_CHECKING:  # torch loads only in jobs that use it: the report jobs run without it
    import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but no CUDA device is visible")
    return torch.device(device)


def module_device(module: torch.nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """Where ``module``'s parameters live (``default`` for a module without parameters)."""
    import torch

    parameter = next(module.parameters(), None)
    return torch.device(default) if parameter is None else parameter.device


EXACT_CUDA = (False, False, True, False)
"""(cuDNN TF32, matmul TF32, cuDNN deterministic, cuDNN autotuner): float32 throughout, repeatable kernels."""

FAST_CUDA = (True, True, False, True)
"""TF32 convolutions and matmuls, cuDNN's autotuner and its fastest kernels, repeatable or not."""

CUDA_ARITHMETIC = {"exact": EXACT_CUDA, "tf32": FAST_CUDA, "bf16": FAST_CUDA}
"""The CUDA flags of each ``image.arithmetic`` (:data:`advxai.constants.ARITHMETICS`). bf16 takes
tf32's flags; its autocast is the model's own (:class:`advxai.arithmetic.FastArithmetic`)."""


def _cuda_arithmetic(settings: tuple[bool, bool, bool, bool] | None = None) -> tuple[bool, bool, bool, bool]:
    """PyTorch's CUDA arithmetic flags as :data:`EXACT_CUDA` orders them; sets them first if ``settings`` is given."""
    import torch

    backends = torch.backends
    if settings is not None:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.deterministic, backends.cudnn.benchmark = settings
    return backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.deterministic, backends.cudnn.benchmark


def cuda_flags(arithmetic: str) -> tuple[bool, bool, bool, bool]:
    """The :data:`CUDA_ARITHMETIC` flags of ``arithmetic``; an unknown name is an error naming the config key."""
    return CUDA_ARITHMETIC[check_arithmetic(arithmetic)]


@contextlib.contextmanager
def cuda_arithmetic(arithmetic: str) -> Iterator[None]:
    """The CUDA flags of ``arithmetic`` while the block runs, PyTorch's previous flags after it (no effect on a CPU)."""
    saved = _cuda_arithmetic()
    _cuda_arithmetic(cuda_flags(arithmetic))
    try:
        yield
    finally:
        _cuda_arithmetic(saved)


def exact_cuda_arithmetic() -> contextlib.AbstractContextManager[None]:
    """:data:`EXACT_CUDA` while the block runs, PyTorch's previous flags after it (no effect on a CPU)."""
    return cuda_arithmetic("exact")


def use_device(device: str, arithmetic: str = "exact", footprint_gib: float | None = None) -> torch.device:
    """The job's device (:func:`resolve_device`) with the CUDA flags of ``arithmetic`` (:data:`CUDA_ARITHMETIC`).

    PyTorch's CUDA defaults let cuDNN convolutions run in TF32 (a 10-bit mantissa) and pick
    kernels whose sums vary from run to run and with a row's position in the batch: on an H100,
    two identical gradient passes differed by up to 2e-6 (relative), which a PGD sign step turns
    into a whole step. Every job therefore runs with :data:`EXACT_CUDA` by default, so a row's
    values do not depend on its shard or its position (docs/cuda.md, docs/exactness.md). The
    image models' jobs may ask for ``tf32`` or ``bf16`` instead (``image.arithmetic``), which
    drops that promise for speed; the model's side of it is :func:`advxai.arithmetic.with_arithmetic`.
    On a CPU no flag is set.

    On CUDA, outside SLURM, the job takes a share of one of the machine's GPUs for its lifetime
    (:func:`local_gpu`): ``footprint_gib`` is the GPU memory it needs (default: a CUDA context).
    """
    flags = cuda_flags(arithmetic)
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if resolved.index is None:
            resolved = local_gpu(footprint_gib)
        _cuda_arithmetic(flags)
    return resolved


def local_gpu(footprint_gib: float | None = None) -> torch.device:
    """The GPU of this job: under SLURM the one it was allocated, else a share of the local GPU with
    the most room (:mod:`advxai.gpu_allocation`), named in the job's log."""
    import torch

    from . import gpu_allocation
    from .gpu_resources import CUDA_CONTEXT_GIB

    if gpu_allocation.under_slurm():
        chosen = torch.device("cuda", torch.cuda.current_device())
        logging.getLogger("advxai").info("device %s (allocated by SLURM)", chosen)
        return chosen
    memories = gpu_allocation.visible_gpu_memories_gib()
    holder = gpu_allocation.acquire(CUDA_CONTEXT_GIB if footprint_gib is None else footprint_gib, memories)
    torch.cuda.set_device(holder.gpu)
    chosen = torch.device("cuda", holder.gpu)
    logging.getLogger("advxai").info("device %s: local GPU %d of %d, %d of its %d share units",
                                     chosen, holder.gpu, len(memories), holder.units, gpu_allocation.GPU_SHARE)
    return chosen


def set_threads(threads: int) -> None:
    """Torch's intra-op threads: set now if torch is loaded, else through the environment its import reads."""
    threads = max(1, int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


GLIBC_MALLOPT = {"M_TRIM_THRESHOLD": -1, "M_MMAP_THRESHOLD": -3}
"""glibc's mallopt parameters (malloc.h)."""
RETAINED_BYTES = 2**31 - 1  # the largest value mallopt takes (an int)


def retain_freed_memory() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel at once (glibc only).

    glibc serves every block above its mmap threshold (at most 32 MiB by default) with a fresh mmap and
    unmaps it on free, so each batch's tensors fault their pages in again: in the embedded default a
    third of all CPU time was the kernel's, and the two label-flip jobs took 140 s instead of 71 s
    (docs/decisions.md, decision 48). Memory then stays at the job's peak until it exits. Returns whether
    glibc took the settings; elsewhere (macOS, musl) nothing changes.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(code, RETAINED_BYTES) == 1 for code in GLIBC_MALLOPT.values())


@contextlib.contextmanager
def job(log_path: str | None, threads: int = 1) -> Iterator[logging.Logger]:
    """Redirect stdout/stderr (tqdm progress included) to ``log_path``, set torch's threads and keep
    freed memory for the next batch (:func:`retain_freed_memory`)."""
    set_threads(threads)
    retain_freed_memory()
    if not log_path:
        yield logging.getLogger("advxai")
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
        logger = logging.getLogger("advxai")
        try:
            yield logger
        except BaseException:
            logger.exception("job failed")
            raise
