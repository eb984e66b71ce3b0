"""The jobs and sbatch submissions of a SLURM run, read from a dry run with the SLURM profile.

Each job outside a group is one submission (the target rule ``all`` and the local rules run on
the submitting host); each group job is one submission whatever the number of jobs inside it.
One dry run (``snakemake -n``, not ``--quiet``) gives both counts, and every job's rule,
wildcards and group (:func:`planned_jobs`, which :mod:`advxai.plan` prices).
``benchmarks/count_submissions.py`` prints the counts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

GROUP_HEADER = re.compile(r"^(\[[^\]]*\] )?Group job (\S+) ")
TOP_LEVEL_JOB = re.compile(r"^(\[[^\]]*\] )?(local)?rule (\S+):$")
INNER_JOB = re.compile(r"^\s+(local)?rule (\S+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


@dataclass
class Submissions:
    jobs: int  # rule jobs that a profile without groups submits one by one
    grouped: int  # submissions with the profile's groups
    groups: dict[str, int]  # group name -> group jobs


@dataclass
class PlannedJob:
    """One job of a dry run: its rule, wildcards, and the group job (name, number) it runs in."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    group: tuple[str, int] | None = None
    local: bool = False


def local_rules(rules_folder: Path) -> frozenset[str]:
    """The rules that the workflow's `localrules:` directives name (a dry run prints them as `rule`)."""
    names: set[str] = set()
    for path in Path(rules_folder).glob("*.smk"):
        # a directive may go on over indented lines after a trailing comma
        for directive in re.findall(r"^localrules:(.*?(?:,\n[ \t]+.*?)*)$", path.read_text(), flags=re.MULTILINE):
            names.update(name.strip() for name in directive.split(",") if name.strip())
    return frozenset(names)


def planned_jobs(dry_run_output: str) -> list[PlannedJob]:
    """Every job block of a dry run's output, in order, with the group job it belongs to."""
    jobs: list[PlannedJob] = []
    group, group_jobs = None, 0
    for line in dry_run_output.splitlines():
        if header := GROUP_HEADER.match(line):
            group_jobs += 1
            group = (header.group(2), group_jobs)
        elif top := TOP_LEVEL_JOB.match(line):
            group = None
            jobs.append(PlannedJob(top.group(3), local=bool(top.group(2))))
        elif inner := INNER_JOB.match(line):
            jobs.append(PlannedJob(inner.group(2), group=group, local=bool(inner.group(1))))
        elif (found := WILDCARDS.match(line)) and jobs:
            jobs[-1].wildcards = dict(item.split("=", 1) for item in found.group(1).split(", "))
    return jobs


def count_submissions(dry_run_output: str, no_code: frozenset[str]) -> Submissions:
    """Count from the output of `snakemake -n` (not --quiet): group headers and jobs.

    Local rules (run on the submitting host) and the rules in `no_code` (the local rules and
    targets without shell/script, which Snakemake finishes itself) never reach sbatch.
    """
    jobs = grouped = 0
    groups: dict[str, int] = {}
    seen_groups: set[tuple[str, int]] = set()
    for job in planned_jobs(dry_run_output):
        if job.rule in no_code or job.local:
            continue
        jobs += 1
        if job.group is None:
            grouped += 1
        elif job.group not in seen_groups:
            seen_groups.add(job.group)
            groups[job.group[0]] = groups.get(job.group[0], 0) + 1
            grouped += 1
    return Submissions(jobs=jobs, grouped=grouped, groups=groups)


def dry_run(snakefile: Path, *args: str, profile: Path, timeout: float = 1800) -> str:
    """The output of `snakemake -n` with `profile` as the workflow profile."""
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--workflow-profile", str(profile), "-n", *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, cwd=Path(snakefile).parent)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr
