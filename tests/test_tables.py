"""Result tables from fabricated per-shard and per-seed files: known counts, rates and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advxai import tables
from advxai.store import write_h5


def _localised_shard(path, ids, recovered: dict[int, list[int]], fewer: dict[int, list[bool]] | None = None) -> str:
    """A localised shard file as ``localised_shard`` writes it; a shard without subset items has no per-k arrays."""
    arrays = {"ids": np.array(ids, dtype=str), "ks": np.array(sorted(recovered))}
    if ids:
        for k, values in recovered.items():
            arrays[f"k{k}/kept"] = np.array(values) >= 0
            arrays[f"k{k}/recovered/sal"] = np.array(values)
            arrays[f"k{k}/fewer_segments"] = np.array((fewer or {}).get(k, [False] * len(ids)))
    write_h5(path, arrays, stage="localised", params={})
    return str(path)


def test_localised_table_reads_every_shard(tmp_path):
    """Shard 0 has no localised-subset item; the model's rows still come from shard 1."""
    empty = _localised_shard(tmp_path / "shard0.h5", [], {1: [], 3: []})
    full = _localised_shard(tmp_path / "shard1.h5", ["a", "b", "c"], {1: [1, 0, -1], 3: [2, 3, 3]})
    table = tables.localised_table({("m", "slic"): [empty, full]})
    k1 = table[table.k == 1].set_index("recovered")
    assert k1["count"].tolist() == [1, 1] and k1.fraction.tolist() == [0.5, 0.5]
    k3 = table[table.k == 3].set_index("recovered")
    assert k3["count"].tolist() == [0, 0, 1, 2]
    assert set(table.model) == {"m"} and set(table.explainer) == {"sal"}


def _labelflip_shard(path, n_segments: list[int], per_item_k: list[list[int]], k: list[int], fraction: list[float]) -> str:
    per_item_k = np.array(per_item_k)
    write_h5(path, {"ids": np.array([f"i{j}" for j in range(len(n_segments))], dtype=str), "n_segments": np.array(n_segments),
                    "k": np.array(k), "fraction": np.array(fraction), "per_item_k": per_item_k,
                    "fewer_segments": per_item_k > np.array(n_segments)[:, None],
                    "flips/sal/mean_abs": np.ones(per_item_k.shape, bool)}, stage="labelflip", params={})
    return str(path)


def test_fewer_segments_table_counts_both_experiments(tmp_path):
    """Images with fewer SLIC segments than k, per experiment and k, over all shards."""
    labelflip = [_labelflip_shard(tmp_path / "lf0.h5", [2, 11], [[3, 1], [3, 5]], [3, 0], [np.nan, 0.5]),
                 _labelflip_shard(tmp_path / "lf1.h5", [4], [[3, 2]], [3, 0], [np.nan, 0.5])]
    localised = [_localised_shard(tmp_path / "lo0.h5", [], {1: [], 3: []}),
                 _localised_shard(tmp_path / "lo1.h5", ["a", "b"], {1: [1, 0], 3: [3, 1]}, {1: [False, False], 3: [True, False]})]
    table = tables.fewer_segments_table({("m", "slic"): labelflip}, {("m", "slic"): localised})
    assert list(table.columns) == tables.FEWER_SEGMENTS_COLUMNS
    assert table.values.tolist() == [["m", "slic", "labelflip", 3, 3, 1], ["m", "slic", "localised", 1, 2, 0], ["m", "slic", "localised", 3, 2, 1]]
    markdown = tables.fewer_segments_markdown(table)
    assert "| m | slic | labelflip | 3 | 3 | 1 |" in markdown
