"""End to end: the workflow on presets/test.yaml in a temporary directory, both domains.

Checks the contract of the result tables (columns, rows), that a config change reruns only the
dependent jobs, that shard sizes 1, 2 and 3 give bitwise identical adversaries and image tables, and
that a job killed mid-way resumes, after the README's recovery commands, to an identical file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import snakemake, snakemake_command, table
from fabricate import imagenet_tree

pytestmark = pytest.mark.workflow

BUILTIN = ["lime", "sal", "ig", "gbp", "sal-sg", "sal-sg2", "sal-vg", "ig-sg", "ig-sg2", "ig-vg", "gbp-sg", "gbp-sg2", "gbp-vg"]


def shard_files(run: Path, folder: str) -> list[Path]:
    """The per-shard files of `folder` (e.g. "image/tiny/labelflip/rect") in shard order."""
    return sorted((run / folder).glob("shard*.h5"), key=lambda path: int(path.stem.removeprefix("shard")))


def concatenated(run: Path, folder: str, names: list[str]) -> dict[str, np.ndarray]:
    from advxai.store import read_h5

    parts = [read_h5(path, names) for path in shard_files(run, folder)]
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def test_image_accuracy_table_recomputed_from_the_shards(run):
    """Table 1 against the clean predictions' own file and the attack's: top-1 over the labelled
    images, an image whose attack failed counted with its clean prediction."""
    accuracy = table(run, "image_accuracy")
    # the contract's columns come first, unchanged; the labelled count and the 95 % intervals are added after them
    assert list(accuracy.columns) == ["model", "n_images", "clean_top1", "adv_top1", "n_adversaries", "n_labelled",
                                      "clean_top1_ci_low", "clean_top1_ci_high", "adv_top1_ci_low", "adv_top1_ci_high"]
    assert accuracy.model.tolist() == ["tiny"]
    clean = concatenated(run, "image/tiny/clean", ["ids", "labels", "top1"])
    attack = concatenated(run, "image/tiny/adversaries", ["ids", "success", "final_prediction"])
    assert clean["ids"].tolist() == attack["ids"].tolist() and len(clean["ids"]) == 4
    labelled = clean["labels"] >= 0
    assert labelled.any(), "the bundled photos carry ImageNet labels"
    attacked = np.where(attack["success"], attack["final_prediction"], clean["top1"])
    row = accuracy.iloc[0]
    assert row.n_images == 4 and row.n_adversaries == attack["success"].sum() >= 1
    assert row.clean_top1 == pytest.approx(100 * np.mean(clean["top1"][labelled] == clean["labels"][labelled]))
    assert row.adv_top1 == pytest.approx(100 * np.mean(attacked[labelled] == clean["labels"][labelled]))


def labelflip_rate_from_shards(run: Path, segmentation: str, ranking: str, *, k: int | None = None,
                               fraction: float | None = None) -> tuple[int, float]:
    """(n, rate) of one ranking ("explainer/aggregation") at a fixed k or a fraction, counted from
    the per-shard label-flip files without the table code."""
    from advxai.store import read_h5

    flips = []
    for path in shard_files(run, f"image/tiny/labelflip/{segmentation}"):
        part = read_h5(path)
        if not len(part["ids"]):
            continue
        settings = np.isnan(part["fraction"]) & (part["k"] == k) if k is not None else np.isclose(part["fraction"], fraction)
        flips.append(part[f"flips/{ranking}"][:, np.flatnonzero(settings)[0]])
    counted = np.concatenate(flips)
    return len(counted), float(counted.mean())


RECOUNTED_FLIPS = [("rect", "sal/mean_abs", {"k": 3}), ("rect", "lime/mean", {"k": 1}), ("rect", "gbp-vg/mean_pos", {"k": 3}),
                   ("rect", "magnitude-mean/-", {"k": 1}), ("slic", "ig-sg/mean_abs", {"fraction": 0.5}), ("slic", "magnitude/-", {"k": 3})]


def test_image_labelflip_table(run):
    flips = table(run, "image_labelflip")
    assert list(flips.columns) == ["model", "segmentation", "explainer", "aggregation", "k", "fraction", "n",
                                   "label_flip_rate", "ci_low", "ci_high"]
    assert (flips.ci_low <= flips.label_flip_rate).all() and (flips.label_flip_rate <= flips.ci_high).all()
    assert set(flips.explainer) == set(BUILTIN) | {"magnitude", "magnitude-mean", "occlusion"}
    assert set(flips.segmentation) == {"rect", "slic"}
    for segmentation, ranking, setting in RECOUNTED_FLIPS:
        explainer, aggregation = ranking.split("/")
        rows = flips[(flips.segmentation == segmentation) & (flips.explainer == explainer) & (flips.aggregation == aggregation)]
        row = rows[rows.k == setting["k"]] if "k" in setting else rows[np.isclose(rows.fraction, setting["fraction"])]
        assert len(row) == 1, (segmentation, ranking, setting)
        n, rate = labelflip_rate_from_shards(run, segmentation, ranking, **setting)
        assert (row.n.iloc[0], row.label_flip_rate.iloc[0]) == (n, pytest.approx(rate)), (segmentation, ranking, setting)
    gradient = flips[(flips.explainer == "sal") & (flips.segmentation == "rect")]
    assert set(gradient.aggregation) == {"mean", "mean_abs", "mean_pos"}
    assert sorted(gradient[gradient.aggregation == "mean_abs"].k) == [1, 3, 16]
    # adding back every segment restores the whole adversary, which flips every image
    everything = flips[(flips.segmentation == "rect") & (flips.k == 16)]
    assert (everything.label_flip_rate == 1.0).all()
    slic = flips[(flips.segmentation == "slic") & (flips.fraction == 1.0)]
    assert len(slic) and (slic.label_flip_rate == 1.0).all()
    assert ((flips.segmentation == "slic") & (flips.k == 3)).any()


def recovered_from_shards(run: Path, segmentation: str, explainer: str, k: int) -> list[int]:
    """How many refined adversaries that still flip had r = 0..k segments recovered, counted from
    the per-shard localised files without the table code."""
    from advxai.store import read_h5

    name = f"k{k}/recovered/{explainer}"
    parts = map(read_h5, shard_files(run, f"image/tiny/localised/{segmentation}"))
    recovered = np.concatenate([part[name] for part in parts if name in part])
    return [int(np.sum(recovered == r)) for r in range(k + 1)]


def test_image_localised_and_slic_tables(run):
    localised = table(run, "image_localised")
    assert list(localised.columns) == ["model", "segmentation", "explainer", "k", "recovered", "count", "fraction",
                                       "ci_low", "ci_high"]
    assert set(localised.k) == {1, 3}
    for (_, _, _, k), rows in localised.groupby(["model", "segmentation", "explainer", "k"]):
        assert sorted(rows.recovered) == list(range(k + 1))
        assert rows.fraction.sum() == pytest.approx(1.0) or rows["count"].sum() == 0
    kept = 0
    for segmentation, explainer, k in (("slic", "sal", 1), ("slic", "lime", 1), ("slic", "ig-vg", 3), ("rect", "gbp", 3)):
        counted = recovered_from_shards(run, segmentation, explainer, k)
        rows = localised[(localised.segmentation == segmentation) & (localised.explainer == explainer) & (localised.k == k)]
        assert rows.sort_values("recovered")["count"].tolist() == counted, (segmentation, explainer, k)
        kept += sum(counted)
    assert kept, "no refined adversary still flips: the recounts compare empty histograms"
    slic = table(run, "image_slic_segments")
    assert list(slic.columns) == ["model", "n", "mean", "std", "min", "max"]
    counts = concatenated(run, "image/tiny/segments/slic", ["adversary_n_segments"])["adversary_n_segments"]
    assert slic[["n", "mean", "min", "max"]].iloc[0].tolist() == pytest.approx([len(counts), counts.mean(), counts.min(), counts.max()])
    assert slic.n.tolist() == table(run, "image_accuracy").n_adversaries.tolist()  # Table 6 counts every adversary


AUDIO_EXPLAINERS = [*BUILTIN, "norm"]
AUDIO_KS = [1, 3, 20]  # presets/test.yaml: audio.labelflip_ks; 20 segments = the whole excerpt


def test_audio_tables(run):
    from advxai.store import read_h5

    svds = table(run, "audio_svds")
    assert list(svds.columns) == ["seed", "threshold", "error", "recall", "specificity"]
    assert svds.seed.astype(str).tolist() == ["0", "1", "mean", "std"]
    errors = svds.error.astype(float).tolist()
    assert all(0 <= e <= 100 for e in errors[:2]) and errors[2] == pytest.approx((errors[0] + errors[1]) / 2)

    flips = table(run, "audio_labelflip")
    assert list(flips.columns) == ["seed", "direction", "explainer", "k", "n", "label_flip_rate", "ci_low", "ci_high"]
    assert set(flips.seed.astype(str)) == {"1", "mean", "std"}  # both detectors trained, the experiments on audio.experiment_seeds
    detector = flips[flips.seed.astype(str) == "1"]
    assert len(detector) == 2 * len(AUDIO_EXPLAINERS) * len(AUDIO_KS)  # every direction, explainer and k
    assert set(detector.direction) == {"nosing_to_sing", "sing_to_nosing"}
    attacked = detector[detector.n > 0]
    directions = set(attacked.direction)
    assert directions, "no adversarial excerpt in either direction: the label-flip table is empty"
    assert len(attacked) == len(directions) * len(AUDIO_EXPLAINERS) * len(AUDIO_KS)
    stored = read_h5(run / "audio" / "labelflip" / "seed1.h5")  # recounted without the table code
    for direction in directions:
        for explainer in ("lime", "norm", "sal-sg"):
            counted = stored[f"{direction}/flips/{explainer}"]  # (k, excerpts)
            rows = attacked[(attacked.direction == direction) & (attacked.explainer == explainer)].sort_values("k")
            assert rows.n.tolist() == [counted.shape[1]] * len(AUDIO_KS)
            assert rows.label_flip_rate.tolist() == pytest.approx(counted.mean(axis=1).tolist()), (direction, explainer)
    whole = attacked[attacked.k == 20]
    assert len(whole) == len(directions) * len(AUDIO_EXPLAINERS) and (whole.label_flip_rate == 1.0).all()
    assert detector[detector.n == 0].label_flip_rate.isna().all()  # a direction without excerpts has no rate, not 0
    # over one detector, the mean is that detector's rate and the spread is 0
    mean = flips[flips.seed.astype(str) == "mean"].set_index(["direction", "explainer", "k"]).label_flip_rate.astype(float)
    std = flips[flips.seed.astype(str) == "std"].set_index(["direction", "explainer", "k"]).label_flip_rate.astype(float)
    rates = attacked.set_index(["direction", "explainer", "k"]).label_flip_rate
    pd.testing.assert_series_equal(mean[rates.index], rates, check_names=False)
    assert (std[rates.index] == 0).all()

    localised = table(run, "audio_localised")
    assert list(localised.columns) == ["seed", "direction", "explainer", "k", "recovered", "count", "fraction",
                                       "ci_low", "ci_high"]
    assert set(localised.seed.astype(str)) == {"1", "mean", "std"}
    histograms = localised[localised.seed.astype(str) == "1"].astype({"count": int})
    assert set(histograms.direction) == {"nosing_to_sing", "sing_to_nosing", "pooled"}
    explainers = set(histograms.explainer)
    assert "lime" in explainers and explainers <= set(AUDIO_EXPLAINERS)
    assert len(histograms) == 3 * len(explainers) * sum(k + 1 for k in (1, 3))  # every direction, explainer, k and r in 0..k
    # the pooled histogram is the sum of the two directions'
    by_direction = histograms.pivot_table(index=["explainer", "k", "recovered"], columns="direction", values="count", aggfunc="sum")
    assert (by_direction.pooled == by_direction.nosing_to_sing + by_direction.sing_to_nosing).all()
    markdown = (run / "results" / "tables" / "audio_tables.md").read_text()
    assert "mean ± std over 2 detectors" in markdown and "ran on 1 detector(s)" in markdown


def test_figures_and_markdown(run):
    figures = sorted(p.name for p in (run / "results" / "figures").glob("*.png"))
    assert "audio_fig2.png" in figures and "audio_fig3.png" in figures and "audio_excerpt.png" in figures
    assert {"image_fig5_tiny.png", "image_fig6_slic.png", "image_fig7_rect.png", "image_fig8_tiny_slic.png"} <= set(figures)
    method = {f"image_{name}_tiny_{seg}.png" for name in ("fig1", "fig9", "refined") for seg in ("rect", "slic")}
    assert method | {"image_fig4_tiny.png", "image_fig10_tiny.png", "audio_refined_seed1.png"} <= set(figures)
    markdown = (run / "results" / "tables" / "image_tables.md").read_text()
    assert "Table 2" in markdown and "Table 8" in markdown
    assert "## Images with fewer segments than k" in markdown


def drawn_lines(axes) -> dict[str, tuple[list[float], list[float]]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}


def test_figures_draw_the_rates_counted_from_the_shards(run, tmp_path):
    """Figs 5, 8 and 2 drawn from the run's tables by the report's plotting functions: their series
    are the rates and histograms counted from the per-shard files (not only files that exist)."""
    from advxai.report import plots
    from advxai.store import read_h5

    fig5 = plots.figure_all_explainers(table(run, "image_labelflip"), "tiny", tmp_path / "fig5.png")
    rect, slic = (drawn_lines(axes) for axes in fig5.axes[:2])
    assert set(rect) == set(BUILTIN) | {"magnitude", "magnitude-mean", "occlusion"}
    for name, ranking in (("sal", "sal/mean_abs"), ("lime", "lime/mean"), ("magnitude", "magnitude/-")):
        assert rect[name] == ([1 / 16, 3 / 16, 1.0], [labelflip_rate_from_shards(run, "rect", ranking, k=k)[1] for k in (1, 3, 16)]), name
    points = dict(zip(*slic["gbp-sg"]))  # the fraction sweep, and k = 3 too where every image has as many segments
    assert [points[fraction] for fraction in (0.5, 1.0)] == [labelflip_rate_from_shards(run, "slic", "gbp-sg/mean_abs", fraction=f)[1]
                                                             for f in (0.5, 1.0)]

    localised = table(run, "image_localised")
    slic_rows = localised[localised.segmentation == "slic"]
    fig8 = plots.figure_recovered(slic_rows, "tiny, slic", tmp_path / "fig8.png")
    for axes, k in zip(fig8.axes, (1, 3), strict=True):
        explainers = list(dict.fromkeys(slic_rows[slic_rows.k == k].explainer))  # the bars' order
        heights = np.array([[bar.get_height() for bar in bars] for bars in axes.containers])  # (r, explainer)
        for explainer in ("sal", "lime"):
            counted = np.array(recovered_from_shards(run, "slic", explainer, k))
            assert heights[:, explainers.index(explainer)].tolist() == pytest.approx(counted / max(counted.sum(), 1)), (explainer, k)

    fig2 = plots.figure_audio_labelflip(table(run, "audio_labelflip"), tmp_path / "fig2.png")
    stored = read_h5(run / "audio" / "labelflip" / "seed1.h5")  # the one experiment seed: the mean is its rate
    for axes, direction in zip(fig2.axes, ("nosing_to_sing", "sing_to_nosing")):
        flips = stored[f"{direction}/flips/lime"]
        if flips.shape[1]:
            assert drawn_lines(axes)["lime"] == (AUDIO_KS, pytest.approx(flips.mean(axis=1).tolist()))


def test_comparisons_and_findings(run):
    """Paired tests against the baselines from the per-shard outcomes, and the paper's five findings
    decided on the test preset's few items: its one model is no AlexNet, so (iii) is not in this run."""
    comparisons = table(run, "image_comparisons")
    assert set(comparisons.versus[comparisons.experiment == "labelflip"]) == {"magnitude", "magnitude-mean"}
    flips = table(run, "image_labelflip").set_index(["segmentation", "explainer", "aggregation", "k"])
    labelflip = comparisons[comparisons.experiment == "labelflip"]
    sal = labelflip[(labelflip.explainer == "sal") & (labelflip.aggregation == "mean_abs") & (labelflip.k == 3)]
    assert sal.rate.tolist() == [flips.label_flip_rate[(seg, "sal", "mean_abs", 3)] for seg in sal.segmentation]
    assert set(table(run, "audio_comparisons").versus) == {"norm"}
    findings = table(run, "findings")
    verdicts = findings.drop_duplicates("finding").set_index("finding").verdict.to_dict()
    assert list(verdicts) == ["i", "ii", "iii", "iv", "v"] and verdicts["iii"] == "not in this run"
    assert set(verdicts.values()) <= {"holds", "contradicted", "undecided at this N", "not in this run"}
    markdown = (run / "results" / "findings.md").read_text()
    assert markdown.startswith("# The paper's findings (§7), checked on this run") and "| (iii) |" in markdown


def test_config_change_reruns_only_dependent_jobs(run, tmp_path):
    overlay = tmp_path / "k.yaml"
    overlay.write_text("image:\n  labelflip:\n    k: 2\n")
    dry = snakemake(run, "-n", "--nolock", "--quiet", "rules", overlay=str(overlay)).stdout
    rules = {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower() and "|" not in line}
    assert "image_labelflip" in rules and "image_tables" in rules
    assert not rules & {"image_attack", "image_explain", "audio_train_detector", "audio_attack", "image_localised", "image_segments"}


def test_refine_files_and_examples_of_the_test_preset(run):
    """Both domains cache their refined perturbations; only the seeded example images keep pixel maps."""
    from advxai.store import read_h5

    refined = read_h5(run / "image" / "tiny" / "refined" / "rect" / "shard0.h5")
    localised = read_h5(run / "image" / "tiny" / "localised" / "rect" / "shard0.h5")
    for k in (1, 3):
        assert refined[f"k{k}/segment_ids"].shape == (len(refined["ids"]), k)
        np.testing.assert_array_equal(refined[f"k{k}/flipped"], localised[f"k{k}/kept"])
    examples = read_h5(run / "image" / "tiny" / "examples.h5")
    n = min(3, len(refined["ids"]))  # image.examples.count of the preset, or the whole localised subset where it is smaller
    assert len(examples["ids"]) == n and set(examples["ids"]) <= set(refined["ids"])
    assert examples["attributions/ig"].shape == (n, 3, 64, 64)  # pixel maps of the examples only
    audio = read_h5(run / "audio" / "refined" / "seed1.h5")
    assert {f"{d}/k3/segment_ids" for d in ("nosing_to_sing", "sing_to_nosing")} <= set(audio)


def test_changing_the_localised_explainers_reruns_no_refine_job(run, tmp_path):
    overlay = tmp_path / "explainers.yaml"
    overlay.write_text("image:\n  explainers: [lime, sal]\naudio:\n  explainers: [lime, sal]\n")
    dry = snakemake(run, "-n", "--quiet", "rules", "--rerun-triggers", "params", overlay=str(overlay)).stdout
    rules = {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower() and "|" not in line}
    assert {"image_localised", "audio_localised"} <= rules
    assert not rules & {"image_refine", "audio_refine", "image_attack", "image_segments", "audio_attack"}


def test_keeping_attributions_reruns_only_the_explanations(run, tmp_path):
    """keep_attributions changes what an explanation file keeps, not a score: the localised jobs,
    which keep no attributions, stay done."""
    overlay = tmp_path / "keep.yaml"
    overlay.write_text("image:\n  explain:\n    keep_attributions: true\n")
    dry = snakemake(run, "-n", "--nolock", "--quiet", "rules", "--rerun-triggers", "params", overlay=str(overlay)).stdout
    rules = {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower() and "|" not in line}
    assert "image_explain" in rules
    assert not rules & {"image_localised", "image_attack", "image_segments", "audio_localised"}


def test_fast_arithmetic_reaches_the_model_jobs_and_changing_it_reruns_them(tmp_path):
    """image.arithmetic travels in the model's params (docs/exactness.md, "Fast arithmetic"): a
    bf16 attack job records it and its adversaries stay in the radius; back to exact, the model
    jobs rerun and the decoded images do not."""
    from advxai.store import read_h5, read_provenance

    overlay = tmp_path / "bf16.yaml"
    overlay.write_text("image:\n  arithmetic: bf16\n")
    workdir, target = tmp_path / "run", "image/tiny/adversaries/shard0.h5"
    snakemake(workdir, target, overlay=str(overlay))
    for stage in ("clean", "adversaries"):
        assert read_provenance(workdir / f"image/tiny/{stage}/shard0.h5")["params"]["model"]["arithmetic"] == "bf16"
    adversaries = read_h5(workdir / target, ["perturbation", "success"])
    assert 0 < np.abs(adversaries["perturbation"]).max() <= 0.5 + 1e-6  # test preset's epsilon
    dry = snakemake(workdir, target, "-n", "--quiet", "rules").stdout
    rules = {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower() and "|" not in line}
    assert {"image_clean_predictions", "image_attack"} <= rules and not rules & {"image_manifest", "image_shard"}


ADVERSARY_ARRAYS = ("target", "perturbation", "success", "first_success_step", "final_prediction")


def adversary_arrays(workdir: Path) -> dict[str, np.ndarray]:
    """The adversaries of every shard, concatenated in dataset order."""
    from advxai.store import read_h5

    shards = sorted((workdir / "image" / "tiny" / "adversaries").glob("shard*.h5"), key=lambda p: int(p.stem.removeprefix("shard")))
    parts = [read_h5(path, ["ids", *ADVERSARY_ARRAYS]) for path in shards]
    return {name: np.concatenate([part[name] for part in parts]) for name in ("ids", *ADVERSARY_ARRAYS)}


SHARD_TEST_EXPLAINERS = ["lime", "ig-sg", "gbp-vg"]  # LIME, and an ensemble of IG and of GBP


def image_run_in_shards(workdir: Path, shard_size: int) -> Path:
    """The image stages of the test preset on three images in shards of `shard_size`: one explainer
    per family, SLIC segments only (the per-image segmentation), which keeps the runs short;
    tests/test_exactness.py checks all 13 explainers on rectangles alone against inside a batch."""
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "shards.yaml"
    overlay.write_text(f"image:\n  max_images: 3\n  shard_size: {shard_size}\n  explainers: {SHARD_TEST_EXPLAINERS}\n"
                       "  extra_explainers: []\n  segmentations: [slic]\naudio:\n  enabled: false\n")
    snakemake(workdir, overlay=str(overlay))
    return workdir


@pytest.fixture(scope="session")
def in_shards_of_two(shared_runs) -> Path:
    return shared_runs.get("shards-of-2", lambda workdir: image_run_in_shards(workdir, 2))


@pytest.mark.slow  # each runs its own workflow besides the shared one in shards of two
@pytest.mark.parametrize("shard_size", [1, 3])
def test_shard_size_does_not_change_results(in_shards_of_two, tmp_path, shard_size):
    """Three images in shards of 1 (every image attacked and explained alone) and of 3 (one shard)
    against shards of 2 + 1, every shard padded to the same batch size: adversaries and tables
    bitwise equal (the test preset itself runs one shard of 4; its tables equal those of two shards of 2)."""
    workdir = image_run_in_shards(tmp_path, shard_size)
    theirs = adversary_arrays(workdir)
    for name, ours in adversary_arrays(in_shards_of_two).items():
        np.testing.assert_array_equal(theirs[name], ours, err_msg=name)
    for name in ("image_labelflip", "image_localised"):
        shards = pd.read_csv(workdir / "results" / "tables" / f"{name}.csv")
        ours = pd.read_csv(in_shards_of_two / "results" / "tables" / f"{name}.csv")
        assert set(SHARD_TEST_EXPLAINERS) <= set(shards.explainer) and set(shards.segmentation) == {"slic"}
        pd.testing.assert_frame_equal(shards, ours, check_exact=True)


def test_killed_job_resumes_to_an_identical_file(tmp_path):
    """kill -9 of snakemake inside a job with batch checkpoints; the README's recovery (--unlock, rerun) ends identical.

    One shard of 4 images attacked one image per batch: the kill comes after the first batch is in
    ``<output>.partial.h5`` and before the output exists; the rerun computes only the rest.
    """
    overlay = tmp_path / "resume.yaml"
    overlay.write_text("image:\n  shard_size: 4\n  batch_size: 1\n  pgd:\n    steps: 60\naudio:\n  enabled: false\n")
    target = "image/tiny/adversaries/shard0.h5"
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    snakemake(reference, target, overlay=str(overlay))

    command = snakemake_command(killed, "--cores", "2", target, overlay=str(overlay))
    partial, output = killed / f"{target}.partial.h5", killed / target
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the first batch's flush finish; a batch takes seconds
        assert partial.exists() and not output.exists(), "the job was not caught between its first batch and its end"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    locked = snakemake(killed, target, overlay=str(overlay), check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(killed, "--unlock", target, overlay=str(overlay))
    snakemake(killed, "--rerun-incomplete", target, overlay=str(overlay))

    assert output.read_bytes() == (reference / target).read_bytes()
    assert not partial.exists()
    log = (killed / "logs" / "image" / "tiny" / "adversaries" / "shard0.log").read_text()
    assert 1 <= log.count("attacked 1 images") <= 3  # the rerun computed only the unfinished batches


def test_imagenet_layout_runs_through_the_workflow(tmp_path):
    """A fabricated ImageNet validation tree (1000 wnid folders, 4 JPEGs) through the image stages."""
    root = imagenet_tree(tmp_path / "imagenet")
    overlay = tmp_path / "imagenet.yaml"
    overlay.write_text(
        f"image:\n  dataset: imagenet\n  imagenet_root: {root}\n  explainers: [sal]\n  extra_explainers: []\n"
        "  segmentations: [rect]\n  localised:\n    ks: [1]\naudio:\n  enabled: false\n"
    )
    workdir = tmp_path / "run"
    workdir.mkdir()
    snakemake(workdir, overlay=str(overlay))
    accuracy = pd.read_csv(workdir / "results" / "tables" / "image_accuracy.csv")
    assert accuracy.n_images.tolist() == [4]
    assert accuracy.clean_top1.notna().all()  # labels come from the wnid folders
    flips = pd.read_csv(workdir / "results" / "tables" / "image_labelflip.csv")
    assert set(flips.explainer) == {"sal", "magnitude", "magnitude-mean"}
