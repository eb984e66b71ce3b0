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
import tempfile
from pathlib import Path

from advxai import submissions
from advxai.submissions import Submissions

ROOT = Path(__file__).resolve().parents[1]


def local_rules(rules_folder: Path = ROOT / "workflow" / "rules") -> frozenset[str]:
    return submissions.local_rules(rules_folder)


def count_submissions(dry_run_output: str, no_code: frozenset[str] | None = None) -> Submissions:
    """:func:`advxai.submissions.count_submissions`; the local rules and `all` reach no sbatch."""
    return submissions.count_submissions(dry_run_output, frozenset({"all"}) | local_rules() if no_code is None else no_code)


def dry_run(*args: str, profile: Path = ROOT / "profiles" / "slurm", timeout: float = 1800) -> str:
    return submissions.dry_run(ROOT / "Snakefile", *args, profile=profile, timeout=timeout)


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
