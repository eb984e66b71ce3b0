"""Image stages on fabricated shard files: subsets, label-flip settings, provenance checks."""

from __future__ import annotations

import numpy as np
import pytest

from advxai.image_stages import draw_subsets, flip_settings, subset_size
from advxai.store import ProvenanceError, read_h5, require_params, write_h5


def _adversary_shards(tmp_path, n_images: int, shard_size: int) -> list[str]:
    ids = [f"img{i:03d}" for i in range(n_images)]
    success = np.arange(n_images) % 5 != 0  # every fifth attack failed
    paths = []
    for start in range(0, n_images, shard_size):
        path = tmp_path / f"shard{start}.h5"
        write_h5(path, {"ids": ids[start : start + shard_size], "success": success[start : start + shard_size]}, stage="attack", params={})
        paths.append(str(path))
    return paths


def test_subsets_are_seeded_sized_and_independent_of_sharding(tmp_path):
    params = {"fraction": 0.1, "localised_fraction": 0.1, "seed": 3, "model": "m"}
    results = []
    for shard_size in (7, 50, 200):
        folder = tmp_path / str(shard_size)
        folder.mkdir()
        draw_subsets(_adversary_shards(folder, 200, shard_size), str(folder / "subset.h5"), subset=params)
        results.append(read_h5(folder / "subset.h5"))
    first = results[0]
    for other in results[1:]:
        np.testing.assert_array_equal(first["labelflip_ids"], other["labelflip_ids"])
        np.testing.assert_array_equal(first["localised_ids"], other["localised_ids"])
    assert len(first["labelflip_ids"]) == 20 == subset_size(0.1, 200)  # 10 % of all images, as the paper's 5000 of 50 000
    assert int(first["n_adversaries"]) == 160 and int(first["n_images"]) == 200
    failed = {f"img{i:03d}" for i in range(0, 200, 5)}
    assert not failed & set(first["labelflip_ids"]) and not failed & set(first["localised_ids"])
    assert set(first["labelflip_ids"]) != set(first["localised_ids"])  # separately seeded


def test_flip_settings_fixed_k_and_sweeps():
    ks, fractions, per_item = flip_settings({"k": 3, "ks": [1, 16], "fractions": [0.5, 1.0]}, np.array([16, 11]))
    np.testing.assert_array_equal(ks, [3, 1, 16, 0, 0])
    assert np.isnan(fractions[:3]).all() and fractions[3:].tolist() == [0.5, 1.0]
    np.testing.assert_array_equal(per_item, [[3, 1, 16, 8, 16], [3, 1, 16, 5, 11]])


def test_stale_input_is_refused(tmp_path):
    path = tmp_path / "adv.h5"
    write_h5(path, {"ids": ["a"]}, stage="attack", params={"model": {"architecture": "resnet50", "weights": "IMAGENET1K_V1"}})
    with pytest.raises(ProvenanceError, match="adv.h5"):
        require_params(path, {"model": {"architecture": "resnet50", "weights": None}})
