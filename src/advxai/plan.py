"""A plan before the run: runtimes, memory, jobs, submissions and GPU-hours of a configuration,
priced from the benchmarks of a small pilot run (docs/cluster.md, "Plan before you submit").

The pilot runs the same workflow on a part of the configuration (one shard per model and one
detector seed by default, optionally with cheaper settings) and leaves one ``logs/benchmarks/``
file per job. A planned job is priced from the pilot jobs of its rule (and model, for the image
rules): ``start-up + (pilot seconds - start-up) x work / pilot work``, where ``work``
(:mod:`advxai.plan_work`) is what the job's time grows with (images x PGD steps, LIME samples,
...) and the start-up is the pilot's quickest job among those that load a model, or among the
others. Wall and CPU seconds are priced alike. Memory is the pilot's largest RSS of the rule.
The planned jobs and their groups come from a dry run with the SLURM profile
(:mod:`advxai.submissions`).

    python -m advxai.plan --configfile config.yaml presets/paper.yaml my-roots.yaml --run-pilot \\
        --gpus 8 --output plan
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .plan_work import job_work
from .submissions import (
    PlannedJob,
    count_submissions,
    dry_run,
    local_rules,
    planned_jobs,
)

MARGIN = 1.5
"""Runtimes and memory in the profile: the pilot's prediction times this (jobs vary with their
data, the machine's load and the node; too short a limit kills a job that then fails again)."""

MIN_RUNTIME_MIN = 5
MIN_MEM_MB = 1000
BENCHMARK_PATTERN = re.compile(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", flags=re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Measured:
    """One pilot job's benchmark (Snakemake's `benchmark:` file)."""

    rule: str
    wildcards: dict[str, str]
    seconds: float
    max_rss_mb: float
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Priced:
    job: PlannedJob
    seconds: float
    max_rss_mb: float
    cpu_seconds: float = 0.0


def load_config(files: Sequence[str | Path], schema: Path) -> dict[str, Any]:
    """The configuration Snakemake runs with: the files deep-merged in order, schema defaults filled."""
    from snakemake.utils import validate

    config: dict[str, Any] = {}
    for path in files:
        _deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, schema=str(schema))
    return config


def _deep_merge(base: dict, overlay: Mapping) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def benchmark_patterns(rules_folder: Path) -> dict[str, re.Pattern]:
    """Rule → a regex of its `benchmark:` file, one named group per wildcard (read from the rule files)."""
    patterns = {}
    for path in sorted(Path(rules_folder).glob("*.smk")):
        for rule, body in BENCHMARK_PATTERN.findall(path.read_text()):
            found = re.search(r'benchmark:\s*\n\s*"([^"]+)"', body)
            if found:
                parts = re.split(r"\{(\w+)\}", found.group(1))
                regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+?)" for i, part in enumerate(parts))
                patterns[rule] = re.compile(f"^{regex}$")
    return patterns


def read_benchmarks(workdir: Path, patterns: Mapping[str, re.Pattern]) -> list[Measured]:
    """Every benchmark file of a pilot's working directory, attributed to its rule and wildcards."""
    measured = []
    for path in sorted(Path(workdir, "logs", "benchmarks").rglob("*.tsv")):
        relative = path.relative_to(workdir).as_posix()
        rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
        if len(rows) < 2:
            continue
        header, values = rows[0], rows[-1]
        record = dict(zip(header, values))
        matches = [(rule, match) for rule, pattern in patterns.items() if (match := pattern.match(relative))]
        if not matches:
            continue
        # the most specific pattern wins, as in Snakemake: seed{seed}_eval.tsv over seed{seed}.tsv
        rule, match = min(matches, key=lambda found: sum(len(value) for value in found[1].groupdict().values()))
        measured.append(Measured(rule, match.groupdict(), float(record["s"]), _number(record.get("max_rss")),
                                 _number(record.get("cpu_time"))))
    return measured


def _number(value: str | None) -> float:
    return float(value) if value not in (None, "-", "NA", "") else 0.0


def startup_seconds(measured: Sequence[Measured], model_rules: set[str], model_job: bool, cpu: bool = False) -> float:
    """A job's fixed cost (interpreter, imports, model): the quickest pilot job's time among the jobs
    that load a model, or among the others (they import no torch)."""
    times = [m.cpu_seconds if cpu else m.seconds for m in measured if (m.rule in model_rules) == model_job]
    return min(times, default=0.0)


REPEATING_WILDCARDS = ("shard", "seed")
"""Wildcards whose jobs repeat the same work on other data; the others (model, explanation family,
segmentation, split) make jobs of another kind, priced from the pilot jobs of their own kind."""


def _kind(rule: str, wildcards: Mapping[str, str], any_model: bool = False) -> tuple:
    kind = {key: value for key, value in wildcards.items() if key not in REPEATING_WILDCARDS and not (any_model and key == "model")}
    return (rule, any_model, tuple(sorted(kind.items())))


def _scaled(samples: Sequence[tuple[Measured, float]], startup: float, cpu: bool, work: float) -> float:
    """Start-up plus the pilot jobs' mean time per unit of work (samples: job, its work) times ``work``."""
    per_work = sum(max(0.0, (m.cpu_seconds if cpu else m.seconds) - startup) / done for m, done in samples) / len(samples)
    return startup + per_work * work


def pilot_subsets(pilot_dir: Path, pilot: Mapping) -> dict[str, tuple[float, float]]:
    """Model → items per shard in the pilot's label-flip and localised subsets, as drawn."""
    from .store import read_h5

    image = pilot["image"]
    shards = math.ceil(image["max_images"] / image["shard_size"]) if image["max_images"] else 1
    drawn = {}
    for path in sorted(Path(pilot_dir, "image").glob("*/subset.h5")):
        ids = read_h5(path, ["labelflip_ids", "localised_ids"])
        drawn[path.parent.name] = (len(ids["labelflip_ids"]) / shards, len(ids["localised_ids"]) / shards)
    return drawn


def price_jobs(
    planned: Iterable[PlannedJob], measured: Sequence[Measured], plan: Mapping, pilot: Mapping, model_rules: set[str] = frozenset(),
    subsets: Mapping[str, tuple[float, float]] | None = None,
) -> list[Priced]:
    """Wall and CPU seconds and memory of each planned job that has a benchmark, from the pilot
    jobs of its kind (:func:`_kind`: rule, model, family...). ``model_rules``: the rules whose jobs load a model (their
    start-up is priced apart); ``subsets``: the pilot's subsets as drawn (:func:`pilot_subsets`)."""
    by_key: dict[tuple, list[tuple[Measured, float]]] = defaultdict(list)
    for m in measured:
        done = job_work(m.rule, m.wildcards, pilot, subsets)
        if done <= 0:  # e.g. a model without successful adversaries in the pilot: nothing to learn
            continue
        by_key[_kind(m.rule, m.wildcards)].append((m, done))
        if "model" in m.wildcards:  # a model the pilot did not run is priced from the others
            by_key[_kind(m.rule, m.wildcards, any_model=True)].append((m, done))
    priced = []
    for job in planned:
        samples = by_key.get(_kind(job.rule, job.wildcards)) or by_key.get(_kind(job.rule, job.wildcards, any_model=True))
        if not samples:
            continue
        work, model_job = job_work(job.rule, job.wildcards, plan), job.rule in model_rules
        seconds, cpu_seconds = (_scaled(samples, startup_seconds(measured, model_rules, model_job, cpu), cpu, work)
                                for cpu in (False, True))
        priced.append(Priced(job, seconds, max(m.max_rss_mb for m, _ in samples), cpu_seconds))
    return priced


def missing_rules(planned: Iterable[PlannedJob], priced: Sequence[Priced], patterns: Mapping[str, re.Pattern]) -> set[str]:
    """Benchmarked rules that the plan runs but the pilot did not."""
    return {job.rule for job in planned if job.rule in patterns} - {p.job.rule for p in priced}


def gpu_rules(profile: Mapping[str, Any]) -> set[str]:
    return {rule for rule, resources in profile.get("set-resources", {}).items() if resources.get("gpu", 0)}


def planned_profile(base: Mapping[str, Any], priced: Sequence[Priced], margin: float) -> dict[str, Any]:
    """``base`` (the SLURM profile) with each priced rule's runtime (minutes) and mem_mb: the
    longest and largest planned job of the rule times ``margin``."""
    profile = copy.deepcopy(dict(base))
    resources = profile.setdefault("set-resources", {})
    longest: dict[str, float] = defaultdict(float)
    largest: dict[str, float] = defaultdict(float)
    for p in priced:
        longest[p.job.rule] = max(longest[p.job.rule], p.seconds)
        largest[p.job.rule] = max(largest[p.job.rule], p.max_rss_mb)
    for rule in sorted(longest):
        entry = resources.setdefault(rule, {})
        entry["runtime"] = max(MIN_RUNTIME_MIN, math.ceil(longest[rule] * margin / 60))
        entry["mem_mb"] = max(MIN_MEM_MB, math.ceil(largest[rule] * margin))
    return profile


@dataclass
class StageSummary:
    jobs: int = 0
    hours: float = 0.0
    cpu_time_hours: float = 0.0  # the jobs' CPU time, steadier than wall time on a shared pilot machine
    longest_min: float = 0.0
    gpu: bool = False


def summarise(priced: Sequence[Priced], profile: Mapping[str, Any], gpus: int) -> dict[str, Any]:
    """Per rule (stage) and in total: jobs, hours, GPU-hours and CPU-hours, and the wall time on ``gpus`` GPUs.

    GPU-hours count every job of a submission that holds a GPU (the CPU jobs of such a group
    keep its GPU too); CPU-hours are the other jobs' hours times their threads. The wall time is
    a lower bound: GPU-hours spread evenly over the GPUs, at least the longest GPU submission,
    without queue waits.
    """
    gpu_set = gpu_rules(profile)
    gpu_groups = {p.job.group for p in priced if p.job.rule in gpu_set and p.job.group is not None}
    threads = profile.get("set-threads", {})
    stages: dict[str, StageSummary] = defaultdict(StageSummary)
    submissions: dict[Any, float] = defaultdict(float)
    gpu_hours = cpu_hours = 0.0
    for p in priced:
        on_gpu = p.job.rule in gpu_set or p.job.group in gpu_groups
        stage = stages[p.job.rule]
        stage.jobs, stage.hours, stage.gpu = stage.jobs + 1, stage.hours + p.seconds / 3600, on_gpu
        stage.cpu_time_hours += p.cpu_seconds / 3600
        stage.longest_min = max(stage.longest_min, p.seconds / 60)
        if on_gpu:
            gpu_hours += p.seconds / 3600
            submissions[p.job.group or id(p)] += p.seconds / 3600
        else:
            cpu_hours += p.seconds / 3600 * threads.get(p.job.rule, 1)
    wall = max(gpu_hours / max(gpus, 1), max(submissions.values(), default=0.0))
    return {"stages": {rule: vars(s) for rule, s in sorted(stages.items())}, "gpu_hours": gpu_hours,
            "cpu_hours": cpu_hours, "gpus": gpus, "wall_hours": wall, "job_hours": sum(s.hours for s in stages.values()),
            "job_cpu_hours": sum(p.cpu_seconds for p in priced) / 3600}


def render(summary: Mapping[str, Any], counted: Any, margin: float) -> str:
    """The summary as Markdown."""
    lines = ["| stage (rule) | jobs | hours | CPU time (h) | longest job (min) | holds a GPU |", "|---|---|---|---|---|---|"]
    for rule, stage in summary["stages"].items():
        lines.append(f"| {rule} | {stage['jobs']} | {stage['hours']:.2f} | {stage['cpu_time_hours']:.2f} | {stage['longest_min']:.1f} | "
                     f"{'yes' if stage['gpu'] else 'no'} |")
    groups = ", ".join(f"{name} {count}" for name, count in sorted(counted.groups.items()))
    lines += [
        "",
        f"jobs: {counted.jobs} (one sbatch each without groups); submissions with the profile's groups: {counted.grouped} ({groups})",
        f"job hours: {summary['job_hours']:.2f} (CPU time of the jobs: {summary['job_cpu_hours']:.2f} h); "
        f"GPU-hours: {summary['gpu_hours']:.2f}; CPU-hours: {summary['cpu_hours']:.2f}",
        f"wall time on {summary['gpus']} GPU(s): at least {summary['wall_hours']:.1f} h (no queue waits)",
        f"priced as start-up + the pilot's cost per unit of work x the job's work; profile limits x {margin}",
    ]
    return "\n".join(lines) + "\n"


def pilot_overlay(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a configuration the pilot runs by default: one shard per model, one detector seed."""
    audio = plan["audio"]
    first = (audio["experiment_seeds"] or audio["seeds"])[0]
    return {"image": {"max_images": plan["image"]["shard_size"]}, "audio": {"seeds": [first], "experiment_seeds": [first]}}


def snakemake_command(snakefile: Path, workdir: Path, configfiles: Sequence[str | Path], *args: str) -> list[str]:
    """Snakemake on ``configfiles`` in ``workdir``; `--configfile` comes last (it takes every later word)."""
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir), *args,
            "--configfile", *map(str, configfiles)]


def run_pilot(snakefile: Path, pilot_dir: Path, configfiles: Sequence[str | Path], cores: str, extra: Sequence[str]) -> None:
    """The pilot run, its output in ``pilot_dir/pilot.log``; a failure names the log."""
    log = pilot_dir / "pilot.log"
    with open(log, "w") as handle:
        result = subprocess.run(snakemake_command(snakefile, pilot_dir, configfiles, "--cores", cores, *extra),
                                check=False, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"the pilot run failed ({result.returncode}); see {log}")


def plan_dry_run(snakefile: Path, workdir: Path, configfiles: Sequence[str | Path], profile: Path, plan: Mapping) -> str:
    """The dry run of the whole configuration with the SLURM profile, in an empty ``workdir``. The
    image manifest (a checkpoint that lists the data set) is written first, so that every shard's
    jobs are listed."""
    workdir.mkdir(parents=True, exist_ok=True)
    if plan["image"]["enabled"]:
        manifest = f"image/data/{plan['image']['dataset']}/manifest.csv"
        result = subprocess.run(snakemake_command(snakefile, workdir, configfiles, "--cores", "1", manifest),
                                check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"writing {manifest} for the plan failed:\n{result.stderr[-3000:]}")
    return dry_run(snakefile, "--directory", str(workdir), "--configfile", *map(str, configfiles), profile=profile)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m advxai.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="+", required=True, help="the configuration files the run will use, in order")
    parser.add_argument("--pilot-dir", type=Path, default=Path("pilot"), help="working directory of the pilot run")
    parser.add_argument("--run-pilot", action="store_true", help="run the pilot first (else read --pilot-dir's logs/benchmarks/)")
    parser.add_argument("--pilot-overlay", nargs="*", default=[], help="config files laid over the pilot's part (cheaper settings)")
    parser.add_argument("--pilot-cores", default="all")
    parser.add_argument("--pilot-args", nargs=argparse.REMAINDER, default=[], help="more arguments for the pilot's snakemake")
    parser.add_argument("--profile", type=Path, default=Path("profiles/slurm"), help="the SLURM profile to plan for")
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the wall time is given for")
    parser.add_argument("--margin", type=float, default=MARGIN)
    parser.add_argument("--output", type=Path, default=Path("plan"), help="folder for config.yaml (a workflow profile), plan.md, plan.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import json
    import tempfile

    args = arguments(argv)
    snakefile = args.snakefile.resolve()
    root = snakefile.parent
    plan = load_config(args.configfile, root / "workflow" / "schemas" / "config.schema.yaml")
    args.pilot_dir.mkdir(parents=True, exist_ok=True)
    overlay = args.pilot_dir.resolve() / "pilot-part.yaml"
    overlay.write_text(yaml.safe_dump(pilot_overlay(plan), sort_keys=False))
    pilot_files = [*args.configfile, overlay, *args.pilot_overlay]
    pilot = load_config(pilot_files, root / "workflow" / "schemas" / "config.schema.yaml")
    if args.run_pilot:
        run_pilot(snakefile, args.pilot_dir.resolve(), [Path(f).resolve() for f in pilot_files], args.pilot_cores, args.pilot_args)
    patterns = benchmark_patterns(root / "workflow" / "rules")
    measured = read_benchmarks(args.pilot_dir, patterns)
    with tempfile.TemporaryDirectory(prefix="advxai-plan-") as workdir:
        text = plan_dry_run(snakefile, Path(workdir), [Path(f).resolve() for f in args.configfile], args.profile.resolve(), plan)
    planned = planned_jobs(text)
    base = yaml.safe_load((args.profile / "config.yaml").read_text())
    priced = price_jobs(planned, measured, plan, pilot, gpu_rules(base), pilot_subsets(args.pilot_dir, pilot))
    if missing := missing_rules(planned, priced, patterns):
        raise RuntimeError(f"the pilot in {args.pilot_dir} has no benchmark of rules {sorted(missing)}: run it with --run-pilot")
    counted = count_submissions(text, frozenset({"all"}) | local_rules(root / "workflow" / "rules"))
    summary = summarise(priced, base, args.gpus)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "config.yaml").write_text(
        f"# {args.profile}, runtimes and memory planned by `python -m advxai.plan` (x {args.margin}).\n"
        + yaml.safe_dump(planned_profile(base, priced, args.margin), sort_keys=False))
    markdown = render(summary, counted, args.margin)
    (args.output / "plan.md").write_text(markdown)
    summary.update(jobs=counted.jobs, submissions=counted.grouped, groups=counted.groups)
    (args.output / "plan.json").write_text(json.dumps(summary, indent=1))
    print(markdown)
    return summary


if __name__ == "__main__":
    main()
