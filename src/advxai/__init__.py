"""advxai: adversarial ground truth for testing explainers (Hoedt et al. 2022/23).

The public names (docs/api.md) load with their module on first use (PEP 562): ``import advxai``
imports no torch, so that the workflow's jobs that run no model stay light (tests/test_parse_time.py).
"""

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and editors see
    from .api.audio import Excerpts
    from .api.evaluate import evaluate
    from .api.quantus_metrics import LabelFlip, LocalisedRecovery
    from .api.result import Result
    from .explainers.settings import ExplainerSettings
    from .stages.settings import PgdSettings as PGD
    from .stages.settings import SegmentationSettings

_EXPORTS = {
    "evaluate": ("advxai.api.evaluate", "evaluate"),
    "Result": ("advxai.api.result", "Result"),
    "Excerpts": ("advxai.api.audio", "Excerpts"),
    "LabelFlip": ("advxai.api.quantus_metrics", "LabelFlip"),
    "LocalisedRecovery": ("advxai.api.quantus_metrics", "LocalisedRecovery"),
    "PGD": ("advxai.stages.settings", "PgdSettings"),
    "SegmentationSettings": ("advxai.stages.settings", "SegmentationSettings"),
    "ExplainerSettings": ("advxai.explainers.settings", "ExplainerSettings"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    return getattr(import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
