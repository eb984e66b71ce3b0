"""Which local GPU a model job runs on: a share of one GPU, held from the job's start to its exit.

Snakemake has no local GPU ids: it only counts ``gpu_share`` units over all local GPUs
(:func:`advxai.gpu_resources.gpu_share`). Each job therefore picks its GPU itself when it starts:
under a file lock it reads which processes hold which share of which GPU, takes the share its
memory footprint needs (:func:`advxai.gpu_resources.share_of_gpu`) on the GPU with the most room,
and writes itself down. The share is released when the process exits; the entry of a process
that died without releasing it (killed, crashed) is dropped by the next reader, since each entry
names its process by pid and start time. A job that finds no GPU with room waits for one.

Under SLURM nothing is allocated: the job runs on the GPU that SLURM gave it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .gpu_resources import GPU_SHARE, share_of_gpu
from .store import atomic_path

log = logging.getLogger("advxai")

STATE_VARIABLE = "ADVXAI_GPU_STATE"
"""Folder of the allocation state; default ``<tmp>/advxai-gpus-<uid>``, shared by every run of the user on the machine."""

POLL_S = 0.5
"""How often a job that found no GPU with room looks again."""


@dataclass(frozen=True)
class Holder:
    """One process holding ``units`` of GPU ``gpu``; ``started`` tells a reused pid apart."""

    pid: int
    started: str
    gpu: int
    units: int


def visible_gpu_memories_gib() -> list[float]:
    """Memory (GiB) of each GPU this process sees (``CUDA_VISIBLE_DEVICES`` applies), as torch numbers them."""
    import torch

    return [torch.cuda.get_device_properties(index).total_memory / 2**30 for index in range(torch.cuda.device_count())]


def process_started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc/<pid>/stat), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]  # field 22 of stat; the split drops pid and comm


def state_folder() -> Path:
    return Path(os.environ.get(STATE_VARIABLE) or Path(tempfile.gettempdir(), f"advxai-gpus-{os.getuid()}"))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[Path]:
    """The state file, while this process holds the folder's lock."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder / "holders.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_holders(state: Path) -> list[Holder]:
    """The entries of processes still running (a crashed or killed job's share is free again)."""
    try:
        entries = json.loads(state.read_text())
    except (OSError, ValueError):
        return []
    holders = [Holder(**entry) for entry in entries]
    return [h for h in holders if process_started(h.pid) == h.started]


def _write(state: Path, holders: list[Holder]) -> None:
    with atomic_path(state) as tmp:
        tmp.write_text(json.dumps([asdict(h) for h in holders]))


def choose_gpu(memories_gib: list[float], holders: list[Holder], footprint_gib: float) -> tuple[int, int] | None:
    """(GPU, units) for a job with ``footprint_gib``: the GPU with the most free units that fits it
    (the lowest index among equals), or None where none has room."""
    best: tuple[int, int, int] | None = None  # (free units, -gpu, units)
    for gpu, memory in enumerate(memories_gib):
        units = share_of_gpu(footprint_gib, memory)
        free = GPU_SHARE - sum(h.units for h in holders if h.gpu == gpu)
        if units <= free and (best is None or free > best[0]):
            best = (free, -gpu, units)
    return None if best is None else (-best[1], best[2])


def acquire(footprint_gib: float, memories_gib: list[float] | None = None, timeout_s: float | None = None) -> Holder:
    """Take a share of a GPU for this process, waiting while no GPU has room; released at exit.

    ``memories_gib``: the GPUs' memory (default: :func:`visible_gpu_memories_gib`).
    """
    memories = visible_gpu_memories_gib() if memories_gib is None else memories_gib
    if not memories:
        raise RuntimeError("no visible GPU to allocate")
    me = os.getpid()
    started, deadline, waited = process_started(me), None if timeout_s is None else time.monotonic() + timeout_s, False
    while True:
        with _locked(state_folder()) as state:
            holders = [h for h in _live_holders(state) if h.pid != me]
            chosen = choose_gpu(memories, holders, footprint_gib)
            if chosen is not None:
                holder = Holder(me, started, *chosen)
                _write(state, [*holders, holder])
                atexit.register(release)
                return holder
        if not waited:
            log.info("no local GPU has room for a job of %.1f GiB: waiting for a share", footprint_gib)
            waited = True
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no local GPU had room for a job of {footprint_gib:.1f} GiB within {timeout_s} s")
        time.sleep(POLL_S)


def release() -> None:
    """Give this process's GPU share back (at exit, or earlier)."""
    with _locked(state_folder()) as state:
        holders = _live_holders(state)
        kept = [h for h in holders if h.pid != os.getpid()]
        if len(kept) != len(holders):
            _write(state, kept)


def under_slurm() -> bool:
    """A SLURM job: it uses the GPU SLURM allocated, as SLURM numbers it for the job."""
    return "SLURM_JOB_ID" in os.environ
