"""What :func:`advxai.evaluate` returns: per-item outcomes, and tidy tables with 95 % intervals.

The outcomes are kept per item (a flip per ranking and k, a recovered count per explainer and k),
so that every table and every paired comparison is computed from the same items. NumPy, SciPy and
pandas only: a result can be built, stored and read without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..statistics import bootstrap_interval, mcnemar_exact, paired_bootstrap, wilson_interval

LABEL_FLIP_COLUMNS = ["explainer", "segmentation", "aggregation", "k", "n", "flips", "rate", "ci_low", "ci_high"]
LOCALISED_COLUMNS = ["explainer", "segmentation", "k", "n", "mean_recovered", "ci_low", "ci_high", "all_recovered"]
HISTOGRAM_COLUMNS = ["explainer", "segmentation", "k", "recovered", "count", "fraction"]
COMPARE_COLUMNS = ["experiment", "segmentation", "k", "n", "a", "b", "difference", "p_value", "test", "significant"]


@dataclass
class Result:
    """The outcomes of one :func:`advxai.evaluate` call.

    Attributes:
        ids: the evaluated items (those whose adversary flipped the model's decision).
        ks: the label-flip k values, one column of each ``flips`` array.
        localised_ks: the ks of the localised experiment.
        flips: segmentation → ranking → bool ``(n, len(ks))``; a ranking is ``(explainer, aggregation)``.
        recovered: segmentation → k → explainer → ``(n,)`` recovered counts, -1 where the refined
            adversary did not flip (it is not explained).
        n_images: items scored; n_adversaries: items whose adversary flipped the decision;
        n_labelled, n_correct: labelled items and those the model classified right (clean).
        seed: seeds the bootstrap intervals, so that a table is the same on every run.
    """

    ids: list[str]
    ks: list[int]
    localised_ks: list[int]
    flips: dict[str, dict[tuple[str, str], np.ndarray]] = field(default_factory=dict)
    recovered: dict[str, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    n_images: int = 0
    n_adversaries: int = 0
    n_labelled: int = 0
    n_correct: int = 0
    seed: int = 0

    @property
    def label_flips(self) -> pd.DataFrame:
        """Label-flip rate per explainer (and baseline), segmentation and k, with its Wilson interval."""
        rows = []
        for segmentation, rankings in self.flips.items():
            for (explainer, aggregation), flipped in rankings.items():
                for j, k in enumerate(self.ks):
                    hits, n = int(flipped[:, j].sum()), len(flipped)
                    interval = wilson_interval(hits, n)
                    rows.append(
                        [
                            explainer,
                            segmentation,
                            aggregation,
                            k,
                            n,
                            hits,
                            interval.estimate,
                            interval.low,
                            interval.high,
                        ]
                    )
        return pd.DataFrame(rows, columns=LABEL_FLIP_COLUMNS)

    def _kept(self, segmentation: str, k: int, explainer: str) -> np.ndarray:
        counts = self.recovered[segmentation][k][explainer]
        return counts[counts >= 0]  # -1: not kept (advxai.evaluation.localised.NOT_KEPT)

    @property
    def localised(self) -> pd.DataFrame:
        """Mean share of the k perturbed segments each explainer recovers, with a bootstrap interval
        over the items whose refined adversary still flips, and the share that recovers all k."""
        rows = []
        for segmentation, by_k in self.recovered.items():
            for k, by_explainer in by_k.items():
                for explainer in by_explainer:
                    found = self._kept(segmentation, k, explainer) / k
                    interval = bootstrap_interval(found, seed=self.seed)
                    every = float(np.mean(found == 1.0)) if len(found) else float("nan")
                    rows.append(
                        [explainer, segmentation, k, len(found), interval.estimate, interval.low, interval.high, every]
                    )
        return pd.DataFrame(rows, columns=LOCALISED_COLUMNS)

    @property
    def localised_histogram(self) -> pd.DataFrame:
        """How many kept items recovered r = 0..k of the k segments (the workflow's Fig. 8 table)."""
        rows = []
        for segmentation, by_k in self.recovered.items():
            for k, by_explainer in by_k.items():
                for explainer in by_explainer:
                    found = self._kept(segmentation, k, explainer)
                    for r in range(k + 1):
                        count = int(np.sum(found == r))
                        rows.append(
                            [explainer, segmentation, k, r, count, count / len(found) if len(found) else float("nan")]
                        )
        return pd.DataFrame(rows, columns=HISTOGRAM_COLUMNS)

    @property
    def clean_accuracy(self) -> float:
        """Clean top-1 accuracy over the labelled items (NaN without labels)."""
        return self.n_correct / self.n_labelled if self.n_labelled else float("nan")

    def _ranking(self, segmentation: str, name: str) -> np.ndarray:
        matches = [flipped for (explainer, _), flipped in self.flips[segmentation].items() if explainer == name]
        if not matches:
            known = sorted({explainer for explainer, _ in self.flips[segmentation]})
            raise ValueError(f"compare: no explainer {name!r}; scored: {known}")
        return matches[0]

    def compare(self, a: str, b: str) -> pd.DataFrame:
        """Paired tests of explainer ``a`` against ``b`` (or a baseline) on the same items.

        Label flips: the exact McNemar test at every segmentation and k. Localised recovery: a
        paired bootstrap of the recovered shares over the items both explained (every kept item).
        ``significant`` is p < 0.05.
        """
        rows = []
        for segmentation in self.flips:
            first, second = self._ranking(segmentation, a), self._ranking(segmentation, b)
            for j, k in enumerate(self.ks):
                test = mcnemar_exact(first[:, j], second[:, j])
                rows.append(
                    [
                        "label_flip",
                        segmentation,
                        k,
                        len(first),
                        float(first[:, j].mean()),
                        float(second[:, j].mean()),
                        test.difference,
                        test.p_value,
                        "exact McNemar",
                        test.significant,
                    ]
                )
        for segmentation, by_k in self.recovered.items():
            for k, by_explainer in by_k.items():
                if a in by_explainer and b in by_explainer:
                    first, second = self._kept(segmentation, k, a) / k, self._kept(segmentation, k, b) / k
                    test = paired_bootstrap(first, second, seed=self.seed)
                    rows.append(
                        [
                            "localised",
                            segmentation,
                            k,
                            len(first),
                            float(np.mean(first)) if len(first) else float("nan"),
                            float(np.mean(second)) if len(second) else float("nan"),
                            test.difference,
                            test.p_value,
                            "paired bootstrap",
                            test.significant,
                        ]
                    )
        return pd.DataFrame(rows, columns=COMPARE_COLUMNS)

    def extend(self, other: Result) -> None:
        """Append the items of ``other``, a later chunk of the same call."""
        self.ids += other.ids
        for segmentation, rankings in other.flips.items():
            mine = self.flips.setdefault(segmentation, {})
            for name, flipped in rankings.items():
                mine[name] = np.concatenate([mine[name], flipped]) if name in mine else flipped
        for segmentation, by_k in other.recovered.items():
            for k, by_explainer in by_k.items():
                mine = self.recovered.setdefault(segmentation, {}).setdefault(k, {})
                for name, counts in by_explainer.items():
                    mine[name] = np.concatenate([mine[name], counts]) if name in mine else counts
        self.n_images += other.n_images
        self.n_adversaries += other.n_adversaries
        self.n_labelled += other.n_labelled
        self.n_correct += other.n_correct

    def __repr__(self) -> str:
        return (
            f"Result({self.n_images} images, {self.n_adversaries} adversaries that flip, "
            f"segmentations {list(self.flips)}, k {self.ks}, localised k {self.localised_ks})"
        )
