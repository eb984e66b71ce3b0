"""Session runs built once per pytest invocation (tests/shared_runs.py), and the SLURM set-up once
per machine (tests/slurm_cluster.py): real processes racing through them, with stand-in builds
and a stand-in `apt-get`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from shared_runs import DuplicateBuild, SharedRunFailed, SharedRuns

TESTS = Path(__file__).resolve().parent


def racer(folder: Path, worker: str, build_body: str) -> subprocess.Popen:
    """A process that asks `SharedRuns(folder)` for run "r", built by `build_body` (Python, with
    `home` the run's folder and `log` a file every build appends to); prints OK <folder> or the error."""
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from shared_runs import SharedRuns
        log = Path({str(folder.parent / "builds.log")!r})
        def build(home):
            with open(log, "a") as handle:
                handle.write({worker!r} + "\\n")
        """) + textwrap.indent(textwrap.dedent(build_body), "    ") + textwrap.dedent(f"""
        try:
            print("OK", SharedRuns(Path({str(folder)!r}), {worker!r}).get("r", build))
        except Exception as error:
            print(type(error).__name__, error)
        """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcomes(*processes: subprocess.Popen) -> list[str]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        results.append(out.strip() or err.strip())
    return results


def test_two_workers_racing_build_a_run_once_and_share_it(tmp_path):
    folder = tmp_path / "shared"
    body = "time.sleep(1.0)\n(home / 'table.csv').write_text('built')\n"
    first, second = outcomes(racer(folder, "gw0", body), racer(folder, "gw1", body))
    assert first == second == f"OK {folder / 'r'}"
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    assert (folder / "r" / "table.csv").read_text() == "built"


def test_a_failed_build_is_reported_to_the_waiting_worker_not_rebuilt(tmp_path):
    folder = tmp_path / "shared"
    builder = racer(folder, "gw0", "time.sleep(1.0)\nraise ValueError('snakemake failed (1)')\n")
    time.sleep(0.5)  # the builder holds the lock by now
    waiter = racer(folder, "gw1", "")
    failed, reported = outcomes(builder, waiter)
    assert failed == "ValueError snakemake failed (1)"
    assert reported.startswith("SharedRunFailed session run 'r' failed on worker gw0") and "snakemake failed (1)" in reported
    assert (tmp_path / "builds.log").read_text().split() == ["gw0"]


def test_a_builder_that_died_is_reported_not_waited_for(tmp_path):
    folder = tmp_path / "shared"
    builder = racer(folder, "gw0", "time.sleep(1.0)\nos._exit(9)\n")
    time.sleep(0.5)
    waiter = racer(folder, "gw1", "")
    _, reported = outcomes(builder, waiter)
    assert reported.startswith("SharedRunFailed session run 'r': worker gw0") and "died while building it" in reported
    assert (tmp_path / "builds.log").read_text().split() == ["gw0"]


def test_a_second_build_of_a_run_stops_the_suite(tmp_path):
    """The guard: were the lock or the recorded outcome lost, a second build fails and stops the session."""
    session = SimpleNamespace(shouldfail=False)
    runs = SharedRuns(tmp_path, "gw1", session)
    builds = []
    assert runs.get("r", builds.append) == tmp_path / "r"
    assert runs.get("r", builds.append) == tmp_path / "r" and len(builds) == 1  # recorded: reused
    (tmp_path / "r.json").unlink()  # the outcome lost
    with pytest.raises(DuplicateBuild, match="built a second time"):
        runs.get("r", builds.append)
    assert len(builds) == 1 and "shared-run lock failed" in session.shouldfail


def test_a_failed_build_fails_later_requests_in_the_same_worker(tmp_path):
    runs = SharedRuns(tmp_path, "main")

    def failing(home: Path) -> None:
        raise RuntimeError("no cluster")

    with pytest.raises(RuntimeError):
        runs.get("r", failing)
    with pytest.raises(SharedRunFailed, match="no cluster"):
        runs.get("r", lambda home: None)


FAKE_APT_GET = """#!{python}
import sys, time
from pathlib import Path
bin_dir = Path(__file__).parent
with open(bin_dir.parent / "apt-calls.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
time.sleep(1.0)  # long enough for the other process to arrive while this one installs
if sys.argv[1] == "install":
    for program in ("slurmctld", "slurmd", "munged"):
        (bin_dir / program).write_text("#!/bin/sh\\n")
        (bin_dir / program).chmod(0o755)
"""


def test_two_processes_racing_through_the_slurm_set_up_install_once(tmp_path):
    """Two workers start the SLURM set-up at once on a machine without SLURM: one apt-get update
    and one install, the other waits and finds the programs installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET.format(python=sys.executable))
    apt_get.chmod(0o755)
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        os.geteuid = lambda: 0  # the stand-in apt-get needs no root
        import slurm_cluster
        slurm_cluster.ensure_installed(Path({str(tmp_path / "setup.lock")!r}))
        print("installed")
        """)
    environment = {"PATH": str(bin_dir)}  # no real slurmctld, munged or apt-get is found
    racers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment) for _ in range(2)]
    assert outcomes(*racers) == ["installed", "installed"]
    assert (tmp_path / "apt-calls.log").read_text().splitlines() == [
        "update", "install -y --no-install-recommends slurm-wlm munge"]
