"""Paired tests on the same items: each explainer against the baseline, and the standard gradient
explainers against their ensembles, from the per-item outcomes (:mod:`.outcomes`).

Label flips are paired booleans: the exact McNemar test. Recovered segments of the localised
experiment are per-item fractions ``r / k``: a paired bootstrap. Every comparison is one row of a
CSV table; the Markdown marks a rate whose difference from the baseline is not significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..names import ENSEMBLES, GRADIENT_METHODS
from ..statistics import ALPHA, PairedTest, mcnemar_exact, paired_bootstrap
from . import outcomes

IMAGE_BASELINES = ("magnitude-mean", "magnitude")
"""Image baselines every explainer is compared with; ``magnitude-mean`` is the paper's Fig. 6 baseline."""
AUDIO_BASELINE = "norm"

COMPARISON_COLUMNS = [
    "explainer",
    "versus",
    "n",
    "rate",
    "versus_rate",
    "difference",
    "only_explainer",
    "only_versus",
    "p_value",
    "significant",
    "test",
]
IMAGE_COMPARISON_COLUMNS = ["model", "segmentation", "experiment", "aggregation", "k", "fraction", *COMPARISON_COLUMNS]
AUDIO_COMPARISON_COLUMNS = ["seed", "direction", "k", *COMPARISON_COLUMNS]


def flip_comparison(explainer: str, versus: str, a: np.ndarray, b: np.ndarray) -> dict:
    """One row: exact McNemar test of flips ``a`` against ``b`` on the same items."""
    return _comparison_row(explainer, versus, a, b, mcnemar_exact(a, b), "mcnemar_exact")


def fraction_comparison(explainer: str, versus: str, a: np.ndarray, b: np.ndarray) -> dict:
    """One row: paired bootstrap test of per-item fractions ``a`` against ``b``."""
    return _comparison_row(explainer, versus, a, b, paired_bootstrap(a, b), "paired_bootstrap")


def _comparison_row(explainer: str, versus: str, a: np.ndarray, b: np.ndarray, result: PairedTest, test: str) -> dict:
    return {
        "explainer": explainer,
        "versus": versus,
        "n": len(a),
        "rate": float(np.mean(a)) if len(a) else np.nan,
        "versus_rate": float(np.mean(b)) if len(b) else np.nan,
        "difference": result.difference,
        "only_explainer": result.only_a,
        "only_versus": result.only_b,
        "p_value": result.p_value,
        "significant": result.significant,
        "test": test,
    }


def _setting(result: outcomes.FlipOutcomes, j: int) -> dict:
    is_fraction = not np.isnan(result.fraction[j])
    return {"k": np.nan if is_fraction else int(result.k[j]), "fraction": result.fraction[j] if is_fraction else np.nan}


def labelflip_vs_baselines(model: str, segmentation: str, result: outcomes.FlipOutcomes) -> list[dict]:
    """Every ranking (explainer and aggregation) against each image baseline, at every setting."""
    rows = []
    for baseline in (b for b in IMAGE_BASELINES if (b, "-") in result.flips):
        for (explainer, aggregation), flips in result.flips.items():
            if explainer in IMAGE_BASELINES:
                continue
            for j in range(flips.shape[1]):
                key = {
                    "model": model,
                    "segmentation": segmentation,
                    "experiment": "labelflip",
                    "aggregation": aggregation,
                    **_setting(result, j),
                }
                rows.append(
                    {**key, **flip_comparison(explainer, baseline, flips[:, j], result.flips[(baseline, "-")][:, j])}
                )
    return rows


def standard_vs_ensembles(recovered: Mapping[str, np.ndarray], k: int) -> list[dict]:
    """Each standard gradient explainer's recovered fraction ``r / k`` against each of its ensembles."""
    rows = []
    for method in GRADIENT_METHODS.values():
        for ensemble in (f"{method}-{e}" for e in ENSEMBLES):
            if method in recovered and ensemble in recovered:
                rows.append(fraction_comparison(method, ensemble, recovered[method] / k, recovered[ensemble] / k))
    return rows


def image_comparisons(
    labelflips: Mapping[tuple[str, str], Sequence[str]], localised: Mapping[tuple[str, str], Sequence[str]]
) -> pd.DataFrame:
    """The image comparison table: label flips against the baselines, recovered fractions of the
    standard gradient explainers against their ensembles."""
    rows = []
    for (model, seg), paths in labelflips.items():
        result = outcomes.image_flip_outcomes(paths)
        if result is not None:
            rows += labelflip_vs_baselines(model, seg, result)
    for (model, seg), paths in localised.items():
        for k, recovered in outcomes.image_recovered_outcomes(paths).items():
            key = {
                "model": model,
                "segmentation": seg,
                "experiment": "localised",
                "aggregation": "mean_abs",
                "k": k,
                "fraction": np.nan,
            }
            rows += [{**key, **row} for row in standard_vs_ensembles(recovered, k)]
    return pd.DataFrame(rows, columns=IMAGE_COMPARISON_COLUMNS)


def audio_comparisons(labelflips: Mapping[int, str]) -> pd.DataFrame:
    """Every audio explainer against the norm baseline, per detector, direction and k (McNemar)."""
    rows = []
    for seed, path in labelflips.items():
        ks, flips = outcomes.audio_flip_outcomes(path)
        for direction, by_explainer in flips.items():
            if AUDIO_BASELINE not in by_explainer:
                continue
            for explainer, values in by_explainer.items():
                if explainer == AUDIO_BASELINE:
                    continue
                for j, k in enumerate(ks):
                    row = flip_comparison(explainer, AUDIO_BASELINE, values[:, j], by_explainer[AUDIO_BASELINE][:, j])
                    rows.append({"seed": seed, "direction": direction, "k": int(k), **row})
    return pd.DataFrame(rows, columns=AUDIO_COMPARISON_COLUMNS)


def not_significant(comparisons: pd.DataFrame, **key) -> bool | None:
    """Whether the comparison row matching ``key`` (column = value) is not significant at ALPHA;
    None where no row matches (nothing to mark)."""
    rows = comparisons
    for column, value in key.items():
        rows = rows[rows[column] == value]
    if not len(rows):
        return None
    return bool((rows.p_value >= ALPHA).all())
