"""What every workflow job does first: log to its log file, size its threads, pick its device."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but no CUDA device is visible")
    return torch.device(device)


@contextlib.contextmanager
def job(log_path: str | None, threads: int = 1) -> Iterator[logging.Logger]:
    """Redirect stdout/stderr (tqdm progress included) to ``log_path`` and set torch's threads."""
    torch.set_num_threads(max(1, int(threads)))
    if not log_path:
        yield logging.getLogger("advxai")
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
        logger = logging.getLogger("advxai")
        try:
            yield logger
        except BaseException:
            logger.exception("job failed")
            raise
