"""The audio domain's stages from features on, one function per workflow rule (the corpus:
:mod:`advxai.stages.audio_data`; file readers: :mod:`advxai.stages.audio_files`).

Each function reads its input files, computes, and writes its output atomically with provenance;
the thin scripts in ``scripts/`` call them, and they are usable without Snakemake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..attacks.cw import AttackCheckpoint, spectrogram_attack
from ..data.jamendo import frame_labels, load_audio, read_lab
from ..evaluation.baselines import magnitude
from ..evaluation.excerpts import explain_excerpts, select_excerpts
from ..evaluation.flips import ThresholdCrossing
from ..evaluation.labelflip import k_settings, label_flips
from ..evaluation.localised import explain_refined
from ..names import AUDIO_DIRECTIONS
from ..segments import audio_grid
from ..store import BatchCheckpoint, read_h5, require_params, write_csv, write_h5
from ..svds.evaluate import binary_metrics, median_smooth, tune_threshold
from ..svds.features import mel_filterbank, stft_magnitude
from ..svds.model import CONTEXT, load_detector, predict_song, save_detector
from ..svds.train import train_detector
from .audio_files import detector_threshold, read_attacks, read_excerpts, read_songs
from .refined_files import read_refinements
from .settings import AttackSettings, AudioExplainSettings, ExcerptSettings, TrainSettings

log = logging.getLogger("advxai")


def write_features(manifest: str, root: str, split: str, output: str) -> None:
    """Linear-magnitude STFT (T × 513) and frame labels of every song of a split, concatenated;
    the manifest's paths are relative to ``root``, where the corpus lies now."""
    songs = pd.read_csv(manifest)
    songs = songs[songs.split == split]
    if songs.empty:
        raise ValueError(f"{manifest} lists no song in split '{split}'")
    specs, labels = [], []
    for song in tqdm(songs.itertuples(), total=len(songs), desc=f"features {split}"):
        spec = stft_magnitude(load_audio(Path(root, song.audio_path)))
        specs.append(spec)
        labels.append(frame_labels(read_lab(Path(root, song.label_path)), len(spec)))
    offsets = np.cumsum([0] + [len(s) for s in specs])
    write_h5(
        output,
        {"names": songs.name.to_numpy(dtype=str), "offsets": offsets, "spec": np.concatenate(specs).astype(np.float32),
         "labels": np.concatenate(labels)},
        stage="audio_features",
        params={"split": split, "sample_rate": 22050, "n_fft": 1024, "hop": 315},
    )


# ------------------------------------------------------------------------------------ detector
def train(train_path: str, output: str, *, settings: TrainSettings, seed: int, device: torch.device) -> None:
    """Train one detector (docs/method.md §1.5), checkpointing every epoch beside the output."""
    songs = [(spec, labels) for _, spec, labels in read_songs(train_path)]
    params = {"train": settings.as_params(), "seed": seed}
    checkpoint = BatchCheckpoint(output, params, inputs=[train_path])
    model, history = train_detector(
        songs, seed=seed, epochs=settings.epochs, batches_per_epoch=settings.batches_per_epoch, batch_size=settings.batch_size,
        lr=settings.lr, lr_decay=settings.lr_decay, augment=dict(settings.augment), checkpoint=checkpoint, progress=True, device=device,
    )
    save_detector(output, model, params=params, seeds={"seed": seed, "stage": "svds-train"}, history=history)
    checkpoint.remove()


def song_probabilities(model: torch.nn.Module, songs, median_filter: int | None) -> list[np.ndarray]:
    """P(sing) of every frame of every song, median-smoothed when ``median_filter`` is given."""
    filterbank = mel_filterbank()
    curves = [predict_song(model, spec, filterbank) for _, spec, _ in tqdm(songs, desc="predict")]
    return [median_smooth(c, median_filter) for c in curves] if median_filter else curves


def evaluate(detector: str, valid: str, test: str, output: str, *, median_filter: int, seed: int, device: torch.device) -> None:
    """Tune the threshold on validation, score the pooled test frames (docs/method.md §1.6)."""
    model = load_detector(detector, device=device)
    valid_songs, test_songs = read_songs(valid), read_songs(test)
    threshold = tune_threshold(song_probabilities(model, valid_songs, median_filter), [labels for *_, labels in valid_songs])
    scores = binary_metrics(song_probabilities(model, test_songs, median_filter), [labels for *_, labels in test_songs], threshold)
    write_csv(pd.DataFrame([{"seed": seed, "threshold": threshold, **scores}]), output)


# ------------------------------------------------------------------------------------ attack
def attack(detector: str, evaluation: str, test: str, output: str, *, settings: AttackSettings, device: torch.device) -> None:
    """C&W attack on every test song's linear STFT (docs/method.md §2); resumes per song and mid-song."""
    model = load_detector(detector, device=device)
    threshold = detector_threshold(evaluation)
    filterbank = mel_filterbank()
    songs = read_songs(test)
    params = {"attack": settings.as_params(), "threshold": threshold}
    checkpoint = BatchCheckpoint(output, params, inputs=[detector, test])
    finished = checkpoint.keys()
    results = []
    for index, (name, spec, _) in enumerate(tqdm(songs, desc="C&W")):
        key = f"song{index:05d}"
        if key not in finished:
            result = spectrogram_attack(
                model, spec, filterbank, threshold=threshold, alpha=settings.alpha, epsilon=settings.epsilon, lr=settings.lr,
                max_iter=settings.max_iter, checkpoint=AttackCheckpoint(checkpoint, f"progress{index:05d}"),
            )
            checkpoint.save(key, {"adversarial_padded": result.adversarial_padded, "clean_pred": result.clean_pred,
                                  "adv_pred": result.adv_pred, "flipped": result.flipped, "iterations": np.array([result.iterations])})
            log.info("%s: %d of %d frames flipped after %d iterations", name, int(result.flipped.sum()), len(spec), result.iterations)
        results.append(checkpoint.load(key))
    lengths = [len(spec) for _, spec, _ in songs]
    write_h5(
        output,
        {"names": np.array([n for n, *_ in songs], dtype=str), "offsets": np.cumsum([0] + lengths),
         "padded_offsets": np.cumsum([0] + [n + 2 * CONTEXT for n in lengths]),
         **{field: np.concatenate([r[field] for r in results])
            for field in ("adversarial_padded", "clean_pred", "adv_pred", "flipped", "iterations")}},
        stage="audio_attack",
        params=params,
        attrs={"device": str(device)},
    )
    checkpoint.remove()


# ------------------------------------------------------------------------------------ excerpts
def select(detector: str, evaluation: str, test: str, adversaries: str, output: str, *, excerpts: ExcerptSettings,
           device: torch.device) -> None:
    """Clean/adversarial excerpt pairs for both attack directions (docs/method.md §2.1), judged on ``device``."""
    model = load_detector(detector, device=device)
    threshold = detector_threshold(evaluation)
    songs = read_attacks(test, adversaries)
    arrays: dict[str, np.ndarray] = {}
    for direction in AUDIO_DIRECTIONS:
        chosen = select_excerpts(
            songs, model, mel_filterbank(), threshold=threshold, direction=direction, per_song=excerpts.per_song,
            max_draws=excerpts.max_draws, seed=excerpts.seed,
        )
        log.info("direction %s: %d excerpts", AUDIO_DIRECTIONS[direction], len(chosen))
        for field in ("ids", "song", "frame", "clean_logmel", "adv_logmel", "clean_prob", "adv_prob"):
            arrays[f"{AUDIO_DIRECTIONS[direction]}/{field}"] = getattr(chosen, field)
    write_h5(output, {**arrays, "threshold": threshold}, stage="audio_excerpts", params={**excerpts.as_params(), "threshold": threshold},
             seeds={"seed": excerpts.seed, "stages": ["excerpts-1", "excerpts-0"]}, attrs={"device": str(device)})


def _explain_function(model: torch.nn.Module, explain: AudioExplainSettings):
    """``(inputs, targets, ids) -> {explainer: (n, 20) scores}`` with the configured explainers and settings."""

    def run(inputs, targets, ids) -> dict[str, np.ndarray]:
        return explain_excerpts(
            model, inputs, targets, ids, explainers=list(explain.explainers), settings=explain.explainer, seed=explain.seed,
        )

    return run


def explain(detector: str, excerpts: str, output: str, *, settings: AudioExplainSettings, device: torch.device) -> None:
    """Every explainer on every adversarial excerpt, for the target class (resumable per batch)."""
    model = load_detector(detector, device=device)
    run = _explain_function(model, settings)
    arrays: dict[str, np.ndarray] = {}
    for target, data in read_excerpts(excerpts).items():
        name = AUDIO_DIRECTIONS[target]
        ids = data["ids"]
        keyed = BatchCheckpoint(f"{output}.{name}", settings.as_params(), inputs=[detector, excerpts])

        def batch(part: slice) -> dict[str, np.ndarray]:
            inputs = torch.from_numpy(data["adv_logmel"][part]).to(device)
            return run(inputs, torch.full((len(inputs),), target, device=device), list(ids[part]))

        scores = keyed.run(len(ids), 8, batch) if len(ids) else {}
        keyed.remove()
        arrays[f"{name}/ids"] = ids
        arrays.update({f"{name}/scores/{e}": scores.get(e, np.zeros((0, 20))) for e in settings.explainers})
    write_h5(output, arrays, stage="audio_explain", params=settings.as_params(), seeds={"seed": settings.seed, "stages": ["noise", "lime"]},
             attrs={"device": str(device)})


# ------------------------------------------------------------------------------------ metrics
HYBRID_BATCH = 256  # refined excerpts per detector pass (the detector is small)


@dataclass(frozen=True)
class ExcerptTensors:
    """Clean and adversarial log-mel excerpts ``(N, 115, 80)`` with their time-frequency segments."""

    clean: torch.Tensor
    adversarial: torch.Tensor
    masks: torch.Tensor  # (N, 115, 80) segment ids, audioLIME's grid for every excerpt
    n_segments: np.ndarray  # (N,) 20 each

    @classmethod
    def of(cls, data: Mapping[str, np.ndarray], device: torch.device) -> ExcerptTensors:
        clean = torch.from_numpy(data["clean_logmel"]).to(device)
        grid = audio_grid(clean.shape[1], clean.shape[2])
        return cls(clean, torch.from_numpy(data["adv_logmel"]).to(device), torch.from_numpy(grid).to(device).expand(clean.shape),
                   np.full(len(clean), int(grid.max()) + 1))

    @property
    def segments(self) -> int:
        return int(self.masks[0].max()) + 1 if len(self.masks) else 0


def labelflip(detector: str, evaluation: str, excerpts: str, explanations: str, output: str, *, ks: Sequence[int],
              device: torch.device) -> None:
    """Label flips for k = 1..20 of every explainer's ranking and the norm baseline (docs/method.md §4)."""
    model = load_detector(detector, device=device)
    threshold = detector_threshold(evaluation)
    stored = read_h5(explanations)
    arrays: dict[str, np.ndarray] = {"ks": np.array(ks)}
    for target, data in read_excerpts(excerpts).items():
        name = AUDIO_DIRECTIONS[target]
        if not np.array_equal(stored[f"{name}/ids"], data["ids"]):
            raise ValueError(f"{explanations} explains other excerpts than {excerpts}; rerun its rule")
        x = ExcerptTensors.of(data, device)
        prefix = f"{name}/scores/"
        scores = {k.removeprefix(prefix): v for k, v in stored.items() if k.startswith(prefix)}
        scores["norm"] = magnitude(x.clean, x.adversarial, x.masks, x.segments)  # the norm baseline, Σ Δ² per segment
        flips = label_flips(
            model, ThresholdCrossing(np.full(len(x.clean), target), threshold), x.clean, x.adversarial, x.masks, x.n_segments, scores,
            k_settings(ks, [], x.n_segments).per_item, HYBRID_BATCH,
        )
        arrays.update({f"{name}/flips/{e}": v.T for e, v in flips.items()})  # (len(ks), N)
    write_h5(output, arrays, stage="audio_labelflip", params={"ks": list(ks), "threshold": threshold},
             attrs={"device": str(device)})


def localised(detector: str, evaluation: str, excerpts: str, refined: str, output: str, *, explain: AudioExplainSettings,
              ks: Sequence[int], device: torch.device) -> None:
    """Re-explain the refined excerpts of audio_refine that still flip, count recovered tiles (docs/method.md §4)."""
    model = load_detector(detector, device=device)
    threshold = detector_threshold(evaluation)
    require_params(refined, {"ks": list(ks), "threshold": threshold})
    run = _explain_function(model, explain)
    arrays: dict[str, np.ndarray] = {"ks": np.array(ks)}
    for target, data in read_excerpts(excerpts).items():
        name = AUDIO_DIRECTIONS[target]
        x = ExcerptTensors.of(data, device)
        refinements = read_refinements(refined, ks, list(data["ids"]), prefix=f"{name}/")
        result = explain_refined(
            ThresholdCrossing(np.full(len(x.clean), target), threshold), x.clean, x.adversarial, x.masks, x.n_segments,
            list(data["ids"]), refinements, lambda inputs, classes, ids, _masks, _counts: run(inputs, classes, ids),
            list(explain.explainers),
        )
        for k, found in result.items():
            arrays[f"{name}/k{k}/kept"] = found.kept
            arrays.update({f"{name}/k{k}/recovered/{e}": v[found.kept] for e, v in found.recovered.items()})
    write_h5(output, arrays, stage="audio_localised", params={**explain.as_params(), "ks": list(ks), "threshold": threshold},
             attrs={"device": str(device)})
