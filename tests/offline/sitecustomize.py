"""Test helper: workflow jobs may not touch the network (tests/test_weights.py, tests/test_slurm.py).

With this folder on ``PYTHONPATH``, every Python process that runs a workflow job's script
(``.snakemake/scripts/tmp*.<rule>.py``) refuses to open a socket, except the job of the local
rule ``image_weights``, whose work is the download. A refused attempt raises and is also written
to ``$ADVXAI_OFFLINE_LOG``, so a job that swallowed the error is still caught. Other processes
(Snakemake itself, the test) are left alone.
"""

from __future__ import annotations

import os
import socket
import sys

ALLOWED_RULES = ("image_weights",)


def _job_rule() -> str | None:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not (script.startswith("tmp") and script.endswith(".py") and ".snakemake" in sys.argv[0]):
        return None
    return script.rsplit(".", 2)[-2]


def _refuse(*args, **kwargs):
    message = f"network access in workflow job {sys.argv[0]} ({args[1:2] or args[:1]})"
    log = os.environ.get("ADVXAI_OFFLINE_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(message + "\n")
    raise OSError(message)


_rule = _job_rule()
if _rule is not None and _rule not in ALLOWED_RULES:
    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
