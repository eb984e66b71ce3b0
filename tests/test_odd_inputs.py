"""Odd but legal inputs: image files as real photo folders hold them, audio as real corpora hold it.

Each kind either loads to the pixels (or samples) it stands for, checked against a known answer,
or fails with one error that names the file.
"""

from __future__ import annotations

import numpy as np
import pytest
from fabricate import odd_images

from advxai.data.image_items import ImageItem
from advxai.data.images import load_image, preprocess


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return odd_images(tmp_path_factory.mktemp("odd"))


def loaded(path) -> np.ndarray:
    image = load_image(ImageItem(id=path.stem, source=str(path), label=-1))
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("kind", ["grey", "rgba", "palette", "grey16", "rgb16", "small", "wide", "tall", "exif"])
def test_odd_image_files_load_to_the_pixels_they_show(odd, kind):
    """Grey, RGBA (alpha dropped as torchvision's loader drops it), palette, 16-bit grey and RGB (their
    high byte, not clipped at 255), tiny, very wide or tall, and EXIF-rotated (shown upright)."""
    path, expected = odd[kind]
    np.testing.assert_array_equal(loaded(path), expected)


def test_a_cmyk_jpeg_loads_as_rgb(odd):
    path, _ = odd["cmyk"]
    rgb_path, rgb = odd["rgba"][0], odd["rgba"][1]
    pixels = loaded(path)
    assert pixels.shape == rgb.shape and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - rgb).mean() < 20  # lossy JPEG of the same random pixels; not another picture
    assert rgb_path.exists()


@pytest.mark.parametrize("kind", ["grey", "rgba", "palette", "grey16", "rgb16", "cmyk", "small", "wide", "tall", "exif"])
def test_odd_image_files_preprocess_to_the_crop(odd, kind):
    path, _ = odd[kind]
    image = load_image(ImageItem(id=kind, source=str(path), label=-1))
    crop = preprocess(image, 72, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8


def test_a_very_wide_or_tall_image_is_cropped_in_its_middle(odd):
    for kind in ("wide", "tall"):
        crop = preprocess(load_image(ImageItem(id=kind, source=str(odd[kind][0]), label=-1)), 72, 64)
        assert (crop == np.array([255, 0, 0], dtype=np.uint8)).all(), kind


def test_an_image_smaller_than_the_crop_is_scaled_up(odd):
    """Resize makes the shorter side 72 px before the 64 px crop, as torchvision's Resize does."""
    from PIL import Image

    flat = Image.new("RGB", (5, 3), (10, 200, 30))
    np.testing.assert_array_equal(preprocess(flat, 72, 64), np.broadcast_to(np.array([10, 200, 30], np.uint8), (64, 64, 3)))
    assert preprocess(load_image(ImageItem(id="small", source=str(odd["small"][0]), label=-1)), 72, 64).shape == (64, 64, 3)


# ------------------------------------------------------------------------------------------------ audio
def one_song_corpus(root, samples: np.ndarray, sample_rate: int, lab: str, name: str = "odd song.wav"):
    """The same song in every split (a corpus needs three lists), as `name`."""
    import soundfile

    for sub in ("audio", "labels", "filelists"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stem = name.rsplit(".", 1)[0]
    for split in ("train", "valid", "test"):
        song = f"{split} {name}"
        soundfile.write(root / "audio" / song, samples, sample_rate)
        (root / "labels" / f"{split} {stem}.lab").write_text(lab)
        (root / "filelists" / split).write_text(f"{song}\n")
    return root


def features_of(root, split: str = "test") -> dict[str, np.ndarray]:
    from advxai.stages.audio import write_features
    from advxai.stages.audio_data import write_manifest
    from advxai.store import read_h5

    write_manifest(str(root), str(root / "manifest.csv"))
    write_features(str(root / "manifest.csv"), str(root), split, str(root / f"{split}.h5"))
    return read_h5(root / f"{split}.h5")


def test_a_stereo_song_is_mixed_down_to_mono(tmp_path):
    from advxai.data.jamendo import load_audio

    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.2, 0.2, (2 * 22050, 2)).astype(np.float32)
    root = one_song_corpus(tmp_path, stereo, 22050, "0 1 sing\n1 2 nosing\n")
    np.testing.assert_allclose(load_audio(root / "audio" / "test odd song.wav"), stereo.mean(axis=1), atol=1e-4)  # 16-bit PCM
    features = features_of(root)
    assert features["spec"].shape == (1 + 2 * 22050 // 315, 513)
    assert features["labels"][:70].all() and not features["labels"][71:].any()  # 70 frames per second


@pytest.mark.parametrize("sample_rate", [8000, 16000, 44100, 48000])
def test_a_song_at_another_sample_rate_is_resampled_to_22050(tmp_path, sample_rate):
    seconds = 1.5
    tone = np.sin(2 * np.pi * 440 * np.arange(int(seconds * sample_rate)) / sample_rate).astype(np.float32) * 0.3
    features = features_of(one_song_corpus(tmp_path, tone, sample_rate, "0 1.5 sing\n"))
    assert features["spec"].shape == (1 + int(seconds * 22050) // 315, 513)
    assert features["spec"].mean(axis=0).argmax() == round(440 / (22050 / 1024))  # the tone stays at 440 Hz


@pytest.mark.parametrize("lab", ["0 2 nosing\n", ""], ids=["nosing only", "empty lab"])
def test_a_song_without_vocals_has_no_sung_frame(tmp_path, lab):
    features = features_of(one_song_corpus(tmp_path, np.zeros(2 * 22050, np.float32) + 0.01, 22050, lab))
    assert features["labels"].size == 1 + 2 * 22050 // 315 and not features["labels"].any()


def test_a_song_shorter_than_the_detectors_window_works(tmp_path):
    """0.1 s: features and frame labels, though too short for an excerpt (the excerpt stage skips it)."""
    features = features_of(one_song_corpus(tmp_path, np.full(2205, 0.01, np.float32), 22050, "0 0.1 sing\n"))
    assert features["spec"].shape == (1 + 2205 // 315, 513)
    assert features["labels"].tolist() == [True] * 7 + [False]  # frame 7 lies at 0.1 s, where the segment ends


def test_a_song_too_short_for_the_features_fails_at_the_manifest_naming_the_file(tmp_path):
    from advxai.stages.audio_data import write_manifest

    root = one_song_corpus(tmp_path, np.full(300, 0.01, np.float32), 22050, "0 0.01 sing\n")
    with pytest.raises(ValueError, match=r"train odd song\.wav lasts 13\.6 ms; .* at least 23\.3 ms"):
        write_manifest(str(root), str(root / "manifest.csv"))
    assert not (root / "manifest.csv").exists()
