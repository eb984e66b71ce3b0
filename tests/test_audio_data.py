"""Jamendo-VAD layout, label alignment and the synthetic corpus (advxai.data.jamendo, advxai.data.synthetic_audio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from advxai.data.jamendo import (
    frame_labels,
    jamendo_split,
    load_audio,
    loudness_separability,
    read_lab,
    validate_jamendo,
)
from advxai.data.synthetic_audio import SongSynthesizer, write_synthetic_corpus
from advxai.seeding import numpy_rng

SECONDS = 15.0
SR = 22050  # the paper's sample rate, a known answer rather than advxai's constant


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(root, n_songs={"train": 2, "valid": 1, "test": 1}, song_seconds=SECONDS, seed=7)
    return root


def write_layout(root: Path, lab_text: str = "0 1.5 nosing\n1.5 3 sing\n", folder: str = "filelists") -> Path:
    """A one-song corpus in every split (different songs), audio written as 3 s of noise."""
    for sub in ("audio", "labels", folder):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        name = f"01 - My {split} Song.wav"
        soundfile.write(root / "audio" / name, np.random.default_rng(0).uniform(-0.1, 0.1, 3 * 8000), 8000)
        (root / "labels" / f"01 - My {split} Song.lab").write_text(lab_text)
        (root / folder / split).write_text(f"{name}\n\n")
    return root


def test_frame_labels_known_answer():
    # frame i has time i/70: 0.1 s is frame 7 exactly, 0.15 s lies between frames 10 and 11
    segments = [(0.0, 0.1, False), (0.1, 0.15, True), (0.12, 0.13, False), (0.2, 9.0, True)]
    expected = np.zeros(16, dtype=bool)
    expected[[7, 8, 10, 14, 15]] = True
    np.testing.assert_array_equal(frame_labels(segments, 16), expected)
    assert not frame_labels([(1.0, 2.0, True)], 10).any()  # a segment after the last frame


def test_read_lab_parses_and_maps_labels(tmp_path):
    path = tmp_path / "a song.lab"
    path.write_text("0 1.25 nosing\n\n1.25\t2.5 sing\n2.5 3 instrumental\n")
    assert read_lab(path) == [(0.0, 1.25, False), (1.25, 2.5, True), (2.5, 3.0, False)]


@pytest.mark.parametrize(
    "line, message",
    [("0 1", "expected 'start end label'"), ("0 x sing", "must be numbers"), ("2 1 sing", "before start"), ("0 nan sing", "finite")],
)
def test_read_lab_rejects_malformed_lines_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.lab"
    path.write_text(f"0 0.5 nosing\n{line}\n")
    with pytest.raises(ValueError, match=message) as error:
        read_lab(path)
    assert f"{path}:2" in str(error.value)


@pytest.mark.parametrize("folder", ["filelists", "filelist"])
def test_layout_accepts_both_filelist_folder_names(tmp_path, folder):
    root = write_layout(tmp_path, folder=folder)
    splits = validate_jamendo(root)
    assert [song.name for song in splits["test"]] == ["01 - My test Song.wav"]
    song = splits["train"][0]
    assert song.audio_path == root / "audio" / "01 - My train Song.wav"
    assert song.label_path == root / "labels" / "01 - My train Song.lab"


def test_validate_names_the_missing_file(tmp_path):
    root = write_layout(tmp_path)
    (root / "audio" / "01 - My valid Song.wav").unlink()
    with pytest.raises(FileNotFoundError, match="01 - My valid Song.wav"):
        validate_jamendo(root)


def test_validate_names_the_undecodable_file(tmp_path):
    root = write_layout(tmp_path)
    (root / "audio" / "01 - My test Song.wav").write_bytes(b"this is not audio" * 100)
    with pytest.raises(ValueError, match="01 - My test Song.wav"):
        validate_jamendo(root)
    validate_jamendo(root, decode=False)  # without decoding the layout itself is fine


def test_validate_names_the_malformed_lab_line(tmp_path):
    root = write_layout(tmp_path, lab_text="0 1 nosing\n1 2 3 sing\n")
    with pytest.raises(ValueError, match=r"01 - My train Song\.lab:2"):
        validate_jamendo(root, decode=False)


def test_validate_rejects_a_song_in_two_splits(tmp_path):
    root = write_layout(tmp_path)
    (root / "filelists" / "test").write_text("01 - My train Song.wav\n")
    with pytest.raises(ValueError, match="both 'train' and 'test'"):
        validate_jamendo(root, decode=False)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing here.ogg"):
        load_audio(tmp_path / "nothing here.ogg")
    bad = tmp_path / "broken song.flac"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="broken song.flac"):
        load_audio(bad)


def test_synthetic_corpus_layout_and_labels(corpus):
    splits = validate_jamendo(corpus)
    assert {split: len(songs) for split, songs in splits.items()} == {"train": 2, "valid": 1, "test": 1}
    names = [song.name for songs in splits.values() for song in songs]
    assert names[0] == "01 - Synthetic Song.ogg" and {Path(n).suffix for n in names} == {".ogg", ".flac"}
    for song in (s for songs in splits.values() for s in songs):
        samples = load_audio(song.audio_path)
        assert len(samples) == int(SECONDS * SR) and np.abs(samples).max() <= 1.0
        segments = read_lab(song.label_path)
        assert segments[0][0] == 0.0 and segments[-1][1] == pytest.approx(SECONDS, abs=1e-5)
        assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(segments, segments[1:]))  # contiguous, alternating
        sung = frame_labels(segments, 1 + len(samples) // 315)
        assert 0.15 < sung.mean() < 0.85


def test_synthetic_voice_sounds_exactly_in_sung_segments():
    synthesizer = SongSynthesizer(numpy_rng(3, "corpus", "probe"), SECONDS, SR)
    passages = synthesizer.passages()
    phrases = [p.phrase for p in passages if p.sung]
    voice = synthesizer.voice(phrases)
    inside = np.zeros(len(voice), dtype=bool)
    for start, end in phrases:
        inside[int(start * SR) : int(start * SR) + int((end - start) * SR)] = True
    assert not voice[~inside].any()
    assert np.mean(np.abs(voice[inside]) > 1e-3) > 0.9


def test_synthetic_songs_depend_only_on_seed_and_name():
    first = SongSynthesizer(numpy_rng(5, "corpus", "02 - Synthetic Song"), 12.0, SR).render()
    again = SongSynthesizer(numpy_rng(5, "corpus", "02 - Synthetic Song"), 12.0, SR).render()
    other = SongSynthesizer(numpy_rng(6, "corpus", "02 - Synthetic Song"), 12.0, SR).render()
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0], other[0])


def test_loudness_does_not_give_the_voice_away(corpus):
    assert 0.3 < loudness_separability(corpus) < 0.7


def test_corpus_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_songs"):
        write_synthetic_corpus(tmp_path, n_songs={"train": 1, "test": 1}, song_seconds=20, seed=0)
    with pytest.raises(ValueError, match="song_seconds"):
        write_synthetic_corpus(tmp_path, n_songs={"train": 1, "valid": 1, "test": 1}, song_seconds=5, seed=0)
    with pytest.raises(ValueError, match="unknown split"):
        jamendo_split(tmp_path, "dev")
