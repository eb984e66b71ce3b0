"""The plan before the run (advxai.plan): pricing from a pilot's benchmarks, the planned profile,
the summary, and a pilot on part of the test preset against the whole preset's run."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT

from advxai import plan
from advxai.plan_work import job_work
from advxai.submissions import PlannedJob, count_submissions, planned_jobs

RULES = ROOT / "workflow" / "rules"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TEST_CONFIG = [ROOT / "config.yaml", ROOT / "presets" / "test.yaml"]

TOLERANCE = 0.5
"""How far the predicted total CPU time of the test preset's jobs may be from the measured one.
One job's CPU time varied by up to 70 % between runs of the same work on the shared 2-core test
machine (audio_attack: 3.6 s and 6.2 s); the total of 28 jobs averages that out, and the plan
was 1.5 % off (0.0319 h predicted, 0.0324 h measured). In the full suite the pilot and the
session run each share the two cores with the other worker's tests, by different amounts: one
run gave 0.0398 h predicted against 0.0302 h measured (32 % off); the same test passed alone
right after. Wall time is not checked: on the shared machine it measured
the neighbours (load average 25-30 on 2 cores: the same pilot gave 0.41 h against 0.74 h for the
whole run, which ran while the load rose)."""

DRY_RUN = """\
[Mon Jan  1 00:00:00 2026] Group job attack_chain (jobs in lexicogr. order):

    [Mon Jan  1 00:00:00 2026]
    rule image_attack:
        benchmark: logs/benchmarks/image/m/adversaries/shard3.tsv
        wildcards: model=m, shard=3
    [Mon Jan  1 00:00:00 2026]
    rule image_clean_predictions:
        wildcards: model=m, shard=3
[Mon Jan  1 00:00:00 2026]
rule image_subsets:
    wildcards: model=m
[Mon Jan  1 00:00:00 2026]
rule audio_train_detector:
    wildcards: seed=0
[Mon Jan  1 00:00:00 2026]
localrule all:
"""


def test_dry_run_jobs_and_groups_are_read_with_their_wildcards():
    jobs = planned_jobs(DRY_RUN)
    assert [(j.rule, j.wildcards, j.group) for j in jobs] == [
        ("image_attack", {"model": "m", "shard": "3"}, ("attack_chain", 1)),
        ("image_clean_predictions", {"model": "m", "shard": "3"}, ("attack_chain", 1)),
        ("image_subsets", {"model": "m"}, None), ("audio_train_detector", {"seed": "0"}, None), ("all", {}, None)]
    counted = count_submissions(DRY_RUN, frozenset({"all", "image_subsets"}))
    assert (counted.jobs, counted.grouped, counted.groups) == (3, 2, {"attack_chain": 1})


def test_benchmark_files_are_attributed_to_their_rule_and_wildcards(tmp_path):
    patterns = plan.benchmark_patterns(RULES)
    for relative, _rule, _wildcards in [
        ("image/tiny/adversaries/shard0.tsv", "image_attack", {"model": "tiny", "shard": "0"}),
        ("image/tiny/explanations/lime_rect/shard12.tsv", "image_explain", {"model": "tiny", "family": "lime_rect", "shard": "12"}),
        ("audio/svds/seed1_eval.tsv", "audio_evaluate_detector", {"seed": "1"}),
        ("audio/svds/seed1.tsv", "audio_train_detector", {"seed": "1"}),
    ]:
        path = tmp_path / "logs" / "benchmarks" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("s\th:m:s\tmax_rss\tcpu_time\n12.5\t0:00:12\t300.5\t11.0\n")
    measured = {(m.rule, tuple(sorted(m.wildcards.items()))): m for m in plan.read_benchmarks(tmp_path, patterns)}
    assert set(measured) == {("image_attack", (("model", "tiny"), ("shard", "0"))), ("audio_evaluate_detector", (("seed", "1"),)),
                             ("image_explain", (("family", "lime_rect"), ("model", "tiny"), ("shard", "12"))),
                             ("audio_train_detector", (("seed", "1"),))}
    attack = measured[("image_attack", (("model", "tiny"), ("shard", "0")))]
    assert (attack.seconds, attack.max_rss_mb) == (12.5, 300.5)


def config(**image) -> dict:
    loaded = plan.load_config(TEST_CONFIG, SCHEMA)
    loaded["image"].update(image)
    return loaded


def test_a_job_is_priced_as_start_up_plus_work_times_the_pilot_s_cost_per_unit():
    pilot, whole = config(shard_size=2, max_images=2), config(shard_size=8, max_images=None)
    pgd_steps = pilot["image"]["pgd"]["steps"]
    assert job_work("image_attack", {"model": "tiny"}, whole) == 4 * job_work("image_attack", {"model": "tiny"}, pilot) == 8 * pgd_steps
    measured = [plan.Measured("image_attack", {"model": "tiny", "shard": "0"}, 25.0, 400.0),
                plan.Measured("image_clean_predictions", {"model": "tiny", "shard": "0"}, 5.0, 300.0)]
    jobs = [PlannedJob("image_attack", {"model": "tiny", "shard": "1"}, ("attack_chain", 1)),
            PlannedJob("image_attack", {"model": "other", "shard": "1"}, ("attack_chain", 2)),  # priced from the other models
            PlannedJob("image_clean_predictions", {"model": "tiny", "shard": "1"}, ("attack_chain", 1)),
            PlannedJob("image_subsets", {"model": "tiny"})]  # no benchmark: not priced
    priced = plan.price_jobs(jobs, measured, whole, pilot)
    # start-up 5 s (the quickest job); attack: 5 + (25 - 5) x 4; clean predictions: 5 + 0 x 4
    assert [(p.job.rule, p.seconds, p.max_rss_mb) for p in priced] == [
        ("image_attack", 85.0, 400.0), ("image_attack", 85.0, 400.0), ("image_clean_predictions", 5.0, 300.0)]
    profile = plan.planned_profile({"set-resources": {"image_attack": {"gpu": 1, "runtime": 240}}}, priced, margin=1.5)
    assert profile["set-resources"]["image_attack"] == {"gpu": 1, "runtime": plan.MIN_RUNTIME_MIN, "mem_mb": 1000}
    summary = plan.summarise(priced, profile, gpus=2)
    assert summary["gpu_hours"] == pytest.approx(175 / 3600) and summary["cpu_hours"] == 0
    assert summary["wall_hours"] == pytest.approx(90 / 3600)  # the longest GPU submission: 85 + 5 s
    long = plan.planned_profile({}, [plan.Priced(jobs[0], 3600.0, 5000.0)], margin=1.5)
    assert long["set-resources"]["image_attack"] == {"runtime": 90, "mem_mb": 7500}


@pytest.mark.workflow
@pytest.mark.slow
def test_a_pilot_on_part_of_the_test_preset_predicts_the_whole_preset_s_job_time(run, tmp_path, monkeypatch):
    """Pilot: one shard of 2 images (the preset: 4) and one of the two detector seeds. Prediction:
    the total CPU time of the whole preset's jobs, against the session run's benchmarks."""
    part = tmp_path / "part.yaml"
    part.write_text("image:\n  shard_size: 2\n  max_images: 2\n")
    monkeypatch.chdir(ROOT)
    summary = plan.main(["--configfile", *map(str, TEST_CONFIG), "--pilot-dir", str(tmp_path / "pilot"), "--run-pilot",
                         "--pilot-overlay", str(part), "--pilot-cores", "2", "--output", str(tmp_path / "plan")])
    measured = plan.read_benchmarks(run, plan.benchmark_patterns(RULES))
    actual = sum(m.cpu_seconds for m in measured) / 3600
    assert summary["job_cpu_hours"] == pytest.approx(actual, rel=TOLERANCE), (summary, actual)
    assert sum(s["jobs"] for s in summary["stages"].values()) == len(measured)
    written = yaml.safe_load((tmp_path / "plan" / "config.yaml").read_text())
    assert written["executor"] == "slurm" and written["set-resources"]["image_attack"]["gpu"] == 1
    assert json.loads((tmp_path / "plan" / "plan.json").read_text())["submissions"] == 8  # 7 groups and the lone shard


def test_a_pilot_model_without_adversaries_is_priced_from_the_others():
    pilot, whole = config(shard_size=2, max_images=2), config(shard_size=8, max_images=None)
    measured = [plan.Measured("image_labelflip", {"model": "failed", "seg": "rect", "shard": "0"}, 5.0, 100.0),
                plan.Measured("image_labelflip", {"model": "good", "seg": "rect", "shard": "0"}, 25.0, 100.0)]
    job = PlannedJob("image_labelflip", {"model": "failed", "seg": "rect", "shard": "3"})
    # the failed model's subsets are empty: its 5 s teach nothing; the good model's 20 s for 2 items do
    (priced,) = plan.price_jobs([job], measured, whole, pilot, subsets={"failed": (0, 0), "good": (2, 2)})
    assert priced.seconds == pytest.approx(5 + 20 * whole["image"]["subset"]["fraction"] * 8 / 2)
