"""The audio stages that run no model: generate the synthetic corpus and list a corpus's songs.

One function per workflow rule, like :mod:`advxai.stages.audio`, but without torch, so that
these jobs start without a torch import's seconds of CPU (benchmarks/job_startup.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ..constants import SPLITS
from ..data.jamendo import validate_jamendo
from ..data.synthetic_audio import write_synthetic_corpus
from ..store import write_csv
from .settings import CorpusSettings


def write_corpus(output_dir: str, *, corpus: CorpusSettings) -> None:
    """Generate the synthetic corpus into a temporary folder, then rename it into place."""
    target = Path(output_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write_synthetic_corpus(tmp, n_songs=dict(corpus.songs), song_seconds=corpus.seconds, seed=corpus.seed)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_manifest(root: str, output: str) -> None:
    """Validate a corpus in Jamendo's layout (every file, every .lab line, decoding) and list it.

    Paths are relative to ``root``, so that the manifest, and everything made from it, is the same
    wherever the corpus lies (see docs/data.md).
    """
    splits = validate_jamendo(root, decode=True)
    rows = [
        {"split": split, "name": song.name, "audio_path": song.audio_path.relative_to(root).as_posix(),
         "label_path": song.label_path.relative_to(root).as_posix()}
        for split in SPLITS
        for song in splits[split]
    ]
    write_csv(pd.DataFrame(rows, columns=["split", "name", "audio_path", "label_path"]), output)
