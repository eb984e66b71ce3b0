"""Golden values of the seeding scheme: every draw of every stage derives from ``item_seed``, so a
change of its hash, its key format or the generators it seeds would silently change every result.
These literals make such a change fail here first."""

from __future__ import annotations

import pytest
import torch

from advxai import seeding


def test_item_seed_is_the_documented_sha256_prefix():
    assert seeding.item_seed(1, "stage", "a") == 8005545052533059478
    assert seeding.item_seed(7, "noise", "item-1") == 3951959760454592413
    assert seeding.item_seed(7, "noise", 3) == seeding.item_seed(7, "noise", "3") == 399719988791634256  # ids by their text


def test_item_seeds_are_distinct_across_items_seeds_and_stages():
    assert len({seeding.item_seed(1, "stage", i) for i in range(100)}) == 100
    assert len({seeding.item_seed(1, "stage", "a"), seeding.item_seed(2, "stage", "a"), seeding.item_seed(1, "other", "a")}) == 3


def test_numpy_draws_are_pinned():
    assert seeding.numpy_rng(7, "noise", "item-1").random(3).tolist() == [0.037651872913499695, 0.7679771945083569, 0.26540402567059285]


def test_torch_draws_are_pinned():
    uniform = torch.rand(3, generator=seeding.torch_generator(7, "noise", "item-1"), dtype=torch.float64)
    assert uniform.tolist() == [0.17508004728915116, 0.3049994222967125, 0.844666995593895]
    normal = torch.randn(3, generator=seeding.torch_generator(7, "noise", "item-1"))  # as draw_noise draws
    assert normal.tolist() == pytest.approx([0.38689184188842773, 0.7602630257606506, 0.4404589533805847], rel=1e-6)
