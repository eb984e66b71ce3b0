"""Per-item outcomes read back from the per-shard and per-detector HDF5 files, for paired tests.

The tables hold rates; a paired test needs each item's outcome under both rankings. The stages
already store them: every label-flip shard keeps ``flips/<explainer>/<aggregation>`` as bool
``(items, settings)``, every localised shard ``k<k>/recovered/<explainer>`` (``NOT_KEPT``, -1, where
the refined adversary no longer flips, the same rows for every explainer), and the audio files
the same per direction. Shards are concatenated in the order given; within a (model,
segmentation) every ranking covers the same items, so arrays of one group line up item by item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..names import AUDIO_DIRECTIONS, reported_aggregation  # torch-free, as the report jobs are
from ..store import read_h5


@dataclass(frozen=True)
class FlipOutcomes:
    """Label flips of one model and segmentation over all its shards.

    Attributes:
        k: ``(settings,)`` the fixed k of each setting, 0 for a fraction setting.
        fraction: ``(settings,)`` the fraction of a fraction setting, NaN for a fixed k.
        flips: (explainer, aggregation) → bool ``(items, settings)``.
    """

    k: np.ndarray
    fraction: np.ndarray
    flips: dict[tuple[str, str], np.ndarray]

    def setting_of_k(self, k: int) -> int | None:
        """The column of the fixed ``k`` (the first, if a sweep repeats it), None if not run."""
        columns = np.flatnonzero(np.isnan(self.fraction) & (self.k == k))
        return int(columns[0]) if len(columns) else None

    def at_k(self, k: int) -> dict[str, np.ndarray]:
        """Explainer → bool ``(items,)`` flips at the fixed ``k``, in each explainer's reported aggregation."""
        column = self.setting_of_k(k)
        if column is None:
            return {}
        return {
            explainer: values[:, column]
            for (explainer, aggregation), values in self.flips.items()
            if aggregation == reported_aggregation(explainer)
        }


def image_flip_outcomes(paths: Sequence[str]) -> FlipOutcomes | None:
    """The label-flip outcomes of one (model, segmentation); None where no shard has an item."""
    parts = [part for part in (read_h5(path) for path in paths) if len(part["ids"])]
    if not parts:
        return None
    names = sorted(name for name in parts[0] if name.startswith("flips/"))
    flips = {tuple(name.split("/")[1:]): np.concatenate([part[name] for part in parts]).astype(bool) for name in names}
    return FlipOutcomes(
        k=np.asarray(parts[0]["k"]), fraction=np.asarray(parts[0]["fraction"], dtype=float), flips=flips
    )


def image_recovered_outcomes(paths: Sequence[str]) -> dict[int, dict[str, np.ndarray]]:
    """k → explainer → recovered counts ``(kept items,)`` of one (model, segmentation), the kept
    refined adversaries in the same order for every explainer."""
    parts = [read_h5(path) for path in paths]
    outcomes: dict[int, dict[str, np.ndarray]] = {}
    for k in sorted({int(k) for part in parts for k in part["ks"]}):
        prefix = f"k{k}/recovered/"
        names = sorted({name for part in parts for name in part if name.startswith(prefix)})
        outcomes[k] = {}
        for name in names:
            recovered = np.concatenate([part[name] for part in parts if name in part])
            outcomes[k][name.removeprefix(prefix)] = recovered[recovered >= 0]  # NOT_KEPT (-1): no longer flips
    return outcomes


def audio_flip_outcomes(path: str) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """One detector's ks and direction → explainer → bool ``(excerpts, ks)`` flips."""
    data = read_h5(path)
    flips = {}
    for direction in AUDIO_DIRECTIONS.values():
        prefix = f"{direction}/flips/"
        flips[direction] = {
            name.removeprefix(prefix): np.asarray(data[name], bool).T
            for name in sorted(data)
            if name.startswith(prefix)
        }
    return np.asarray(data["ks"]), flips


def audio_recovered_outcomes(path: str) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """One detector's k → direction → explainer → recovered counts of the kept refined excerpts."""
    data = read_h5(path)
    outcomes: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for k in (int(k) for k in data["ks"]):
        outcomes[k] = {}
        for direction in AUDIO_DIRECTIONS.values():
            prefix = f"{direction}/k{k}/recovered/"
            outcomes[k][direction] = {
                name.removeprefix(prefix): np.asarray(data[name]) for name in sorted(data) if name.startswith(prefix)
            }
    return outcomes


def pooled_audio_flips(labelflips: Mapping[int, str]) -> dict[int, dict[str, np.ndarray]]:
    """k → explainer → flips of every excerpt of every detector and direction, pooled (each
    excerpt is one pair; detectors and directions are concatenated, never averaged)."""
    pooled: dict[int, dict[str, list[np.ndarray]]] = {}
    for path in labelflips.values():
        ks, flips = audio_flip_outcomes(path)
        for direction in flips.values():
            for explainer, values in direction.items():
                for j, k in enumerate(ks):
                    pooled.setdefault(int(k), {}).setdefault(explainer, []).append(values[:, j])
    return {k: {e: np.concatenate(parts) for e, parts in by_explainer.items()} for k, by_explainer in pooled.items()}


def pooled_audio_recovered(localised: Mapping[int, str]) -> dict[int, dict[str, np.ndarray]]:
    """k → explainer → recovered counts of every kept refined excerpt of every detector and direction."""
    pooled: dict[int, dict[str, list[np.ndarray]]] = {}
    for path in localised.values():
        for k, directions in audio_recovered_outcomes(path).items():
            for by_explainer in directions.values():
                for explainer, values in by_explainer.items():
                    pooled.setdefault(k, {}).setdefault(explainer, []).append(values)
    return {k: {e: np.concatenate(parts) for e, parts in by_explainer.items()} for k, by_explainer in pooled.items()}
