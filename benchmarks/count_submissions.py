"""Count the sbatch submissions a SLURM run would make, from a dry run with the SLURM profile.

Each job outside a group is one submission (the target rule `all` runs locally); each group job
is one submission whatever the number of jobs inside it. One dry run gives both counts, without
groups (every non-local job) and with the profile's groups:

    python benchmarks/count_submissions.py --configfile config.yaml presets/paper.yaml my-roots.yaml

Extra arguments go to `snakemake -n` (run from the repository root; `--directory` defaults to a
temporary folder so that nothing in the working tree counts as done).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP_HEADER = re.compile(r"^(\[[^\]]*\] )?Group job (\S+) ")
TOP_LEVEL_JOB = re.compile(r"^(\[[^\]]*\] )?(local)?rule (\S+):$")
INNER_JOB = re.compile(r"^\s+(local)?rule (\S+):$")


@dataclass
class Submissions:
    jobs: int  # rule jobs that a profile without groups submits one by one
    grouped: int  # submissions with the profile's groups
    groups: dict[str, int]  # group name -> group jobs


def local_rules(rules_folder: Path = ROOT / "workflow" / "rules") -> frozenset[str]:
    """The rules that the workflow's `localrules:` directives name (a dry run prints them as `rule`)."""
    names: set[str] = set()
    for path in rules_folder.glob("*.smk"):
        for line in path.read_text().splitlines():
            if line.startswith("localrules:"):
                names.update(name.strip() for name in line.removeprefix("localrules:").split(","))
    return frozenset(names)


def count_submissions(dry_run_output: str, no_code: frozenset[str] = frozenset({"all"}) | local_rules()) -> Submissions:
    """Count from the output of `snakemake -n` (not --quiet): group headers and jobs.

    Local rules (run on the submitting host) and the rules in `no_code` (targets without
    shell/script, which Snakemake finishes itself) never reach sbatch.
    """
    jobs = grouped = 0
    groups: dict[str, int] = {}
    for line in dry_run_output.splitlines():
        if header := GROUP_HEADER.match(line):
            groups[header.group(2)] = groups.get(header.group(2), 0) + 1
            grouped += 1
        elif top := TOP_LEVEL_JOB.match(line):
            if not top.group(2) and top.group(3) not in no_code:
                jobs += 1
                grouped += 1
        elif (inner := INNER_JOB.match(line)) and not inner.group(1) and inner.group(2) not in no_code:
            jobs += 1
    return Submissions(jobs=jobs, grouped=grouped, groups=groups)


def dry_run(*args: str, profile: Path = ROOT / "profiles" / "slurm", timeout: float = 1800) -> str:
    """The dry run's output with `profile` as the workflow profile."""
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--workflow-profile", str(profile), "-n", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "slurm")
    args, snakemake_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as workdir:
        if "--directory" not in snakemake_args:
            snakemake_args += ["--directory", workdir]
        counted = count_submissions(dry_run(*snakemake_args, profile=args.profile))
    print(f"rule jobs (one sbatch each without groups): {counted.jobs}")
    print(f"sbatch submissions with the profile's groups: {counted.grouped}")
    for name, count in sorted(counted.groups.items()):
        print(f"  group {name}: {count}")


if __name__ == "__main__":
    main()
