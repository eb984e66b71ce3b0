"""Image data: bundled photographs, ImageNet layouts, preprocessing, normalisation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from advxai.data.image_items import (
    IMAGE_EXTENSIONS,
    ImageItem,
    bundled_items,
    imagenet_val_items,
    locate,
    manifest_length,
    read_image_manifest,
    write_image_manifest,
)
from advxai.data.images import IMAGENET_MEAN, IMAGENET_STD, load_image, normalized_pixels, preprocess
from advxai.data.model_inputs import denormalize, normalize, pixel_bounds, to_model_input
from advxai.data.roots import link_data_root

WNIDS = ["n01440764", "n01443537", "n02102040"]


def test_bundled_items_are_colour_photographs_loaded_offline():
    items = bundled_items()
    assert len(items) >= 8
    assert len({item.id for item in items}) == len(items)
    by_id = {item.id: item for item in items}
    assert by_id["chelsea"].label == 281 and by_id["coffee"].label == 967
    for item in items:
        image = load_image(item)
        assert image.mode == "RGB" and min(image.size) >= 256
        pixels = np.asarray(image, dtype=np.int16)
        assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 2  # really colour, not grey
        assert -1 <= item.label < 1000


def test_preprocess_matches_torchvision_pipeline():
    image = load_image(bundled_items()[1])
    for resize, crop in [(256, 224), (299, 299)]:
        ours = preprocess(image, resize, crop)
        reference = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop)])(image)
        assert ours.shape == (crop, crop, 3) and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, np.asarray(reference))
        full = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
                                   transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)
        assert torch.equal(to_model_input(ours[None])[0], full)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (333, 501), (501, 333), (72, 72), (72, 100), (101, 73), (300, 300)])
def test_preprocess_is_torchvision_for_every_shape(size):
    """PIL alone resizes and crops as torchvision does: portrait, landscape, odd sides, already at size."""
    pixels = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    for resize, crop in [(72, 64), (72, 72), (256, 224)]:
        reference = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop)])(image)
        np.testing.assert_array_equal(preprocess(image, resize, crop), np.asarray(reference))


def test_normalized_pixels_are_torchvision_bit_for_bit():
    every_value = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    images = np.stack([every_value, every_value[::-1], np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)])
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ours = normalized_pixels(images)
    assert ours.dtype == np.float32 and ours.shape == (3, 3, 16, 16) and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, torch.stack([reference(image) for image in images]).numpy())


def test_preprocess_refuses_crop_larger_than_resize():
    with pytest.raises(ValueError, match="crop=300"):
        preprocess(Image.new("RGB", (400, 300)), 256, 300)


def test_normalize_round_trip_and_pixel_bounds():
    x = torch.rand(2, 3, 5, 5)
    z = normalize(x)
    torch.testing.assert_close(z[:, 1], (x[:, 1] - 0.456) / 0.224)
    torch.testing.assert_close(denormalize(z), x, rtol=0, atol=1e-6)
    lower, upper = pixel_bounds()
    assert lower.shape == upper.shape == (3, 1, 1)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    np.testing.assert_allclose(lower.flatten().numpy(), -mean / std, rtol=1e-6)
    np.testing.assert_allclose(upper.flatten().numpy(), (1 - mean) / std, rtol=1e-6)
    assert torch.equal(normalize(torch.ones(1, 3, 2, 2)).amax(dim=(0, 2, 3)), upper.flatten())


def test_to_model_input_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((1, 4, 4, 3), dtype=np.float32))


def write_jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (shade, 255 - shade, 40)).save(path, "JPEG")


# wnid -> image stems; the files of a class are deliberately written out of name order
FAKE_VAL = {WNIDS[2]: ["ILSVRC2012_val_00000005", "ILSVRC2012_val_00000002"],
            WNIDS[0]: ["ILSVRC2012_val_00000004", "ILSVRC2012_val_00000001"],
            WNIDS[1]: ["ILSVRC2012_val_00000006", "ILSVRC2012_val_00000003"]}
EXPECTED = [("ILSVRC2012_val_00000001", 0), ("ILSVRC2012_val_00000004", 0), ("ILSVRC2012_val_00000003", 1),
            ("ILSVRC2012_val_00000006", 1), ("ILSVRC2012_val_00000002", 2), ("ILSVRC2012_val_00000005", 2)]


def folder_tree(root: Path) -> Path:
    for shade, (wnid, stems) in enumerate(FAKE_VAL.items()):
        for stem in stems:
            write_jpeg(root / wnid / f"{stem}.JPEG", 40 * shade)
    return root


def kaggle_tree(root: Path) -> Path:
    rows = []
    for shade, (wnid, stems) in enumerate(FAKE_VAL.items()):
        for stem in stems:
            write_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"{stem}.JPEG", 40 * shade)
            rows.append({"ImageId": stem, "PredictionString": f"{wnid} 1 2 30 40 {wnid} 5 6 7 8 "})
    with open(root / "LOC_val_solution.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ImageId", "PredictionString"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def summary(items: list[ImageItem]) -> list[tuple[str, int]]:
    return [(item.id, item.label) for item in items]


def test_both_imagenet_layouts_give_the_same_sorted_items(tmp_path):
    folder_items = imagenet_val_items(folder_tree(tmp_path / "folders"), allow_partial=True)
    nested_items = imagenet_val_items(folder_tree(tmp_path / "nested" / "val").parent, allow_partial=True)
    kaggle_items = imagenet_val_items(kaggle_tree(tmp_path / "kaggle"), allow_partial=True)
    assert summary(folder_items) == summary(nested_items) == summary(kaggle_items) == EXPECTED
    first_pixels = [[load_image(i).getpixel((0, 0)) for i in items] for items in (folder_items, kaggle_items)]
    assert first_pixels[0] == first_pixels[1]


def test_kaggle_csv_in_parent_folder_is_found(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    (root / "LOC_val_solution.csv").rename(tmp_path / "LOC_val_solution.csv")
    assert summary(imagenet_val_items(root, allow_partial=True)) == EXPECTED


def test_partial_imagenet_is_refused_by_default(tmp_path):
    with pytest.raises(ValueError, match="3 ImageNet classes"):
        imagenet_val_items(folder_tree(tmp_path / "folders"))


def test_csv_listing_a_missing_image_names_the_csv(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    (root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "ILSVRC2012_val_00000003.JPEG").unlink()
    with pytest.raises(ValueError, match=r"LOC_val_solution\.csv lists 1 images missing.*00000003"):
        imagenet_val_items(root, allow_partial=True)


def test_image_not_in_csv_names_the_csv(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    write_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "ILSVRC2012_val_00000099.JPEG", 0)
    with pytest.raises(ValueError, match=r"not listed in .*LOC_val_solution\.csv, e\.g\. ILSVRC2012_val_00000099"):
        imagenet_val_items(root, allow_partial=True)


def test_missing_root_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        imagenet_val_items(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no ImageNet validation layout"):
        imagenet_val_items(tmp_path / "empty")


@pytest.mark.parametrize("content", [b"not a jpeg at all", "truncated"])
def test_corrupt_image_error_names_the_file(tmp_path, content):
    path = tmp_path / "broken.JPEG"
    if content == "truncated":
        Image.new("RGB", (64, 64), (1, 2, 3)).save(path, "JPEG")
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.JPEG"):
        load_image(ImageItem(id="broken", source=str(path), label=-1))


def test_missing_image_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.JPEG"):
        load_image(ImageItem(id="gone", source=str(tmp_path / "gone.JPEG"), label=-1))


def test_listing_accepts_the_extensions_torchvision_accepts():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS


def full_folder_tree(root: Path) -> Path:
    """folder_tree plus empty folders for the other 997 classes, as a real subset tree keeps them."""
    folder_tree(root)
    for index in range(1000 - len(WNIDS)):
        (root / f"n{index:08d}").mkdir()
    return root


def test_manifest_paths_are_relative_so_a_moved_data_folder_gives_the_same_manifest(tmp_path):
    root = full_folder_tree(tmp_path / "first")
    write_image_manifest("imagenet", root, tmp_path / "first.csv")
    moved = root.rename(tmp_path / "elsewhere")
    write_image_manifest("imagenet", moved, tmp_path / "moved.csv")
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "moved.csv").read_bytes()
    assert manifest_length(tmp_path / "moved.csv") == 6

    listed = imagenet_val_items(moved)
    rows = read_image_manifest(tmp_path / "moved.csv", 2, 4)
    assert [(i.id, i.label) for i in rows] == [(i.id, i.label) for i in listed[2:4]]
    assert [i.source for i in rows] == [f"{WNIDS[1]}/ILSVRC2012_val_00000003.JPEG", f"{WNIDS[1]}/ILSVRC2012_val_00000006.JPEG"]
    assert [locate(i, moved) for i in rows] == listed[2:4]
    sizes = [line.rsplit(",", 1)[1] for line in (tmp_path / "moved.csv").read_text().splitlines()[1:]]
    assert sizes == [str(Path(i.source).stat().st_size) for i in listed]


def test_bundled_manifest_lists_the_bundled_photographs(tmp_path):
    write_image_manifest("bundled", None, tmp_path / "bundled.csv")
    items = read_image_manifest(tmp_path / "bundled.csv")
    assert items == bundled_items() and [locate(i, None) for i in items] == items
    with pytest.raises(ValueError, match="data root"):
        locate(ImageItem("x", "n01440764/x.JPEG", 0), None)


def test_data_link_follows_the_configured_folder_and_finds_the_kaggle_csv_beside_the_real_one(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    (root / "LOC_val_solution.csv").rename(tmp_path / "LOC_val_solution.csv")
    link = tmp_path / "work" / "data" / "imagenet"
    link_data_root(link, root)
    assert summary(imagenet_val_items(link, allow_partial=True)) == EXPECTED
    before = link.lstat().st_mtime_ns
    link_data_root(link, root)  # already right: left alone
    assert link.lstat().st_mtime_ns == before
    link_data_root(link, tmp_path / "work")
    assert link.resolve() == (tmp_path / "work").resolve()
    (tmp_path / "real").mkdir()
    with pytest.raises(FileExistsError, match="not a link"):
        link_data_root(tmp_path / "real", root)
