"""Song-level evaluation of the singing-voice detector (docs/method.md §1.6).

Probability curves are median-smoothed (:func:`median_smooth`), the threshold is tuned for
pooled accuracy on the validation songs (:func:`tune_threshold`), and the test songs are scored
with all frames pooled (:func:`binary_metrics`). The functions take curves as given: smooth
them first. A frame is predicted "sing" when its probability is strictly above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage

from ..constants import MEDIAN_FILTER

THRESHOLD_GRID = np.concatenate([[1e-5, 1e-4, 1e-3], np.arange(1, 100) / 100, [1 - 1e-3, 1 - 1e-4, 1 - 1e-5]])


def median_smooth(probs: np.ndarray, width: int = MEDIAN_FILTER) -> np.ndarray:
    """Running median over ``width`` frames with "same" size and edge replication.

    For an even width the window of frame ``i`` is ``[i − width/2, i + width/2 − 1]`` and the
    median is its ``(width//2 + 1)``-th smallest value, as in veracity's ``MedianPool``.
    """
    if width < 1:
        raise ValueError(f"median_smooth: width must be ≥ 1, got {width}")
    values = np.asarray(probs)
    if values.ndim != 1:
        raise ValueError(f"median_smooth: expected a 1-D probability curve, got shape {values.shape}")
    if width == 1 or len(values) <= 1:
        return values.copy()
    return scipy.ndimage.median_filter(values, size=width, mode="nearest")


def confusion_counts(
    probs_list: Sequence[np.ndarray], labels_list: Sequence[np.ndarray], thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives/negatives per threshold, frames of all songs pooled.

    Returns:
        ``(tp, fp, tn, fn)``, each an int64 array shaped like ``thresholds``.
    """
    if len(probs_list) != len(labels_list):
        raise ValueError(f"got {len(probs_list)} probability curves but {len(labels_list)} label sequences")
    if len(probs_list) == 0:
        raise ValueError("no songs to evaluate")
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    tp, fp, tn, fn = (np.zeros(len(thresholds), dtype=np.int64) for _ in range(4))
    for index, (probs, labels) in enumerate(zip(probs_list, labels_list)):
        probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=bool)
        if probs.shape != labels.shape or probs.ndim != 1:
            raise ValueError(f"song {index}: probabilities {probs.shape} and labels {labels.shape} must be equal-length 1-D arrays")
        predicted = probs[None, :] > thresholds[:, None]
        tp += (predicted & labels).sum(axis=1)
        fp += (predicted & ~labels).sum(axis=1)
        tn += (~predicted & ~labels).sum(axis=1)
        fn += (~predicted & labels).sum(axis=1)
    return tp, fp, tn, fn


def tune_threshold(probs_list: Sequence[np.ndarray], labels_list: Sequence[np.ndarray]) -> float:
    """The grid threshold with the highest pooled accuracy (the lowest one on ties)."""
    tp, fp, tn, fn = confusion_counts(probs_list, labels_list, THRESHOLD_GRID)
    return float(THRESHOLD_GRID[np.argmax(tp + tn)])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # veracity's save_div: 0/0 counts as 0, e.g. recall on songs without singing
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=np.asarray(denominator) != 0)


def binary_metrics(probs_list: Sequence[np.ndarray], labels_list: Sequence[np.ndarray], threshold: float) -> dict[str, float]:
    """Error, recall, specificity, precision and F1 in percent, frames of all songs pooled."""
    tp, fp, tn, fn = (count[0] for count in confusion_counts(probs_list, labels_list, np.array([threshold])))
    precision, recall, specificity = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "error": 100.0 * float(fp + fn) / float(tp + fp + tn + fn),
        "recall": 100.0 * float(recall),
        "specificity": 100.0 * float(specificity),
        "precision": 100.0 * float(precision),
        "f1": 100.0 * float(f1),
    }


def auroc_over_grid(probs_list: Sequence[np.ndarray], labels_list: Sequence[np.ndarray]) -> float:
    """Area under the ROC curve by the trapezoid rule over :data:`THRESHOLD_GRID` plus (0,0), (1,1), in percent."""
    tp, fp, tn, fn = confusion_counts(probs_list, labels_list, THRESHOLD_GRID)
    recall = np.concatenate([[0.0], _ratio(tp, tp + fn)[::-1], [1.0]])
    false_positive_rate = np.concatenate([[0.0], 1 - _ratio(tn, tn + fp)[::-1], [1.0]])
    return 100.0 * float(np.trapezoid(recall, false_positive_rate))
