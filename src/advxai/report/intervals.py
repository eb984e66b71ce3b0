"""95 % intervals added to the result tables as new columns (the existing columns stay as they are).

Every rate in the tables is a plain proportion of items (flipped, recovered r of k, correctly
classified), so each gets a Wilson interval: ``ci_low`` and ``ci_high`` in the rate's own unit
(a fraction; percent in the accuracy table). Rows of the audio ``mean`` and ``std`` over detectors
get none: their spread over detectors is the ``std`` row, and each detector's own row has its
interval. The counts come back from the tables exactly (``rate · n`` is an integer held in a
float64, far below 2⁵³).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..statistics import wilson_interval
from ..store import read_h5
from .tables import SEED_SUMMARIES

INTERVAL_COLUMNS = ["ci_low", "ci_high"]
ACCURACY_INTERVAL_COLUMNS = ["clean_top1_ci_low", "clean_top1_ci_high", "adv_top1_ci_low", "adv_top1_ci_high"]


def _wilson_bounds(successes: np.ndarray, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson bounds per row; NaN where the total is 0 or not known (NaN)."""
    low, high = np.full(len(totals), np.nan), np.full(len(totals), np.nan)
    for i, (successes_i, total) in enumerate(zip(successes, totals)):
        if np.isfinite(successes_i) and np.isfinite(total) and total > 0:
            low[i], high[i] = wilson_interval(round(successes_i), round(total))[1:]
    return low, high


def _per_seed(table: pd.DataFrame) -> np.ndarray:
    """Rows of single detectors (or every row of a table without a ``seed`` column)."""
    if "seed" not in table:
        return np.ones(len(table), bool)
    return ~table.seed.astype(str).isin(SEED_SUMMARIES).to_numpy()


def with_rate_interval(table: pd.DataFrame, rate: str = "label_flip_rate", n: str = "n") -> pd.DataFrame:
    """``table`` with the Wilson interval of ``rate`` over ``n`` items in ``ci_low``, ``ci_high``."""
    rows = _per_seed(table)
    rates = pd.to_numeric(table[rate], errors="coerce").to_numpy(float)
    totals = np.where(rows, pd.to_numeric(table[n], errors="coerce").to_numpy(float), np.nan)
    low, high = _wilson_bounds(rates * totals, totals)
    return table.assign(ci_low=low, ci_high=high)


def with_histogram_interval(table: pd.DataFrame, group: Sequence[str]) -> pd.DataFrame:
    """A histogram table (``count`` of items per ``recovered``) with the Wilson interval of each
    row's ``fraction``: its count over the total count of its ``group``."""
    rows = _per_seed(table)
    counts = pd.to_numeric(table["count"], errors="coerce").astype(float)
    totals = (
        counts.groupby([table[column].astype(str) for column in group], sort=False).transform("sum").to_numpy(float)
    )
    low, high = _wilson_bounds(counts.to_numpy(float), np.where(rows, totals, np.nan))
    return table.assign(ci_low=low, ci_high=high)


def accuracy_counts(paths: Sequence[str]) -> tuple[int, int, int]:
    """(labelled images, correct clean, correct with the adversary where one exists) of one model."""
    parts = [read_h5(path, ["labels", "clean_prediction", "final_prediction", "success"]) for path in paths]
    labels = np.concatenate([p["labels"] for p in parts]) if parts else np.zeros(0, int)
    if not len(labels):
        return 0, 0, 0
    clean = np.concatenate([p["clean_prediction"] for p in parts])
    attacked = np.where(
        np.concatenate([p["success"] for p in parts]), np.concatenate([p["final_prediction"] for p in parts]), clean
    )
    labelled = labels >= 0
    return (
        int(labelled.sum()),
        int(np.sum(clean[labelled] == labels[labelled])),
        int(np.sum(attacked[labelled] == labels[labelled])),
    )


def with_accuracy_interval(table: pd.DataFrame, adversaries: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Table 1 with Wilson intervals (percent) of clean and adversarial top-1 over the labelled images."""
    bounds = {name: [] for name in ACCURACY_INTERVAL_COLUMNS}
    for model in table.model:
        labelled, clean, attacked = accuracy_counts(adversaries[model])
        for prefix, correct in (("clean_top1", clean), ("adv_top1", attacked)):
            low, high = _wilson_bounds(np.array([correct], float), np.array([labelled], float))
            bounds[f"{prefix}_ci_low"].append(100.0 * low[0])
            bounds[f"{prefix}_ci_high"].append(100.0 * high[0])
    return table.assign(**bounds)
