"""Fixed in-workdir names for data folders that lie elsewhere (see docs/data.md).

Jobs reach an external data set through a link in the working directory, ``data/imagenet`` or
``data/jamendo``, never through the configured path: no job's parameters or input names carry
the folder's location, so moving the data (same content) reruns nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def link_data_root(link: str | Path, target: str | Path) -> None:
    """Make ``link`` a symbolic link to the absolute path of ``target``; a no-op where it already is.

    The link is replaced atomically (a new link renamed over the old one), so jobs that read
    through it never see it missing.

    Raises:
        FileExistsError: ``link`` exists and is not a symbolic link (it is never overwritten).
    """
    link = Path(link)
    target = os.path.abspath(target)
    if link.is_symlink():
        if os.readlink(link) == target:
            return
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a link; the workflow keeps it as a link to the configured data folder")
    link.parent.mkdir(parents=True, exist_ok=True)
    staged = link.with_name(f".{link.name}.{os.getpid()}.link")
    staged.unlink(missing_ok=True)
    os.symlink(target, staged, target_is_directory=True)
    os.replace(staged, link)
