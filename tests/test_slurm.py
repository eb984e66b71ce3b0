"""profiles/slurm on a real one-node SLURM cluster (tests/slurm_cluster.py, docs/cluster.md).

One SLURM run of presets/test.yaml serves every assertion: it completes, its tables are identical
to the local run's, the sbatch arguments carry the profile's resources (GPU rules, groups), the
submissions are the groups that a dry run counts, and a group job cancelled mid-run with
`scancel` is resubmitted by the profile's `retries`. Where no cluster can be set up the tests
fail and say why; set ADVXAI_SKIP_SLURM=<reason> to skip them instead.

The tiny model's weights come from a local HTTP server, fetched by the local rule image_weights:
the state dict that the local run builds as its random weights, so the tables stay identical,
while every SLURM job runs with the network refused (tests/offline/sitecustomize.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake_command
from served_weights import (
    OFFLINE,
    WeightsServer,
    random_resnet18,
    save_hashed,
    served_overlay,
)
from slurm_cluster import PARTITION, ClusterUnavailable, OneNodeCluster

from advxai.store import read_provenance
from advxai.weights import WEIGHTS_FOLDER

sys.path.insert(0, str(ROOT / "benchmarks"))
from count_submissions import count_submissions, local_rules  # noqa: E402

LOCAL_RULES = local_rules()

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

SKIP_VARIABLE = "ADVXAI_SKIP_SLURM"
PRODUCTION_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TEST_OVERLAY = Path(__file__).parent / "slurm" / "profile-overlay.yaml"
TEST_MEM_MB = 1000  # the node has ~23 GB: production requests would run one job at a time
RUN_TIMEOUT_S = 2400  # generous: a 2-core machine shared with other work is several times slower
CANCELLED_GROUP = "attack_chain"


def deep_merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def slurm_test_profile(folder: Path) -> Path:
    """profiles/slurm with the test overlay, one thread per job and memory requests capped, in `folder`."""
    profile = deep_merge(yaml.safe_load(PRODUCTION_PROFILE.read_text()), yaml.safe_load(TEST_OVERLAY.read_text()))
    profile["set-threads"] = {rule: 1 for rule in profile.get("set-threads", {})}
    for resources in profile.get("set-resources", {}).values():
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], TEST_MEM_MB)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def sbatch_logger(folder: Path, log: Path, real_sbatch: str) -> Path:
    """A folder with an `sbatch` that appends its argv (JSON, one line per call) to `log`, then runs the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "sbatch"
    wrapper.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real_sbatch!r}, ['sbatch', *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    return folder


class Canceller(threading.Thread):
    """Cancels, once, a running attack chain whose clean predictions are written but whose attack
    is not: mid-run. Keeps the Snakemake jobs it ran (its batch script's --target-jobs)."""

    def __init__(self, environment: dict[str, str], workdir: Path):
        super().__init__(daemon=True)
        self.environment, self.workdir = environment, workdir
        self.done = threading.Event()
        self.cancelled_targets: str | None = None

    def run(self) -> None:
        scripts: dict[str, str] = {}
        while not self.done.is_set():
            listing = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True, env=self.environment)
            for line in listing.stdout.splitlines():
                job, comment = line.split("|", 1)
                if f"_{CANCELLED_GROUP}_" not in comment:
                    continue
                if job not in scripts:
                    scripts[job] = subprocess.run(["scontrol", "write", "batch_script", job, "-"], capture_output=True, text=True,
                                                  env=self.environment).stdout
                shard = re.search(r"image_clean_predictions:model=(\w+),shard=(\d+)", scripts[job])
                if shard and (self.workdir / "image" / shard.group(1) / "clean" / f"shard{shard.group(2)}.h5").exists():
                    subprocess.run(["scancel", job], check=True, env=self.environment)
                    self.cancelled_targets = target_jobs(scripts[job])
                    return
            time.sleep(0.5)


def target_jobs(command: str) -> str | None:
    """The `--target-jobs` of a submitted Snakemake command: which jobs one submission runs."""
    found = re.search(r"--target-jobs (.*?) --", command)
    return found.group(1) if found else None


def attempt(command: str) -> int:
    return int(re.search(r"--attempt (\d+)", command).group(1))


@dataclass
class SlurmRun:
    workdir: Path
    profile: Path
    sbatch_calls: list[list[str]]
    cancelled_targets: str | None
    output: str
    wall_s: float
    weights_file: Path
    weights_requests: int
    offline_log: Path


def run_through_slurm(base: Path, run_locally) -> None:
    """presets/test.yaml through profiles/slurm (+ test overlay) on a one-node cluster started for
    it, one attack chain cancelled mid-run; what the tests read goes to base/slurm_run.json.

    `run_locally()` builds the local run that the tables are compared with meanwhile: a GPU group
    runs its jobs one after another, so the SLURM run alone leaves a core idle for minutes.
    """
    cluster = OneNodeCluster(base / "cluster")
    try:
        cluster.start()
        calls, cancelled, wall_s, weights = submit_and_wait(cluster, base, run_locally)
    except ClusterUnavailable as err:
        pytest.fail(f"no one-node SLURM cluster for the SLURM tests: {err}\n(set {SKIP_VARIABLE}=<reason> to skip them)")
    finally:
        cluster.stop()
    record = {"sbatch_calls": calls, "cancelled_targets": cancelled, "wall_s": wall_s, **weights}
    (base / "slurm_run.json").write_text(json.dumps(record))


def submit_and_wait(cluster: OneNodeCluster, base: Path, run_locally) -> tuple[list[list[str]], str | None, float, dict]:
    """Snakemake through the test profile, sbatch logged; returns the sbatch calls, the targets of
    the cancelled group job, the wall time and the served weights (file, requests, offline log)."""
    workdir, log, output_file = base / "work", base / "sbatch-calls.jsonl", base / "snakemake-output.txt"
    workdir.mkdir()
    profile = slurm_test_profile(base / "profile")
    real_sbatch = subprocess.run(["which", "sbatch"], capture_output=True, text=True, check=True).stdout.strip()
    server = WeightsServer(base / "served")
    weights_file = save_hashed(random_resnet18(), base / "served", "resnet18")
    offline_log = base / "offline.log"
    environment = {**cluster.environment, "PATH": f"{sbatch_logger(base / 'bin', log, real_sbatch)}:{os.environ['PATH']}",
                   "PYTHONPATH": os.pathsep.join([str(OFFLINE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
                   "ADVXAI_OFFLINE_LOG": str(offline_log)}
    overlay = str(served_overlay(base, server, weights_file))
    command = ["timeout", "-k", "10", str(RUN_TIMEOUT_S), *snakemake_command(workdir, "--workflow-profile", str(profile), overlay=overlay)]
    canceller = Canceller(cluster.environment, workdir)
    canceller.start()
    start = time.monotonic()
    with open(output_file, "w") as output_handle:
        process = subprocess.Popen(command, stdout=output_handle, stderr=subprocess.STDOUT, text=True, env=environment,
                                   start_new_session=True)
        try:
            run_locally()
            returncode = process.wait(timeout=RUN_TIMEOUT_S + 30)
        finally:
            if process.poll() is None:  # the local run failed: stop Snakemake (cluster.stop() cancels its jobs)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            canceller.done.set()
            server.server.shutdown()
    wall_s = time.monotonic() - start
    print(f"SLURM run of presets/test.yaml (beside the local run): {wall_s:.0f} s")
    if returncode != 0:
        raise AssertionError(f"snakemake with profiles/slurm failed ({returncode}) after {wall_s:.0f} s:\n"
                             f"{output_file.read_text()[-6000:]}")
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls, canceller.cancelled_targets, wall_s, {"weights_file": str(weights_file), "weights_requests": len(server.requests),
                                                        "offline_log": str(offline_log)}


@pytest.fixture(scope="session")
def slurm_run(shared_runs, request) -> SlurmRun:
    """The SLURM run, once per pytest invocation (tests/shared_runs.py), beside the local run."""
    if reason := os.environ.get(SKIP_VARIABLE):
        pytest.skip(f"{SKIP_VARIABLE}={reason}")
    base = shared_runs.get("slurm", lambda folder: run_through_slurm(folder, lambda: request.getfixturevalue("run")))
    record = json.loads((base / "slurm_run.json").read_text())
    return SlurmRun(base / "work", base / "profile", record["sbatch_calls"], record["cancelled_targets"],
                    (base / "snakemake-output.txt").read_text(), record["wall_s"], Path(record["weights_file"]),
                    record["weights_requests"], Path(record["offline_log"]))


def option(call: list[str], name: str) -> str | None:
    """The value of `name` in an sbatch argv, given as `name value` or `name=value`."""
    for index, argument in enumerate(call):
        if argument == name:
            return call[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return None


def calls_of(run: SlurmRun, group: str) -> list[list[str]]:
    """The sbatch calls of group `group` (its log folder is group_<group>_<rules>)."""
    return [call for call in run.sbatch_calls if f"/group_{group}_" in (option(call, "--output") or "")]


def test_tables_identical_to_local_run(slurm_run, run):
    ours = sorted(p.name for p in (slurm_run.workdir / "results" / "tables").iterdir())
    assert ours == sorted(p.name for p in (run / "results" / "tables").iterdir())
    for name in ours:
        assert (slurm_run.workdir / "results" / "tables" / name).read_bytes() == (run / "results" / "tables" / name).read_bytes(), name


def test_submissions_are_the_groups_a_dry_run_counts(slurm_run, tmp_path):
    # the image manifest is a checkpoint (run on the submitting host): with it in place, the dry
    # run lists every shard's jobs, as the real run did once the manifest was written
    manifest = Path("image/data/bundled/manifest.csv")
    (tmp_path / manifest).parent.mkdir(parents=True)
    shutil.copy(slurm_run.workdir / manifest, tmp_path / manifest)
    shutil.copytree(slurm_run.workdir / WEIGHTS_FOLDER, tmp_path / WEIGHTS_FOLDER)  # fetched on the submitting host
    overlay = str(slurm_run.workdir.parent / "served-weights.yaml")
    dry = subprocess.run(snakemake_command(tmp_path, "--workflow-profile", str(slurm_run.profile), "-n", overlay=overlay),
                         capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counted = count_submissions(dry.stdout + dry.stderr)
    retried = 1 if slurm_run.cancelled_targets else 0
    assert len(slurm_run.sbatch_calls) - retried == counted.grouped
    assert counted.grouped * 4 <= counted.jobs  # grouping submits at least four times fewer jobs
    ungrouped = [option(call, "--output") for call in slurm_run.sbatch_calls if "/group_" not in option(call, "--output")]
    assert ungrouped and all("/rule_image_shard/" in output for output in ungrouped), ungrouped  # shards alone: decision 47


def test_sbatch_arguments_of_gpu_and_grouped_jobs(slurm_run):
    profile = yaml.safe_load((slurm_run.profile / "config.yaml").read_text())
    runtime = {rule: resources["runtime"] for rule, resources in profile["set-resources"].items() if "runtime" in resources}
    for call in slurm_run.sbatch_calls:
        assert option(call, "-p") == PARTITION
        # jobs side by side add up (one thread and TEST_MEM_MB each), at most `cores` of them
        cpus = int(option(call, "--cpus-per-task"))
        assert 1 <= cpus <= profile["cores"]
        assert option(call, "--mem") == str(cpus * TEST_MEM_MB)
    assert {option(call, "--cpus-per-task") for call in calls_of(slurm_run, "attack_chain")} == {"1"}
    assert {option(call, "--cpus-per-task") for call in calls_of(slurm_run, "explain_chain")} == {"2"}  # rect and SLIC segments
    # one GPU per group, however many GPU jobs it runs one after another
    for group in ("attack_chain", "explain_chain", "detector", "audio_chain"):
        calls = calls_of(slurm_run, group)
        assert calls, group
        assert all(option(call, "--gpus") == "1" for call in calls), (group, calls)
    for group in ("audio_data",):
        calls = calls_of(slurm_run, group)
        assert calls and all(option(call, "--gpus") is None and option(call, "--ntasks") == "1" for call in calls), (group, calls)
    # a group asks for the sum of the runtimes its jobs run in sequence
    assert {option(call, "-t") for call in calls_of(slurm_run, "attack_chain")} == {
        str(runtime["image_clean_predictions"] + runtime["image_attack"])}
    assert {option(call, "-t") for call in calls_of(slurm_run, "detector")} == {
        str(runtime["audio_train_detector"] + runtime["audio_evaluate_detector"])}
    # segments rect + slic side by side, then the six explanation families, two label flips, two refinements and two
    # localised, one by one
    explain_chain = (runtime["image_segments"] + 6 * runtime["image_explain"]
                     + 2 * (runtime["image_labelflip"] + runtime["image_refine"] + runtime["image_localised"]))
    assert {option(call, "-t") for call in calls_of(slurm_run, "explain_chain")} == {str(explain_chain)}


def test_cancelled_job_is_retried(slurm_run):
    assert slurm_run.cancelled_targets, f"no running {CANCELLED_GROUP} job was seen to cancel"
    submitted = [option(call, "--wrap") for call in calls_of(slurm_run, CANCELLED_GROUP)]
    resubmitted = [command for command in submitted if target_jobs(command) == slurm_run.cancelled_targets]
    assert [attempt(command) for command in resubmitted] == [1, 2], (slurm_run.cancelled_targets, submitted)


def test_jobs_read_the_weights_fetched_once_on_the_submitting_host_offline(slurm_run):
    """One download (the local rule), no job touched the network, every model output records the file's sha256."""
    assert slurm_run.weights_requests == 1
    assert not slurm_run.offline_log.exists(), slurm_run.offline_log.read_text()
    assert not any("image_weights" in (option(call, "--wrap") or "") for call in slurm_run.sbatch_calls)
    digest = hashlib.sha256(slurm_run.weights_file.read_bytes()).hexdigest()
    model_stages = ("clean", "adversaries", "explanations", "labelflip", "localised")
    outputs = [path for stage in model_stages for path in sorted((slurm_run.workdir / "image" / "tiny" / stage).rglob("shard*.h5"))]
    assert len(outputs) == 2 + 6 + 2 + 2
    for output in outputs:
        assert json.loads(read_provenance(output)["weights"])["sha256"] == digest, output
