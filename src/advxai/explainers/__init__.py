"""Explainer engine: the 13 built-in explainers (LIME, Sal, IG, GBP and their SG/SG²/VG
ensembles), plug-in explainers, and aggregation of pixel maps to segment scores.

Modules: ``registry`` (names, families, plug-ins), ``gradients`` (gradient families sharing
their passes, through ``gradient_stream``), ``lime`` (batched per-item LIME for images and audio), ``aggregate`` (pixel maps
to per-segment ``mean``/``mean_abs``/``mean_pos``).
"""

import importlib

# `aggregate` is both a submodule and a function: import the function now, or importing the
# submodule later would bind the module to the name. It needs only NumPy.
from advxai.explainers.aggregate import AGGREGATIONS, aggregate, aggregate_segmentations

# Names → the submodule that defines them, imported on first use: the workflow reads the registry
# at parse time and the audio jobs need no captum, so importing the package stays light.
_SOURCES = {
    "gradients": ("METHODS", "FamilyResult", "draw_noise", "explain_gradient_family", "gradient_attributions",
                  "noise_ensemble"),
    "gradient_stream": ("integration_points", "target_gradients"),
    "lime": ("LimeResult", "lime_coefficients", "lime_explain"),
    "registry": ("BUILTIN_EXPLAINERS", "ENSEMBLES", "FAMILIES", "GRADIENT_METHODS", "LIME_FAMILY", "family_of",
                 "make_extra_explainer", "split_gradient_explainer", "validate_explainers"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


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
