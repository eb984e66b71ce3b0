"""Every local GPU (advxai.gpu_allocation): jobs take a share of one GPU each, on the GPU with the
most room, without a GPU here: the device count and memory the allocator reads are faked, the
jobs are forked processes that share the allocation state as workflow jobs do."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal

import pytest
import torch

from advxai import gpu_allocation, runtime
from advxai.gpu_allocation import Holder, acquire, choose_gpu, process_started

FORK = multiprocessing.get_context("fork")
FOUR_GPUS = [80.0, 80.0, 80.0, 80.0]


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu_allocation.STATE_VARIABLE, str(tmp_path / "gpus"))
    return tmp_path / "gpus" / "holders.json"


def test_the_gpu_with_most_room_that_fits_is_chosen():
    holders = [Holder(1, "t", 0, 50), Holder(2, "t", 1, 25), Holder(3, "t", 1, 50)]
    # 80 GiB GPUs: 1 GiB takes the minimum quarter; 60 GiB takes 75 units
    assert choose_gpu([80.0, 80.0, 80.0], holders, 1.0) == (2, 25)
    assert choose_gpu([80.0, 80.0], holders, 1.0) == (0, 25)
    assert choose_gpu([80.0, 80.0], holders, 60.0) is None
    assert choose_gpu([80.0, 16.0], [], 12.0) == (0, 25)  # 15 units on the large GPU, a quarter at least
    assert choose_gpu([80.0, 16.0], [Holder(1, "t", 0, 80)], 12.0) == (1, 75)  # ceil(100 * 12 / 16)


def hold(footprint: float, memories: list[float], chosen, release_now) -> None:
    """A job: take a share, report the GPU, hold it until told to finish."""
    chosen.put(acquire(footprint, memories).gpu)
    release_now.wait(60)
    gpu_allocation.release()  # what atexit does in a job (a forked multiprocessing child skips atexit)


def start_jobs(count: int, footprint: float, memories: list[float]):
    chosen, release_now = FORK.Queue(), FORK.Event()
    jobs = [FORK.Process(target=hold, args=(footprint, memories, chosen, release_now)) for _ in range(count)]
    for job in jobs:
        job.start()
    return jobs, [chosen.get(timeout=60) for _ in jobs], release_now


def test_concurrent_jobs_get_distinct_gpus_and_share_them_by_memory():
    jobs, gpus, release_now = start_jobs(4, 60.0, FOUR_GPUS)  # 75 units: one such job per GPU
    assert sorted(gpus) == [0, 1, 2, 3]
    with pytest.raises(TimeoutError):  # a fifth finds no room while they run
        acquire(60.0, FOUR_GPUS, timeout_s=1.5)
    more, small, release_more = start_jobs(4, 1.0, FOUR_GPUS)  # a quarter each fits beside them: one per GPU
    assert sorted(small) == [0, 1, 2, 3]
    release_now.set()
    release_more.set()
    for job in jobs + more:
        job.join(30)
        assert job.exitcode == 0
    assert acquire(60.0, FOUR_GPUS).gpu == 0  # all released at exit: the first GPU again
    gpu_allocation.release()


def crash_holding(memories, chosen) -> None:
    chosen.put(acquire(60.0, memories).gpu)
    chosen.close()
    chosen.join_thread()  # the report is sent before the kill
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no release


def test_a_crashed_job_releases_its_share(state):
    chosen = FORK.Queue()
    job = FORK.Process(target=crash_holding, args=([80.0], chosen))
    job.start()
    assert chosen.get(timeout=60) == 0
    job.join(30)
    assert job.exitcode == -signal.SIGKILL
    assert json.loads(state.read_text())[0]["pid"] == job.pid  # its entry is still written down
    assert acquire(60.0, [80.0], timeout_s=5).gpu == 0  # but the share is free
    gpu_allocation.release()
    assert json.loads(state.read_text()) == []


def test_a_resumed_run_reuses_the_shares_of_its_killed_jobs_and_respects_live_ones(state):
    """The state a killed run left: two dead jobs on GPUs 0 and 1, one live process (this test's
    parent) holding 75 units of GPU 1, and an entry whose pid lives but as another process."""
    parent = os.getppid()
    dead = FORK.Process(target=lambda: None)
    dead.start()
    dead.join()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps([
        {"pid": dead.pid, "started": "1", "gpu": 0, "units": 100},
        {"pid": dead.pid, "started": "1", "gpu": 1, "units": 25},
        {"pid": parent, "started": process_started(parent), "gpu": 1, "units": 75},
        {"pid": parent, "started": "0", "gpu": 0, "units": 100},  # a reused pid: not the process that wrote it
    ]))
    jobs, gpus, release_now = start_jobs(2, 40.0, [80.0, 80.0])  # 50 units each: both fit only on GPU 0
    assert gpus == [0, 0]
    release_now.set()
    for job in jobs:
        job.join(30)
    assert [entry["pid"] for entry in json.loads(state.read_text())] == [parent]


def test_a_job_s_device_is_its_gpu_named_in_its_log(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(gpu_allocation, "visible_gpu_memories_gib", lambda: [80.0, 80.0])
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(runtime, "_cuda_arithmetic", lambda flags=None: flags)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    acquire(60.0, [80.0, 80.0])  # this process holds GPU 0 already (as another job would)
    monkeypatch.setattr(gpu_allocation.os, "getpid", lambda: os.getppid())  # the job: another live process
    with caplog.at_level(logging.INFO, logger="advxai"):
        device = runtime.use_device("cuda", footprint_gib=1.0)
    assert device == torch.device("cuda", 1)
    assert "device cuda:1: local GPU 1 of 2, 25 of its 100 share units" in caplog.text
    monkeypatch.setenv("SLURM_JOB_ID", "7")  # under SLURM: the GPU it was given, nothing allocated
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert runtime.use_device("cuda") == torch.device("cuda", 0)


def test_a_job_that_exits_gives_its_share_back(state):
    import subprocess
    import sys

    code = "from advxai.gpu_allocation import acquire; print(acquire(60.0, [80.0, 80.0]).gpu)"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, env=os.environ)
    assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr
    assert json.loads(state.read_text()) == []
