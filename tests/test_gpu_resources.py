"""GPU resources of the jobs, decided at parse time without a GPU (a fake ``nvidia-smi`` stands in)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def job_resources(tmp_path: Path, device: str, gpu_memory_mib: int | str | None) -> collections.Counter:
    """(rule, gpu, gpu_share) of every job of the test preset's dry run."""
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if gpu_memory_mib is not None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\nprintf '%s\\n' {gpu_memory_mib}\n")  # one line per GPU
        fake.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / device),
               "--configfile", str(ROOT / "config.yaml"), str(ROOT / "presets" / "test.yaml"), "--config", f"device={device}"]
    # the image manifest is a checkpoint: written first, the dry run then shows every shard's jobs
    subprocess.run([*command, "--cores", "1", "image/data/bundled/manifest.csv"], capture_output=True, text=True, env=env, timeout=600,
                   check=True)
    result = subprocess.run([*command, "-n", "-p"], capture_output=True, text=True, env=env, timeout=600, check=True)
    jobs = collections.Counter()
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=\n\n)", result.stdout, flags=re.S | re.M):
        gpu = re.search(r"gpu=(\d+)", body)
        share = re.search(r"gpu_share=(\d+)", body)
        jobs[(rule, int(gpu.group(1)) if gpu else None, int(share.group(1)) if share else None)] += 1
    return jobs


def by_rule(jobs: collections.Counter) -> dict[str, set]:
    found = collections.defaultdict(set)
    for (rule, gpu, share), _ in jobs.items():
        found[rule].add((gpu, share))
    return found


GPU_RULES = {"image_clean_predictions", "image_attack", "image_explain", "image_labelflip", "image_refine", "image_localised",
             "image_examples", "audio_train_detector", "audio_evaluate_detector", "audio_attack", "audio_excerpts", "audio_explain",
             "audio_labelflip", "audio_refine", "audio_localised", "audio_examples"}


def rule_blocks() -> dict[str, str]:
    """Rule name → its text, from every rule file."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), flags=re.S | re.M):
            blocks[name] = body
    return blocks


def test_rules_that_touch_a_model_declare_the_device_the_gpu_and_a_benchmark():
    """A rule that loads a model takes the `device` param, holds a GPU (and its share), and times itself."""
    blocks = rule_blocks()
    model_rules = {name for name, body in blocks.items() if "device=device_param()" in body}
    assert model_rules == GPU_RULES
    for name in model_rules:
        body = blocks[name]
        assert "gpu=job_gpus()" in body and "gpu_share=" in body and "benchmark:" in body, name
    # the heavy CPU stages time themselves too: decoding, segmentation, corpus synthesis, features
    for name in ("image_shard", "image_segments", "audio_synthetic_corpus", "audio_features"):
        assert "benchmark:" in blocks[name], name


@pytest.mark.parametrize(("memory_mib", "image_share", "audio_share"), [(81559, 25, 25), (2048, 55, 50), ("81559 81559 40960", 8, 8)])
def test_cuda_jobs_request_one_gpu_and_share_it_by_memory(tmp_path, memory_mib, image_share, audio_share):
    """Test preset: batch 8 at 64 px is 1 + 8·(64/224)²·0.15 = 1.098 GiB; a detector job 1 GiB.
    Three GPUs: a quarter of one (the smallest decides) is 25 // 3 = 8 of the units of all three."""
    rules = by_rule(job_resources(tmp_path, "cuda", memory_mib))
    assert GPU_RULES <= set(rules)
    for rule in GPU_RULES:
        expected = audio_share if rule.startswith("audio") else image_share
        assert rules[rule] == {(1, expected)}, rule
    assert rules["image_segments"] == rules["image_tables"] == {(None, None)}


def test_cpu_jobs_hold_no_gpu(tmp_path):
    rules = by_rule(job_resources(tmp_path, "cpu", 81559))
    for rule in GPU_RULES:
        assert rules[rule] == {(0, 0)}, rule
