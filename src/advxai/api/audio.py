"""``advxai.evaluate`` on a singing voice detector's excerpts (docs/method.md §2–§4).

The caller brings clean and adversarial log-mel excerpts ``(N, 115, 80)``, each with the class its
adversary was pushed to (1: no sing → sing, 0: sing → no sing) and the detector's threshold τ:
the audio attack runs on whole songs (:func:`advxai.attacks.cw.spectrogram_attack`, then
:func:`advxai.evaluation.excerpts.select_excerpts`). The call scores them as the workflow's audio
stages do: time–frequency tiles, the threshold flip test, the norm baseline, audioLIME.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..evaluation.baselines import magnitude
from ..evaluation.excerpts import SEGMENTATION, explain_excerpts
from ..evaluation.flips import ThresholdCrossing
from ..evaluation.labelflip import k_settings, label_flips
from ..evaluation.localised import localised_experiment
from ..explainers.settings import ExplainerSettings
from ..names import BASELINE_AGGREGATION, BUILTIN_EXPLAINERS, LIME_FAMILY
from ..runtime import use_device
from ..stages.audio import HYBRID_BATCH, ExcerptTensors
from ..svds.model import load_detector
from .result import Result

NORM = "norm"
"""The audio domain's magnitude baseline: Σ Δ² per time–frequency tile."""


@dataclass(frozen=True)
class Excerpts:
    """Clean and adversarial log-mel excerpts ``(N, 115, 80)``, their targets ``(N,)`` and the threshold τ."""

    clean: Any
    adversarial: Any
    targets: Any
    threshold: float
    ids: Sequence[str] | None = None


def _scored(explainers: Sequence[Any]) -> list[str]:
    names = list(explainers)
    unknown = [n for n in names if not isinstance(n, str) or n not in BUILTIN_EXPLAINERS]
    if unknown:
        raise ValueError(f"explainers: the audio call runs the built-in explainers only, not {unknown!r}")
    return names


def evaluate_excerpts(
    detector: Any,
    excerpts: Excerpts,
    *,
    explainers: Sequence[Any],
    k: Iterable[int],
    localised_k: Iterable[int] | None,
    settings: ExplainerSettings | None,
    seed: int,
    device: str,
    batch_size: int | str,
    chunk: int = 64,
) -> Result:
    """Label flips and localised recovery of the detector's excerpts, ``chunk`` excerpts at a time."""
    chosen = use_device(device)
    model = load_detector(detector, device=chosen) if isinstance(detector, str) else detector.to(chosen).eval()
    names = _scored(explainers)
    settings = settings or ExplainerSettings.paper("audio")
    passes = batch_size if isinstance(batch_size, int) else 64
    clean, adversarial, targets, ids = _excerpt_arrays(excerpts)
    ks, localised_ks = sorted(set(k)), sorted(set(k if localised_k is None else localised_k))
    result = Result(ids=[], ks=ks, localised_ks=localised_ks, seed=seed)

    def explain(inputs, classes, item_ids, _masks=None, _counts=None):
        return explain_excerpts(
            model, inputs, classes, item_ids, explainers=names, settings=settings, seed=seed, batch_size=passes
        )

    for start in range(0, len(clean), chunk):
        rows = slice(start, start + chunk)
        x = ExcerptTensors.of({"clean_logmel": clean[rows], "adv_logmel": adversarial[rows]}, chosen)
        flip_test = ThresholdCrossing(targets[rows], excerpts.threshold)
        scores = explain(x.adversarial, torch.as_tensor(targets[rows], device=chosen), ids[rows])
        result.extend(_chunk_result(model, x, flip_test, scores, ids[rows], ks, localised_ks, explain, names))
    return result


def _excerpt_arrays(excerpts: Excerpts) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The excerpts as host arrays (float32 spectrograms, int64 targets) and their ids (``"0"``, ``"1"``, ... if none)."""
    clean = np.asarray(torch.as_tensor(excerpts.clean).cpu(), dtype=np.float32)
    adversarial = np.asarray(torch.as_tensor(excerpts.adversarial).cpu(), dtype=np.float32)
    targets = np.asarray(torch.as_tensor(excerpts.targets).cpu(), dtype=np.int64)
    ids = list(excerpts.ids) if excerpts.ids is not None else [str(i) for i in range(len(clean))]
    return clean, adversarial, targets, ids


def _chunk_result(model, x, flip_test, scores, ids, ks, localised_ks, explain, names) -> Result:
    """One chunk's label flips (explainers' rankings and the perturbation-norm baseline) and localised recovery."""
    rankings = {f"{n}/{'mean' if n == LIME_FAMILY else 'mean_abs'}": v for n, v in scores.items()}
    rankings[f"{NORM}/{BASELINE_AGGREGATION}"] = magnitude(x.clean, x.adversarial, x.masks, x.segments)
    flips = label_flips(
        model,
        flip_test,
        x.clean,
        x.adversarial,
        x.masks,
        x.n_segments,
        rankings,
        k_settings(ks, [], x.n_segments).per_item,
        HYBRID_BATCH,
    )
    found = localised_experiment(
        model, flip_test, x.clean, x.adversarial, x.masks, x.n_segments, ids, localised_ks, explain, names, HYBRID_BATCH
    )
    part = Result(ids=ids, ks=ks, localised_ks=localised_ks, n_images=len(x.clean), n_adversaries=len(x.clean))
    part.flips[SEGMENTATION] = {tuple(name.split("/")): values for name, values in flips.items()}
    part.recovered[SEGMENTATION] = {kk: dict(r.recovered) for kk, r in found.items()}
    return part
