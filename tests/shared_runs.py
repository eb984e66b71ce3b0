"""Session runs built once per pytest invocation, however many xdist workers read them.

A session run (the test preset run locally, through SLURM, in shards of two, ...) is a folder
that a build function fills. Every worker of one pytest invocation sees the same `SharedRuns`
folder (the invocation's base temporary directory, which the xdist controller hands to all its
workers). The first worker to ask for a run takes the run's file lock, builds it and records the
outcome; a worker that asks meanwhile waits on the lock and then reuses the folder, or fails with
the builder's error: a failed build is never retried, and a builder that died is reported, not
waited for. This does not rely on xdist's `--dist=loadgroup`, whose `xdist_group` marks pytest
9.2 with xdist 3.8 ignores.

A guard checks the lock: each build claims its run with a file created exclusively; a second
claim (the lock failed, or the outcome was lost) stops the whole suite at once.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

WAIT_TIMEOUT_S = 3600  # longer than any build (Snakemake's own timeouts are 1500-2400 s)


class SharedRunFailed(AssertionError):
    """The run's build failed (here or on another worker); the message carries the builder's error."""


class DuplicateBuild(AssertionError):
    """Two builds of the same run in one pytest invocation: the once-only mechanism is broken."""


def invocation_folder(basetemp: Path, worker: str | None, run_id: str | None) -> Path:
    """The folder every worker of this pytest invocation sees: in the base temporary directory, or
    under xdist in its parent (each worker's base is <basetemp>/popen-<worker>), named after the
    invocation's xdist test-run id."""
    return (basetemp.parent if worker else basetemp) / f"runs-{(run_id or 'single')[:8]}"  # short: socket paths under it


@dataclass
class SharedRuns:
    folder: Path
    worker: str = "main"
    session: pytest.Session | None = None  # set, a duplicate build stops it (session.shouldfail)

    def get(self, name: str, build: Callable[[Path], None]) -> Path:
        """The folder of run `name`, built by `build(folder)` once per invocation."""
        self.folder.mkdir(parents=True, exist_ok=True)
        home = self.folder / name
        with FileLock(self.folder / f"{name}.lock", timeout=WAIT_TIMEOUT_S):
            record = self._outcome(name)
            if record is None:
                return self._build(name, home, build)
        if record["status"] == "done":
            return home
        if record["status"] == "building":
            raise SharedRunFailed(f"session run {name!r}: worker {record['worker']} (pid {record['pid']}) died while building it")
        raise SharedRunFailed(f"session run {name!r} failed on worker {record['worker']}:\n{record['error']}")

    def _build(self, name: str, home: Path, build: Callable[[Path], None]) -> Path:
        self._claim(name)
        self._record(name, "building")
        home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            build(home)
        except BaseException as error:  # the waiting workers must hear of an interrupt too
            self._record(name, "failed", error="".join(traceback.format_exception_only(type(error), error))[-6000:])
            raise
        self._record(name, "done", seconds=round(time.monotonic() - started, 1))
        return home

    def _claim(self, name: str) -> None:
        claim = self.folder / f"{name}.built-by"
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            message = (f"session run {name!r} is being built a second time in one pytest invocation "
                       f"(by {self.worker}; first by {claim.read_text() or '?'}): the shared-run lock failed")
            if self.session is not None:
                self.session.shouldfail = message  # the worker stops after this test; xdist then stops all
            raise DuplicateBuild(message) from None
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.worker)

    def _outcome(self, name: str) -> dict | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _record(self, name: str, status: str, **fields) -> None:
        path = self.folder / f"{name}.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps({"status": status, "worker": self.worker, "pid": os.getpid(), **fields}))
        partial.replace(path)
