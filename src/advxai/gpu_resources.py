"""How much of a local GPU a workflow job holds, decided while Snakemake parses the workflow.

Torch-free on purpose: parsing must stay fast, so the GPU is found through the NVIDIA driver
(``/proc/driver/nvidia``) or ``nvidia-smi``. See docs/cuda.md, "Local GPU sharing".
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from pathlib import Path

GPU_SHARE = 100
"""Units of ``gpu_share`` that make one local GPU (profiles/default caps ``gpu_share`` at this)."""

MAX_JOBS_PER_GPU = 4
"""A job holds at least 1/MAX_JOBS_PER_GPU of the GPU, so that jobs also share its compute."""

CUDA_CONTEXT_GIB = 1.0
"""CUDA context, cuDNN workspaces and the weights of a mid-size model."""

IMAGE_GIB_PER_IMAGE_224 = 0.15
"""Activation memory of one 224 px image through forward and backward (ResNet-50 scale, float32)."""

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def cuda_expected(device: str) -> bool:
    """Whether jobs configured with ``device`` will run on CUDA.

    ``auto`` counts a GPU as present when the NVIDIA driver is (``/proc/driver/nvidia`` or
    ``nvidia-smi``) and ``CUDA_VISIBLE_DEVICES`` does not hide every device.
    """
    if device != "auto":
        return device == "cuda"
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return NVIDIA_DRIVER.exists() or shutil.which("nvidia-smi") is not None


@functools.cache
def local_gpu_memories_gib() -> tuple[float, ...] | None:
    """Memory of each visible GPU from ``nvidia-smi`` (None where it cannot tell)."""
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=20, check=True)
        memories = tuple(float(line) / 1024 for line in found.stdout.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return memories or None


def local_gpu_memory_gib() -> float | None:
    """Memory of the smallest visible GPU (None where it cannot tell)."""
    memories = local_gpu_memories_gib()
    return None if memories is None else min(memories)


def share_of_gpu(footprint_gib: float, memory_gib: float) -> int:
    """Units (of :data:`GPU_SHARE` per GPU) that a job with this footprint holds of one GPU: its
    share of the memory, at least ``GPU_SHARE / MAX_JOBS_PER_GPU``. The run-time allocator
    (:mod:`advxai.gpu_allocation`) uses the same rule per GPU."""
    return max(GPU_SHARE // MAX_JOBS_PER_GPU, math.ceil(min(GPU_SHARE, GPU_SHARE * footprint_gib / memory_gib)))


def gpu_share(device: str, footprint_gib: float) -> int:
    """Units of ``gpu_share`` a job with this memory footprint holds, of the :data:`GPU_SHARE`
    units that stand for all local GPUs together (profiles/default).

    0 off the GPU; all of them where the GPUs' memory is unknown; otherwise its share of one GPU
    (the smallest, :func:`share_of_gpu`) divided by the number of GPUs, rounded down: Snakemake
    then starts about as many GPU jobs as fit on all GPUs, and a job that finds no GPU with room
    (its GPU is picked when it starts, :mod:`advxai.gpu_allocation`) waits for one.
    """
    if not cuda_expected(device):
        return 0
    memories = local_gpu_memories_gib()
    if memories is None:
        return GPU_SHARE
    return max(1, share_of_gpu(footprint_gib, min(memories)) // len(memories))


def image_footprint_gib(batch_size: int | str, crop: int) -> float:
    """GPU memory of an image model job: the CUDA context plus a batch's activations at ``crop`` px.

    ``batch_size: auto`` sizes the batch to the GPU's free memory, so such a job holds the whole GPU.
    """
    if batch_size == "auto":
        return math.inf
    return CUDA_CONTEXT_GIB + batch_size * (crop / 224) ** 2 * IMAGE_GIB_PER_IMAGE_224
