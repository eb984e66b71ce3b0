"""The findings of the paper's conclusion (Hoedt et al., §7), checked on a run's per-item outcomes.

Each finding becomes parts of claims (:mod:`.verdicts`) over the run's evidence:

(i)   audio: LIME's top-k segments flip fewer excerpts than the norm baseline's, at most ks;
(ii)  images: every explainer is at least on par with the ``magnitude-mean`` baseline (Fig. 6) at
      the tables' fixed k, every model and segmentation;
(iii) simpler architectures are easier to explain: AlexNet's label-flip rates are the highest, and
      VGG16's the next (rates of different models are different items: Fisher's exact test);
(iv)  LIME is the best image explainer with SLIC (every other explainer, every model), and the
      standard gradient explainers usually recover more perturbed segments than their ensembles
      (the localised experiment, where the paper observes it, §6.4);
(v)   explainers rarely (in fewer than half of the items) recover all k perturbed segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..names import ENSEMBLES, GRADIENT_METHODS, LIME_FAMILY
from .comparisons import AUDIO_BASELINE, IMAGE_BASELINES
from .paper_values import STANDARD
from .verdicts import (
    ALL,
    MOST,
    Decision,
    Part,
    combine,
    decide,
    flips_greater,
    flips_on_par,
    fractions_greater,
    rate_below,
    rate_greater,
)

FIG6_BASELINE = "magnitude-mean"
RARELY = 0.5
"""'Rarely' recovers all segments: in fewer than this share of the kept items."""
# "Simpler" architectures as the paper orders them (§6.3): AlexNet first, VGG16 next.
SIMPLER_THAN = {"alexnet": None, "vgg16": ("resnet50", "densenet161", "inception_v3")}

ImageFlips = Mapping[tuple[str, str], Mapping[str, np.ndarray]]
"""(model, segmentation) → explainer → bool (items,) flips at the fixed k."""
Recovered = Mapping[int, Mapping[str, np.ndarray]]
"""k → explainer → recovered counts (kept items,), the same items for every explainer."""


@dataclass(frozen=True)
class Evidence:
    """A run's per-item outcomes; a domain that is not in the run is None."""

    k: int
    image_flips: ImageFlips | None = None
    image_recovered: Mapping[tuple[str, str], Recovered] | None = None
    architectures: Mapping[str, str] = field(default_factory=dict)
    audio_flips: Recovered | None = None
    audio_recovered: Recovered | None = None


@dataclass(frozen=True)
class Finding:
    key: str
    statement: str
    decisions: tuple[Decision, ...]

    @property
    def verdict(self) -> str:
        return combine([d.verdict for d in self.decisions])


def _explainers(flips: Mapping[str, np.ndarray]) -> list[str]:
    return [e for e in flips if e not in IMAGE_BASELINES and e != AUDIO_BASELINE]


def audio_lime_below_norm(evidence: Evidence) -> Part:
    statement = "the norm baseline's top-k segments flip more excerpts than LIME's, at most k"
    flips = evidence.audio_flips
    if flips is None or not any(LIME_FAMILY in f and AUDIO_BASELINE in f for f in flips.values()):
        return Part(statement, MOST, missing="no audio label flips of LIME and the norm baseline in this run")
    claims = [
        flips_greater(
            f"audio, k = {k}, detectors and directions pooled", by[AUDIO_BASELINE], by[LIME_FAMILY], ("norm", "LIME")
        )
        for k, by in sorted(flips.items())
        if LIME_FAMILY in by and AUDIO_BASELINE in by
    ]
    return Part(statement, MOST, tuple(claims))


def images_on_par(evidence: Evidence) -> Part:
    statement = f"every explainer flips at least as many images as the {FIG6_BASELINE} baseline, k = {evidence.k}"
    flips = evidence.image_flips or {}
    groups = {key: by for key, by in flips.items() if FIG6_BASELINE in by}
    if not groups:
        return Part(statement, ALL, missing=f"no image label flips with the {FIG6_BASELINE} baseline in this run")
    claims = [
        flips_on_par(f"{model}, {seg}: {e}", by[e], by[FIG6_BASELINE], (e, FIG6_BASELINE))
        for (model, seg), by in groups.items()
        for e in _explainers(by)
    ]
    return Part(statement, ALL, tuple(claims))


def _models_of(evidence: Evidence, architecture: str) -> list[str]:
    return [model for model, arch in evidence.architectures.items() if arch == architecture]


def _rate(flips: np.ndarray) -> tuple[int, int]:
    return int(np.sum(flips)), len(flips)


def architecture_ranking(evidence: Evidence, architecture: str) -> Part:
    """Claims that ``architecture``'s models flip more than the models it is simpler than (any other for AlexNet)."""
    deeper = SIMPLER_THAN[architecture]
    statement = f"{architecture}'s label-flip rates exceed those of " + (
        "every other model" if deeper is None else ", ".join(deeper)
    )
    flips = evidence.image_flips or {}
    simple = _models_of(evidence, architecture)
    others = [
        m for m in evidence.architectures if m not in simple and (deeper is None or evidence.architectures[m] in deeper)
    ]
    if not simple or not others:
        present = ", ".join(f"{m} ({a})" for m, a in evidence.architectures.items()) or "no image model"
        return Part(statement, ALL, missing=f"needs {architecture} and a model to compare with; this run has {present}")
    claims = []
    for model in simple:
        for other in others:
            for seg in sorted({s for m, s in flips if m == model} & {s for m, s in flips if m == other}):
                for e in (e for e in STANDARD if e in flips[(model, seg)] and e in flips[(other, seg)]):
                    claims.append(
                        rate_greater(
                            f"{seg}, {e}: {model} vs {other}",
                            _rate(flips[(model, seg)][e]),
                            _rate(flips[(other, seg)][e]),
                            (model, other),
                        )
                    )
    return Part(statement, ALL, tuple(claims))


def lime_best_with_slic(evidence: Evidence) -> Part:
    statement = f"LIME flips more images than every other explainer with SLIC segments, k = {evidence.k}"
    groups = {key: by for key, by in (evidence.image_flips or {}).items() if key[1] == "slic" and LIME_FAMILY in by}
    if not groups:
        return Part(statement, ALL, missing="no SLIC label flips of LIME in this run")
    claims = [
        flips_greater(f"{model}, slic: lime vs {e}", by[LIME_FAMILY], by[e], (LIME_FAMILY, e))
        for (model, _), by in groups.items()
        for e in _explainers(by)
        if e != LIME_FAMILY
    ]
    return Part(statement, ALL, tuple(claims))


def standard_beat_ensembles(evidence: Evidence) -> Part:
    statement = (
        "standard gradient explainers usually recover more perturbed segments than their ensembles "
        "(localised experiment)"
    )
    claims = []
    for (model, seg), by_k in (evidence.image_recovered or {}).items():
        for k, recovered in sorted(by_k.items()):
            for method in GRADIENT_METHODS.values():
                for ensemble in (
                    f"{method}-{e}" for e in ENSEMBLES if f"{method}-{e}" in recovered and method in recovered
                ):
                    claims.append(
                        fractions_greater(
                            f"{model}, {seg}, k = {k}: {method} vs {ensemble}",
                            recovered[method] / k,
                            recovered[ensemble] / k,
                            (method, ensemble),
                        )
                    )
    if not claims:
        return Part(
            statement,
            MOST,
            missing="no image localised experiment with gradient explainers and their ensembles in this run",
        )
    return Part(statement, MOST, tuple(claims))


def rarely_all_recovered(domain: str, recovered: Mapping[str, Recovered] | None) -> Part:
    share = f"{100 * RARELY:.0f} %"
    statement = f"{domain}: explainers recover all k perturbed segments in fewer than {share} of the refined inputs"
    if recovered is None:
        return Part(statement, MOST, missing=f"the {domain} domain is not in this run")
    claims = [
        rate_below(f"{group}, k = {k}: {e}", int(np.sum(values == k)), len(values), RARELY)
        for group, by_k in recovered.items()
        for k, by in sorted(by_k.items())
        for e, values in by.items()
    ]
    return Part(statement, MOST, tuple(claims))


def check_findings(evidence: Evidence) -> list[Finding]:
    """The five findings of the paper's §7, each decided on ``evidence``."""
    images = (
        {f"{m}, {s}": by for (m, s), by in evidence.image_recovered.items()}
        if evidence.image_recovered is not None
        else None
    )
    audio = {"audio, pooled": evidence.audio_recovered} if evidence.audio_recovered is not None else None
    parts = {
        ("i", "Audio: LIME recovers perturbed segments worse than the norm baseline."): [
            audio_lime_below_norm(evidence)
        ],
        ("ii", "Images: every explainer is at least on par with the magnitude baseline."): [images_on_par(evidence)],
        ("iii", "Images: simpler architectures are easier to explain; AlexNet's label-flip rates are the highest."): [
            architecture_ranking(evidence, "alexnet"),
            architecture_ranking(evidence, "vgg16"),
        ],
        (
            "iv",
            "Images: LIME is the best explainer, particularly with SLIC; "
            "standard gradient explainers beat their ensembles.",
        ): [lime_best_with_slic(evidence), standard_beat_ensembles(evidence)],
        ("v", "Explainers rarely recover all of the perturbed segments."): [
            rarely_all_recovered("images", images),
            rarely_all_recovered("audio", audio),
        ],
    }
    return [Finding(key, statement, tuple(decide(part) for part in group)) for (key, statement), group in parts.items()]
