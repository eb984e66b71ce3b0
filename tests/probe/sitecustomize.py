"""Probe for the parse-time tests (tests/test_parse_time.py); inert unless ADVXAI_PROBE_OUT is set.

Put on PYTHONPATH, it runs at the start of every Python process (Snakemake and the job scripts
it starts): it counts the directory reads (os.scandir, os.listdir) of folders below
ADVXAI_PROBE_ROOT and, at exit, writes them with the process's argv and whether torch was
imported to ADVXAI_PROBE_OUT/<pid>.json.
"""

import atexit
import json
import os
import sys
from collections import Counter

_out = os.environ.get("ADVXAI_PROBE_OUT")
if _out:
    _root = os.path.realpath(os.environ["ADVXAI_PROBE_ROOT"])
    _reads: Counter = Counter()
    _scandir, _listdir = os.scandir, os.listdir

    def _count(path) -> None:
        # bytes paths too: psutil lists b"/proc" while Snakemake benchmarks a job
        real = os.path.realpath(os.fsdecode(path) if path is not None else ".")
        if real == _root or real.startswith(_root + os.sep):
            _reads[os.path.relpath(real, _root)] += 1

    def scandir(path="."):
        if not isinstance(path, int):
            _count(path)
        return _scandir(path)

    def listdir(path="."):
        if not isinstance(path, int):
            _count(path)
        return _listdir(path)

    os.scandir, os.listdir = scandir, listdir

    @atexit.register
    def _report() -> None:
        record = {"argv": sys.argv, "reads": dict(_reads), "torch": "torch" in sys.modules}
        with open(os.path.join(_out, f"{os.getpid()}.json"), "w") as handle:
            json.dump(record, handle)
