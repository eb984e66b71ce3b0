"""Explainer names and families: plain constants, importable without torch.

The workflow reads these while Snakemake parses it, so this module must stay free of heavy
imports; :mod:`advxai.explainers.registry` re-exports them beside the explainer machinery.
"""

from __future__ import annotations

GRADIENT_METHODS: dict[str, str] = {"saliency": "sal", "ig": "ig", "gbp": "gbp"}
"""Family name → gradient method it runs."""

ENSEMBLES: tuple[str, ...] = ("sg", "sg2", "vg")
"""NoiseTunnel variants: SmoothGrad, SmoothGrad², VarGrad."""

LIME_FAMILY = "lime"

AGGREGATIONS: tuple[str, ...] = ("mean", "mean_abs", "mean_pos")
"""How pixel attributions are reduced to one score per segment."""

FAMILIES: dict[str, tuple[str, ...]] = {
    family: (method, *(f"{method}-{ensemble}" for ensemble in ENSEMBLES))
    for family, method in GRADIENT_METHODS.items()
}
"""Gradient families and their explainers (each family shares its gradient passes)."""

BUILTIN_EXPLAINERS: tuple[str, ...] = (LIME_FAMILY, *(name for names in FAMILIES.values() for name in names))
"""The 13 built-in explainer names, a contract used by configs, file layouts and tables."""

BASELINE_AGGREGATION = "-"
"""The aggregation column of the magnitude baselines' rows: they rank segments, they aggregate no map."""

REPORTED_AGGREGATION: dict[str, str] = {"lime": "mean", "magnitude": BASELINE_AGGREGATION, "magnitude-mean": BASELINE_AGGREGATION}
"""The aggregation the tables report where it is not ``mean_abs`` (docs/method.md §8.1; docs/decisions.md, decision 8):
LIME's signed coefficient, and the baselines' own ranking."""

DEFAULT_REPORTED_AGGREGATION = "mean_abs"
"""What the tables report for every other explainer, extras included."""


def reported_aggregation(explainer: str) -> str:
    """The aggregation the tables report for ``explainer``."""
    return REPORTED_AGGREGATION.get(explainer, DEFAULT_REPORTED_AGGREGATION)


AUDIO_DIRECTIONS: dict[int, str] = {1: "nosing_to_sing", 0: "sing_to_nosing"}
"""Audio attack target → direction name (file groups and table rows)."""
