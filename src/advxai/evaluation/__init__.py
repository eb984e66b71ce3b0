"""The evaluation of explainers against adversarial ground truth, written once for both domains.

A domain supplies its inputs (clean and adversarial, with segment id maps), its model's forward
pass, its flip test (:mod:`.flips`) and, for the localised experiment, its explain function; the
algorithms here are the same for images and audio (docs/method.md §4, §8):

* :mod:`.selection`: top-k selections, segment masks, hybrids (refined adversaries), recovered counts;
* :mod:`.baselines`: the perturbation-magnitude baselines (the audio norm baseline is their sum);
* :mod:`.flips`: the two flip tests, argmax change (images) and P(sing) crossing τ (audio);
* :mod:`.labelflip`: label flips of every ranking at every k, each distinct hybrid predicted once;
* :mod:`.localised`: the localised-perturbation experiment;
* :mod:`.subsets`: seeded evaluation subsets;
* :mod:`.excerpts`: adversarial excerpt pairs of the singing voice detector and their explanations.

No module here reads or writes files; the stages in :mod:`advxai.stages` do.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see
    from .flips import ClassChange, FlipTest, ThresholdCrossing
    from .labelflip import k_settings, label_flips
    from .localised import LocalisedResult, Refinement, explain_refined, localised_experiment, refine

# The package's names load with their module on first use (PEP 562), so that a job which only
# draws subsets (:mod:`.subsets`, NumPy) does not import torch through :mod:`.labelflip`.
_EXPORTS = {
    "ClassChange": "flips", "FlipTest": "flips", "ThresholdCrossing": "flips",
    "k_settings": "labelflip", "label_flips": "labelflip",
    "LocalisedResult": "localised", "localised_experiment": "localised",
    "Refinement": "localised", "refine": "localised", "explain_refined": "localised",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
