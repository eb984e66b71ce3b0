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
