"""Audio corpora in the Jamendo-VAD layout: file lists, ``.lab`` labels, frame labels, decoding, validation.

Layout (docs/method.md §1.1)::

    root/audio/<name>.{ogg,mp3,wav,flac}      names may contain spaces
    root/labels/<stem>.lab                    "start end sing|nosing" per non-empty line
    root/filelists/{train,valid,test}         one audio file name per line ("filelist/" works too)

The real data set and the synthetic demo corpus (:mod:`advxai.data.synthetic_audio`) share this
layout, so both go through the same loader.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from ..constants import FPS, HOP, N_FFT, SAMPLE_RATE, SPLITS

AUDIO_EXTENSIONS = (".ogg", ".mp3", ".wav", ".flac")
FILELIST_FOLDERS = ("filelists", "filelist")  # the code reads the first, veracity's README names the second

Segment = tuple[float, float, bool]

MIN_SECONDS = (N_FFT // 2 + 1) / SAMPLE_RATE
"""The shortest song the detector's features accept: its centred STFT reflect-pads by ``N_FFT // 2``
samples at 22 050 Hz, so a song needs more than that (about 23 ms)."""


@dataclass(frozen=True)
class Song:
    """One song of a Jamendo-style corpus: its audio file name and the paths of audio and labels."""

    name: str
    audio_path: Path
    label_path: Path




def filelist_folder(root: str | os.PathLike) -> Path:
    """The file-list folder of a corpus: ``root/filelists`` or else ``root/filelist``."""
    root = Path(root)
    for name in FILELIST_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"no file-list folder in {root}: expected {root / FILELIST_FOLDERS[0]} or {root / FILELIST_FOLDERS[1]}")


def jamendo_split(root: str | os.PathLike, split: str) -> list[Song]:
    """The songs listed in ``filelists/<split>``, in list order.

    Raises:
        ValueError: unknown split, a name without an audio extension, or a name listed twice.
        FileNotFoundError: the list, a listed audio file or its ``.lab`` file is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; expected one of {SPLITS}")
    root = Path(root)
    list_path = filelist_folder(root) / split
    if not list_path.is_file():
        raise FileNotFoundError(f"missing file list: {list_path}")
    songs: list[Song] = []
    seen: set[str] = set()
    for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        where = f"{list_path}:{line_number}"
        if Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
            raise ValueError(f"{where}: '{name}' has no audio extension {AUDIO_EXTENSIONS}")
        if name in seen:
            raise ValueError(f"{where}: '{name}' is listed twice")
        seen.add(name)
        song = Song(name=name, audio_path=root / "audio" / name, label_path=root / "labels" / f"{Path(name).stem}.lab")
        for path in (song.audio_path, song.label_path):
            if not path.is_file():
                raise FileNotFoundError(f"{where}: '{name}' is listed but {path} does not exist")
        songs.append(song)
    return songs


def read_lab(path: str | os.PathLike) -> list[Segment]:
    """Parse a ``.lab`` file into ``(start, end, is_sing)`` segments (seconds).

    Every non-empty line must be ``start end label`` with finite times and ``end ≥ start``;
    any label other than ``sing`` means no singing.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a malformed line, naming file and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing label file: {path}")
    segments: list[Segment] = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_number}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 'start end label', got {len(fields)} fields: {line!r}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise ValueError(f"{where}: start and end must be numbers, got {line!r}") from None
        if not (np.isfinite(start) and np.isfinite(end)):
            raise ValueError(f"{where}: start and end must be finite, got {line!r}")
        if end < start:
            raise ValueError(f"{where}: end {end} lies before start {start}")
        segments.append((start, end, fields[2] == "sing"))
    return segments


def write_lab(path: Path, segments: Sequence[Segment]) -> None:
    """Write ``.lab`` lines ``start end sing|nosing``."""
    path.write_text("".join(f"{start:.6f} {end:.6f} {'sing' if sung else 'nosing'}\n" for start, end, sung in segments))


def frame_labels(segments: Sequence[Segment], n_frames: int, fps: float = FPS) -> np.ndarray:
    """Frame-wise singing labels (docs/method.md §1.1).

    Frame ``i`` has time ``i / fps``; a segment ``(s, e, lab)`` sets the frames in
    ``[first i with i/fps ≥ s, first i with i/fps ≥ e)``. Later segments overwrite earlier ones;
    frames outside all segments are ``False``.
    """
    if n_frames < 0:
        raise ValueError(f"frame_labels: n_frames must be ≥ 0, got {n_frames}")
    labels = np.zeros(n_frames, dtype=bool)
    times = np.arange(n_frames) / float(fps)
    for start, end, is_sing in segments:
        first, stop = np.searchsorted(times, [start, end], side="left")
        labels[first:stop] = is_sing
    return labels


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sample_rate`` (``librosa.load``).

    librosa's default resampler (soxr_hq) replaces librosa 0.8's kaiser_best; files already at
    ``sample_rate`` (the synthetic corpus) are not resampled.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it cannot be decoded or holds no samples.
    """
    import librosa  # slow to import; only audio stages need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing audio file: {path}")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; a failure there becomes our error
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            samples, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # decoders raise many types; all mean "unreadable"
        raise ValueError(f"cannot decode audio file {path}: {error}") from error
    if samples.size == 0 or not np.all(np.isfinite(samples)):
        raise ValueError(f"audio file {path} decodes to {'no samples' if samples.size == 0 else 'non-finite samples'}")
    return samples.astype(np.float32, copy=False)


def _check_decodable(path: Path) -> None:
    """The whole file decodes to finite samples, and lasts at least :data:`MIN_SECONDS`; any channel
    count and sample rate is fine (:func:`load_audio` mixes down and resamples)."""
    try:
        with soundfile.SoundFile(path) as handle:
            sample_rate, frames = handle.samplerate, 0
            for block in handle.blocks(blocksize=1 << 18):
                if not np.all(np.isfinite(block)):
                    raise ValueError("non-finite samples")
                frames += len(block)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as error:
        # formats libsndfile cannot read (e.g. older libsndfile and mp3) go through librosa's fallback
        try:
            load_audio(path, sample_rate=None)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"cannot decode audio file {path}: {error}") from error
        return
    if frames == 0:
        raise ValueError(f"audio file {path} holds no samples")
    if frames / sample_rate < MIN_SECONDS:
        raise ValueError(f"audio file {path} lasts {frames / sample_rate * 1000:.1f} ms; "
                         f"the detector's features need at least {MIN_SECONDS * 1000:.1f} ms")


def validate_jamendo(root: str | os.PathLike, decode: bool = True) -> dict[str, list[Song]]:
    """Check a Jamendo-style corpus and return its songs per split.

    Checks every split's list, that each listed audio and label file exists, that every label
    file parses (:func:`read_lab`), that no song is in two splits and, with ``decode``, that
    every audio file decodes completely.

    Raises:
        FileNotFoundError / ValueError: the first problem found, naming the file (and line).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus root does not exist: {root}")
    splits = {split: jamendo_split(root, split) for split in SPLITS}
    owner: dict[str, str] = {}
    for split, songs in splits.items():
        for song in songs:
            if song.name in owner:
                raise ValueError(f"'{song.name}' is listed in both '{owner[song.name]}' and '{split}' of {filelist_folder(root)}")
            owner[song.name] = split
            read_lab(song.label_path)
            if decode:
                _check_decodable(song.audio_path)
    return splits


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each STFT frame (1024 samples, hop 315, centred): ``1 + len // 315`` values."""
    import librosa

    return librosa.feature.rms(y=samples, frame_length=N_FFT, hop_length=HOP, center=True)[0]


def loudness_separability(corpus_root: str | os.PathLike, splits: Sequence[str] = SPLITS) -> float:
    """AUROC of frame RMS for telling sung from unsung frames, pooled over the songs of ``splits``.

    0.5 means loudness carries no information about singing; the synthetic corpus aims near it.
    """
    from sklearn.metrics import roc_auc_score

    loudness, labels = [], []
    for split in splits:
        for song in jamendo_split(corpus_root, split):
            rms = frame_rms(load_audio(song.audio_path))
            loudness.append(rms)
            labels.append(frame_labels(read_lab(song.label_path), len(rms)))
    labels_all = np.concatenate(labels)
    if labels_all.all() or not labels_all.any():
        raise ValueError(f"{corpus_root}: loudness separability needs sung and unsung frames, found only one class")
    return float(roc_auc_score(labels_all, np.concatenate(loudness)))
