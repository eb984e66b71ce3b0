"""Explainer engine: the 13 built-in explainers (LIME, Sal, IG, GBP and their SG/SG²/VG
ensembles), plug-in explainers, and aggregation of pixel maps to segment scores.

Modules: ``registry`` (names, families, plug-ins), ``gradients`` (gradient families sharing
their passes), ``lime`` (batched per-item LIME for images and audio), ``aggregate`` (pixel maps
to per-segment ``mean``/``mean_abs``/``mean_pos``).
"""

from advxai.explainers.aggregate import AGGREGATIONS, aggregate, aggregate_segmentations
from advxai.explainers.gradients import (
    METHODS,
    FamilyResult,
    draw_noise,
    explain_gradient_family,
    gradient_attributions,
    integration_points,
    noise_ensemble,
    target_gradients,
)
from advxai.explainers.lime import LimeResult, lime_coefficients, lime_explain
from advxai.explainers.registry import (
    BUILTIN_EXPLAINERS,
    ENSEMBLES,
    FAMILIES,
    GRADIENT_METHODS,
    LIME_FAMILY,
    family_of,
    make_extra_explainer,
    split_gradient_explainer,
    validate_explainers,
)

__all__ = [
    "AGGREGATIONS",
    "BUILTIN_EXPLAINERS",
    "ENSEMBLES",
    "FAMILIES",
    "GRADIENT_METHODS",
    "LIME_FAMILY",
    "METHODS",
    "FamilyResult",
    "LimeResult",
    "aggregate",
    "aggregate_segmentations",
    "draw_noise",
    "explain_gradient_family",
    "family_of",
    "gradient_attributions",
    "integration_points",
    "lime_coefficients",
    "lime_explain",
    "make_extra_explainer",
    "noise_ensemble",
    "split_gradient_explainer",
    "target_gradients",
    "validate_explainers",
]
