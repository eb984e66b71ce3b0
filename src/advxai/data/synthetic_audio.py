"""A synthetic singing-voice corpus in the Jamendo-VAD layout (:mod:`advxai.data.jamendo`).

:class:`SongSynthesizer` draws one song with its ``.lab`` segments; :func:`write_synthetic_corpus`
writes a whole corpus that the real data set's loader reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from ..constants import SAMPLE_RATE, SPLITS
from ..seeding import numpy_rng
from .jamendo import Segment, Song, jamendo_split, write_lab
from .oscillators import attack_release, midi_to_hz, polyblep_sawtooth, read_wavetable, wavetable

# Vowel formants (Hz) of a sung voice: F1, F2, F3 and their bandwidths.
VOWELS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((800.0, 1150.0, 2800.0), (80.0, 90.0, 120.0)),
    "e": ((450.0, 1900.0, 2600.0), (70.0, 100.0, 120.0)),
    "i": ((300.0, 2250.0, 3000.0), (60.0, 100.0, 120.0)),
    "o": ((480.0, 850.0, 2600.0), (70.0, 80.0, 100.0)),
    "u": ((340.0, 700.0, 2450.0), (60.0, 70.0, 100.0)),
    "ae": ((650.0, 1700.0, 2500.0), (80.0, 100.0, 120.0)),
}
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
PROGRESSIONS = ([0, 5, 3, 4], [0, 3, 4, 3], [0, 4, 5, 3], [5, 3, 0, 4], [0, 3, 0, 4], [0, 6, 5, 4])
NOTE_BEATS = np.array([0.5, 1.0, 1.0, 1.5, 2.0])  # melody note lengths, in beats
MIN_SONG_SECONDS = 6.0  # two bars at the slowest tempo (84 bpm) plus a margin
SPAN_LEVEL_SPREAD_DB = 2.0  # level spread between annotated segments of one song


@dataclass(frozen=True)
class Note:
    """A melody or accompaniment note: MIDI pitch, onset and duration in seconds."""

    pitch: float
    start: float
    duration: float


@dataclass(frozen=True)
class Passage:
    """A musical section of whole bars; ``phrase`` is the span of its melody (voice or lead), if any."""

    start: float
    end: float
    sung: bool
    phrase: tuple[float, float] | None


class SongSynthesizer:
    """Draws one synthetic song (style, structure, stems) from its own random generator.

    The song has an accompaniment (pad chords, bass, optional arpeggio, optional drums) and
    alternating passages: sung ones carry a voice (PolyBLEP sawtooth with vibrato, glides and
    breath noise through a 3-formant vowel filter, the vowel changing per note); the others carry,
    most of the time, a lead synthesizer in the same register without formants or vibrato. The
    mix is loudness-normalised per annotated segment so that level does not reveal the voice.
    """

    def __init__(self, rng: np.random.Generator, seconds: float, sample_rate: int):
        self.rng = rng
        self.sample_rate = sample_rate
        self.n_samples = int(round(seconds * sample_rate))
        self.beat = 60.0 / rng.uniform(84, 140)
        self.bar = 4 * self.beat
        self.tonic = int(rng.integers(40, 52))  # bass register, E2 to D#3
        self.scale = MAJOR if rng.random() < 0.5 else MINOR
        self.progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
        self.melody_centre = int(rng.integers(60, 71))  # C4 to A#4, shared by voice and lead
        self.vowels = list(rng.choice(sorted(VOWELS), size=int(rng.integers(3, 6)), replace=False))
        self.formant_scale = rng.uniform(0.92, 1.12)

    # structure ---------------------------------------------------------------------------

    def passages(self) -> list[Passage]:
        """Sections of one or two bars (one in short songs); sung and instrumental ones alternate (mostly)."""
        seconds = self.n_samples / self.sample_rate
        max_bars = 2 if seconds >= 4 * self.bar else 1  # the first two passages must fit, to hold both classes
        passages: list[Passage] = []
        start, sung = 0.0, bool(self.rng.random() < 0.5)
        while start < seconds - 1e-9:
            end = min(start + self.bar * int(self.rng.integers(1, max_bars + 1)), seconds)
            has_melody = sung or self.rng.random() < 0.8
            phrase = None
            if has_melody:
                onset = start + self.beat * self.rng.choice([0.0, 0.5, 1.0])
                offset = end - self.beat * self.rng.choice([0.0, 0.5, 1.0])
                phrase = (onset, offset) if offset - onset >= self.beat else None
            passages.append(Passage(start, end, sung and phrase is not None, phrase))
            start = end
            sung = (not sung) if (self.rng.random() < 0.8 or len(passages) == 1) else sung
        if not any(p.sung for p in passages) or all(p.sung for p in passages):
            raise ValueError(f"song of {seconds:.1f} s is too short for both sung and instrumental passages; use ≥ {MIN_SONG_SECONDS} s")
        return passages

    def melody(self, span: tuple[float, float]) -> list[Note]:
        """A random-walk melody on the scale around the melody centre, filling ``span``."""
        degree = int(self.rng.integers(-3, 4))
        notes, time = [], span[0]
        while time < span[1] - 1e-9:
            duration = min(self.beat * self.rng.choice(NOTE_BEATS), span[1] - time)
            degree = int(np.clip(degree + self.rng.integers(-2, 3), -3, 7))
            octave, step = divmod(degree, len(self.scale))
            pitch = self.melody_centre - (self.melody_centre - self.tonic) % 12 + 12 * octave + self.scale[step]
            notes.append(Note(float(pitch), time, duration))
            time += duration
        return notes

    def chords(self) -> list[tuple[list[int], float, float]]:
        """``(triad MIDI pitches in the bass register, onset, duration)`` per bar or half bar, following the progression."""
        length = self.bar * (0.5 if self.rng.random() < 0.3 else 1.0)
        chords, time, index = [], 0.0, 0
        seconds = self.n_samples / self.sample_rate
        while time < seconds:
            degree = self.progression[index % len(self.progression)]
            root = [self.tonic + self.scale[(degree + 2 * k) % 7] + 12 * ((degree + 2 * k) // 7) for k in range(3)]
            chords.append((root, time, min(length, seconds - time)))
            time += length
            index += 1
        return chords

    # stems -------------------------------------------------------------------------------

    def _timbre(self, n_partials: int, tilt: tuple[float, float], odd_only: bool = False) -> np.ndarray:
        k = np.arange(1, n_partials + 1)
        amplitudes = k ** -self.rng.uniform(*tilt) * self.rng.uniform(0.6, 1.0, n_partials)
        if odd_only:
            amplitudes[1::2] *= 0.08
        return wavetable(amplitudes, self.rng.uniform(0, 2 * np.pi, n_partials))

    def _render(self, notes: Sequence[Note], table: np.ndarray, attack: float, decay: float | None, release: float) -> np.ndarray:
        """Add the notes of one instrument (fixed pitch per note, optional exponential decay)."""
        out = np.zeros(self.n_samples)
        for note in notes:
            first = int(note.start * self.sample_rate)
            count = min(int(note.duration * self.sample_rate), self.n_samples - first)
            if count <= 0:
                continue
            t = np.arange(count) / self.sample_rate
            envelope = attack_release(count, int(attack * self.sample_rate), int(release * self.sample_rate))
            if decay is not None:
                envelope *= np.exp(-t / decay)
            out[first : first + count] += envelope * read_wavetable(table, midi_to_hz(note.pitch) * t + self.rng.random())
        return out

    def accompaniment(self) -> list[np.ndarray]:
        """Pad, bass, optional arpeggio and optional drums, each scaled to a random level."""
        chords = self.chords()
        pad_notes = [Note(p + 12, t, d) for pitches, t, d in chords for p in pitches]
        pad = self._render(pad_notes, self._timbre(int(self.rng.integers(4, 9)), (1.0, 2.2)), 0.08, None, 0.08)
        bass_notes = [Note(pitches[0], t + b * self.beat, self.beat) for pitches, t, d in chords for b in range(int(round(d / self.beat)))]
        bass = self._render(bass_notes, self._timbre(4, (1.2, 2.0)), 0.01, self.rng.uniform(0.2, 0.6), 0.03)
        stems = [self._level(pad, -8, 3), self._level(bass, -8, 3)]
        if self.rng.random() < 0.7:
            arp_notes = [
                Note(pitches[i % 3] + 12, t + i * self.beat / 2, self.beat / 2)
                for pitches, t, d in chords
                for i in range(int(round(2 * d / self.beat)))
            ]
            arp = self._render(arp_notes, self._timbre(int(self.rng.integers(3, 8)), (1.0, 2.5)), 0.005, self.rng.uniform(0.08, 0.3), 0.02)
            stems.append(self._level(arp, -10, 3))
        if self.rng.random() < 0.85:
            stems.append(self._level(self.drums(), -6, 3))
        return stems

    def _level(self, stem: np.ndarray, mean_db: float, spread_db: float) -> np.ndarray:
        """Scale a stem to RMS 1 over its active samples, then by a random gain around ``mean_db``."""
        gain_db = self.rng.uniform(mean_db - spread_db, mean_db + spread_db)
        if not np.any(stem):
            return stem
        active = np.abs(stem) > 1e-4 * np.max(np.abs(stem))
        rms = np.sqrt(np.mean(stem[active] ** 2))
        return stem / rms * 10 ** (gain_db / 20)

    def drums(self) -> np.ndarray:
        """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on eighths (each hit with fresh noise)."""
        sr, out = self.sample_rate, np.zeros(self.n_samples)
        t = np.arange(int(0.35 * sr)) / sr
        kick = np.sin(2 * np.pi * np.cumsum(45 + 110 * np.exp(-t / 0.04)) / sr) * np.exp(-t / 0.12)
        snare_filter = scipy.signal.butter(2, [1200, 6000], btype="band", fs=sr, output="sos")
        hat_filter = scipy.signal.butter(2, 7000, btype="high", fs=sr, output="sos")
        levels = 10 ** (self.rng.uniform(-6, 0, 3) / 20)
        n_eighths = int(self.n_samples / sr / (self.beat / 2)) + 1
        for eighth in range(n_eighths):
            first = int(eighth * self.beat / 2 * sr)
            beat, on_beat = divmod(eighth, 2)
            hits = []
            if on_beat == 0 and beat % 2 == 0:
                hits.append(levels[0] * kick)
            if on_beat == 0 and beat % 2 == 1:
                noise = self.rng.standard_normal(int(0.2 * sr))
                hits.append(levels[1] * scipy.signal.sosfilt(snare_filter, noise) * np.exp(-np.arange(len(noise)) / sr / 0.06))
            noise = self.rng.standard_normal(int(0.06 * sr))
            hits.append(0.5 * levels[2] * scipy.signal.sosfilt(hat_filter, noise) * np.exp(-np.arange(len(noise)) / sr / 0.015))
            for hit in hits:
                count = min(len(hit), self.n_samples - first)
                if count > 0:
                    out[first : first + count] += hit[:count]
        return out

    def voice(self, phrases: Sequence[tuple[float, float]]) -> np.ndarray:
        """The sung phrases: vibrato, glides and per-note vowels through 3 formant resonators."""
        sr, out = self.sample_rate, np.zeros(self.n_samples)
        vibrato_rate, vibrato_depth = self.rng.uniform(5.0, 6.0), self.rng.uniform(0.25, 0.7)
        glide = np.exp(-1.0 / (self.rng.uniform(0.04, 0.1) * sr))  # one-pole portamento in pitch
        tilt = self.rng.uniform(0.1, 0.5)
        breath = self.rng.uniform(0.02, 0.06)
        for phrase in phrases:
            notes = self.melody(phrase)
            first = int(phrase[0] * sr)
            count = min(int((phrase[1] - phrase[0]) * sr), self.n_samples - first)
            bounds = self._note_bounds(notes, phrase[0], count)
            t = np.arange(count) / sr
            target = np.repeat([note.pitch for note in notes], np.diff(bounds))
            pitch = scipy.signal.lfilter([1 - glide], [1, -glide], target, zi=[glide * target[0]])[0]
            since_onset = t - np.repeat(t[bounds[:-1]], np.diff(bounds))
            vibrato = (vibrato_depth * np.clip((since_onset - 0.12) / 0.2, 0, 1)
                       * np.sin(2 * np.pi * vibrato_rate * t + self.rng.uniform(0, 2 * np.pi)))
            drift = 0.5 * scipy.signal.lfilter([0.001], [1, -0.999], self.rng.standard_normal(count))
            increment = midi_to_hz(pitch + vibrato + drift) / sr
            source = polyblep_sawtooth(np.cumsum(increment) + self.rng.random(), increment)
            source = scipy.signal.lfilter([1 - tilt], [1, -tilt], source) + breath * self.rng.standard_normal(count)
            note_levels = np.repeat(self.rng.uniform(0.6, 1.0, len(notes)), np.diff(bounds))
            note_levels = scipy.signal.lfilter([0.002], [1, -0.998], note_levels, zi=[0.998 * note_levels[0]])[0]
            envelope = note_levels * attack_release(count, int(0.04 * sr), int(0.08 * sr))
            out[first : first + count] += self._formants(source, bounds) * envelope
        return out

    def _note_bounds(self, notes: Sequence[Note], phrase_start: float, count: int) -> np.ndarray:
        """Sample index of each note onset within a phrase of ``count`` samples, plus ``count``."""
        onsets = np.round((np.array([note.start for note in notes]) - phrase_start) * self.sample_rate).astype(np.int64)
        return np.append(np.clip(onsets, 0, count - 1), count)

    def _formants(self, source: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Cascade of three resonators (unity gain at 0 Hz); each note gets its own vowel."""
        states = [np.zeros(2) for _ in range(3)]
        out = np.empty_like(source)
        for first, last in zip(bounds[:-1], bounds[1:]):
            block = source[first:last]
            frequencies, bandwidths = VOWELS[self.vowels[self.rng.integers(len(self.vowels))]]
            for k, (frequency, bandwidth) in enumerate(zip(frequencies, bandwidths)):
                pole = np.exp(-np.pi * bandwidth / self.sample_rate)
                a1 = -2 * pole * np.cos(2 * np.pi * frequency * self.formant_scale / self.sample_rate)
                a2 = pole * pole
                block, states[k] = scipy.signal.lfilter([1 + a1 + a2], [1, a1, a2], block, zi=states[k])
            out[first:last] = block
        return out

    def lead(self, phrases: Sequence[tuple[float, float]]) -> np.ndarray:
        """An instrumental melody in the voice's register: steady pitch, no vibrato, no formants."""
        table = self._timbre(int(self.rng.integers(5, 11)), (0.8, 1.8), odd_only=bool(self.rng.random() < 0.5))
        notes = [note for phrase in phrases for note in self.melody(phrase)]
        decay = self.rng.uniform(0.4, 2.0) if self.rng.random() < 0.5 else None
        return self._render(notes, table, self.rng.uniform(0.005, 0.03), decay, 0.05)

    # mix ---------------------------------------------------------------------------------

    def render(self) -> tuple[np.ndarray, list[Segment]]:
        """The song (float32, peak ≤ 0.95) and its segments ``(start, end, is_sing)`` covering it."""
        passages = self.passages()
        sung = [p.phrase for p in passages if p.sung]
        instrumental = [p.phrase for p in passages if not p.sung and p.phrase is not None]
        accompaniment = sum(self.accompaniment())
        melody_db = self.rng.uniform(-7, -1)
        mix = accompaniment + self._level(self.voice(sung), melody_db, 2) + self._level(self.lead(instrumental), melody_db, 2)
        segments = self._segments(passages)
        # per annotated segment, so that sung and unsung frames share one level distribution
        mix = self._normalise_loudness(mix, [(start, end) for start, end, _ in segments])
        return mix.astype(np.float32), segments

    def _normalise_loudness(self, mix: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
        """Scale each span to a random RMS around the song's level, with 30 ms gain ramps between spans."""
        sr = self.sample_rate
        song_db = self.rng.uniform(-24, -16)
        gain_db = np.empty(self.n_samples)
        for start, end in spans:
            first, last = int(start * sr), int(end * sr)
            rms = np.sqrt(np.mean(mix[first:last] ** 2)) + 1e-12
            gain_db[first:last] = song_db + self.rng.uniform(-SPAN_LEVEL_SPREAD_DB, SPAN_LEVEL_SPREAD_DB) - 20 * np.log10(rms)
        gain_db[last:] = gain_db[last - 1]
        ramp = int(0.03 * sr)
        gain_db = np.convolve(np.pad(gain_db, ramp, mode="edge"), np.ones(ramp) / ramp, mode="same")[ramp:-ramp]
        mix = mix * 10 ** (gain_db / 20)
        peak = np.max(np.abs(mix))
        return mix * (0.95 / peak) if peak > 0.95 else mix

    def _segments(self, passages: Sequence[Passage]) -> list[Segment]:
        """Contiguous ``.lab`` segments: the sung phrases and the no-sing spans between them."""
        seconds = self.n_samples / self.sample_rate
        segments: list[Segment] = []
        time = 0.0
        for passage in passages:
            if passage.sung:
                onset, offset = passage.phrase  # type: ignore[misc]
                if onset > time:
                    segments.append((time, onset, False))
                segments.append((onset, offset, True))
                time = offset
        if time < seconds:
            segments.append((time, seconds, False))
        merged = segments[:1]
        for start, end, sung in segments[1:]:
            if sung == merged[-1][2]:  # consecutive sung passages form one segment
                merged[-1] = (merged[-1][0], end, sung)
            else:
                merged.append((start, end, sung))
        return merged


def split_sizes(n_songs: Mapping[str, int]) -> dict[str, int]:
    """Validate ``{split: count}`` for the three splits (each ≥ 1)."""
    if set(n_songs) != set(SPLITS) or any(int(n) < 1 for n in n_songs.values()):
        raise ValueError(f"n_songs must give ≥ 1 song for each of {SPLITS}, got {dict(n_songs)}")
    return {split: int(n_songs[split]) for split in SPLITS}


def synthetic_song_name(number: int) -> str:
    """File name of synthetic song ``number`` (1-based): Ogg Vorbis and FLAC alternate, as Jamendo mixes formats."""
    return f"{number:02d} - Synthetic Song.{'ogg' if number % 2 else 'flac'}"


def write_synthetic_corpus(
    root: str | os.PathLike, *, n_songs: Mapping[str, int], song_seconds: float, seed: int, sample_rate: int = SAMPLE_RATE
) -> dict[str, list[Song]]:
    """Write a synthetic corpus in the Jamendo-VAD layout under ``root``.

    Song ``k`` is drawn from ``numpy_rng(seed, "corpus", <its name without extension>)``, so it
    does not depend on the other songs. Jamendo's proportions are 61/16/16 songs.

    Args:
        root: corpus folder (``audio/``, ``labels/`` and ``filelists/`` are created).
        n_songs: songs per split, e.g. ``{"train": 8, "valid": 2, "test": 2}``.
        song_seconds: length of every song (≥ 6 s: two bars at the slowest tempo, so both classes occur).
        seed: global seed.
        sample_rate: sample rate of the written audio (≥ 22050 Hz).

    Returns:
        The songs per split, as :func:`jamendo_split` reads them back.
    """
    sizes = split_sizes(n_songs)
    if sample_rate < SAMPLE_RATE:
        raise ValueError(f"sample_rate must be ≥ {SAMPLE_RATE} Hz: instrument partials reach 9.4 kHz and would alias, got {sample_rate}")
    if song_seconds < MIN_SONG_SECONDS:
        raise ValueError(f"song_seconds must be ≥ {MIN_SONG_SECONDS} so that every song has sung and instrumental passages, "
                         f"got {song_seconds}")
    root = Path(root)
    for folder in ("audio", "labels", "filelists"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    number = 0
    for split, size in sizes.items():
        names = []
        for _ in range(size):
            number += 1
            name = synthetic_song_name(number)
            stem = Path(name).stem
            samples, segments = SongSynthesizer(numpy_rng(seed, "corpus", stem), song_seconds, sample_rate).render()
            subtype = "VORBIS" if name.endswith(".ogg") else "PCM_16"
            soundfile.write(root / "audio" / name, samples, sample_rate, subtype=subtype)
            write_lab(root / "labels" / f"{stem}.lab", segments)
            names.append(name)
        (root / "filelists" / split).write_text("".join(f"{name}\n" for name in names))
    return {split: jamendo_split(root, split) for split in SPLITS}
