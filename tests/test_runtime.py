"""What every workflow job sets up first (advxai.runtime): freed memory kept for the next batch."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates, touches and frees 64 MiB five times; prints the page faults of the last four rounds.
ROUNDS = """
import resource, sys
if sys.argv[1] == "retain":
    from advxai.runtime import retain_freed_memory
    assert retain_freed_memory()
faults = 0
for round in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(64 * 2**20)  # malloc'd and zeroed (numpy would ask for huge pages)
    del block
    faults += (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) if round else 0
print(faults)
"""


def page_faults(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_job_reuses_freed_memory_instead_of_faulting_its_pages_in_again():
    """A 64 MiB block is 16 384 pages: glibc's default maps and unmaps it each round."""
    assert page_faults("default") > 4 * 16_000
    assert page_faults("retain") < 1_000
