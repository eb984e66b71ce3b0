"""The label-flip and localised-recovery metrics with Quantus's call convention (quantus 0.6).

``metric(model=, x_batch=, y_batch=, a_batch=, s_batch=, explain_func=, explain_func_kwargs=)``
returns one score per input, so the metrics run inside ``quantus.evaluate`` beside Quantus's own.
The ground truth lies in each input's adversary, which the metric makes (targeted PGD, seeded per
input position) and which ``explain_func`` explains for its adversarial class, as Quantus's
robustness metrics re-explain perturbed inputs; ``a_batch`` (the clean input's attributions) is
not what is judged, and ``y_batch`` is not used. An input whose attack fails scores NaN: aggregate
with ``np.nanmean`` (``quantus.evaluate(..., agg_func=np.nanmean)``). Needs no quantus import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..explainers.settings import ExplainerSettings
from ..stages.settings import PgdSettings
from .evaluate import evaluate

EXPLAINER = "explain_func"


def _explainer(explain_func: Callable, kwargs: dict[str, Any]) -> Callable:
    """Quantus's ``explain_func(model=, inputs=, targets=, **kwargs)`` (NumPy in, NumPy out) as an advxai callable."""

    def explain(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        found = explain_func(model=model, inputs=inputs.detach().cpu().numpy(), targets=targets.cpu().numpy(), **kwargs)
        found = torch.as_tensor(np.asarray(found), dtype=torch.float32, device=inputs.device)
        if found.ndim == inputs.ndim - 1:  # (N, H, W): one map for every channel
            found = found.unsqueeze(1)
        return found.expand_as(inputs)

    return explain


class _AdversarialMetric:
    """What both metrics share: the attack, segmentation, k and the call's settings."""

    def __init__(
        self,
        attack: PgdSettings,
        *,
        segmentation: str = "rect",
        k: int = 3,
        settings: ExplainerSettings | None = None,
        seed: int = 0,
        batch_size: int | str = 8,
        device: str = "cpu",
    ) -> None:
        self.attack, self.segmentation, self.k, self.settings = attack, segmentation, int(k), settings
        self.seed, self.batch_size, self.device = seed, batch_size, device

    def __call__(
        self,
        model,
        x_batch,
        y_batch=None,
        a_batch=None,
        s_batch=None,
        explain_func=None,
        explain_func_kwargs=None,
        **kwargs: Any,
    ) -> list[float]:
        """Quantus's call convention: one score per input of ``x_batch`` (``y_batch``, ``a_batch`` and
        ``s_batch`` are not used: the metric explains each input's adversary itself)."""
        ids, result = self._evaluate(model, x_batch, explain_func, explain_func_kwargs, labelflip=self.LABELFLIP)
        return self._per_input(ids, result, self._scores(result))

    def _evaluate(self, model, x_batch, explain_func, explain_func_kwargs, *, labelflip: bool):
        if explain_func is None:
            raise ValueError(f"{type(self).__name__}: needs explain_func, which explains each input's adversary")
        kwargs = dict(explain_func_kwargs or {})
        x = torch.as_tensor(np.asarray(x_batch), dtype=torch.float32)
        ids = [str(i) for i in range(len(x))]
        return ids, evaluate(
            model,
            x,
            attack=self.attack,
            explainers={EXPLAINER: _explainer(explain_func, kwargs)},
            segmentation=self.segmentation,
            k=[self.k] if labelflip else [],
            localised_k=[] if labelflip else [self.k],
            settings=self.settings,
            seed=self.seed,
            device=self.device,
            batch_size=self.batch_size,
            ids=ids,
        )

    @staticmethod
    def _per_input(ids: list[str], result, values: np.ndarray) -> list[float]:
        scores = dict(zip(result.ids, values.tolist()))
        return [float(scores.get(item, np.nan)) for item in ids]


class LabelFlip(_AdversarialMetric):
    """1.0 where adding back the perturbation on the explanation's top-k segments flips the decision,
    0.0 where not, NaN where the attack failed (docs/method.md §8.1). Higher is better."""

    LABELFLIP = True

    def _scores(self, result) -> np.ndarray:
        flipped = next(iter(result.flips.values()), {}).get((EXPLAINER, "mean_abs"), np.zeros((0, 1), bool))
        return flipped[:, 0].astype(float)


class LocalisedRecovery(_AdversarialMetric):
    """The share of the k perturbed segments (the perturbation kept on its k largest segments) that the
    explanation ranks top k; NaN where the attack failed or the localised adversary no longer flips
    (docs/method.md §8.3). Higher is better."""

    LABELFLIP = False

    def _scores(self, result) -> np.ndarray:
        counts = next(iter(result.recovered.values()), {}).get(self.k, {}).get(EXPLAINER, np.zeros(0))
        return np.where(counts >= 0, counts / self.k, np.nan)
