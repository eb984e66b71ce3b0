"""HDF5 and CSV storage: atomic writes, provenance attributes, resumable batch checkpoints.

Every HDF5 file written here carries ``advxai_version``, ``stage``, ``params`` (JSON),
``params_hash`` and ``seeds`` (JSON) as root attributes. Files appear only complete: they are
written under a temporary name in the same folder, fsynced and renamed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # NFS/Lustre on clusters
import h5py  # noqa: E402

from . import __version__  # noqa: E402

PathLike = str | os.PathLike


class ProvenanceError(RuntimeError):
    """An input file was written with other parameters than the current ones."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"not JSON-serialisable: {value!r}")


def params_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 16 chars) of the canonical JSON of ``params``."""
    return hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()[:16]


def file_digest(path: PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's content, read in chunks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it to ``path``.

    On any exception the temporary file is removed, so nothing half-written is left behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _encode(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind in "UO":
        return np.asarray(value, dtype=h5py.string_dtype())
    return value


def write_h5(
    path: PathLike,
    arrays: Mapping[str, Any],
    *,
    stage: str,
    params: Mapping[str, Any],
    seeds: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write ``arrays`` (names may contain ``/`` for groups) with provenance."""
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=True) as handle:
            handle.attrs["advxai_version"] = __version__
            handle.attrs["stage"] = stage
            handle.attrs["params"] = canonical_json(dict(params))
            handle.attrs["params_hash"] = params_hash(params)
            handle.attrs["seeds"] = canonical_json(dict(seeds or {}))
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value if not isinstance(value, (dict, list)) else canonical_json(value)
            for name, value in arrays.items():
                # no timestamps: a rerun writes identical bytes (h5py's default too, stated for the reader)
                handle.create_dataset(name, data=_encode(value), track_times=False)


def _decode(data: np.ndarray) -> np.ndarray:
    if data.dtype.kind == "O" or h5py.check_string_dtype(data.dtype) is not None:
        return np.array([v.decode() if isinstance(v, bytes) else v for v in data.ravel()], dtype=str).reshape(data.shape)
    return data


def _open_input(path: PathLike) -> h5py.File:
    """An input file opened for reading; a missing one is named."""
    if not Path(path).exists():
        raise FileNotFoundError(f"missing input file: {path}")
    return h5py.File(path, "r")


def _datasets_under(group: h5py.Group) -> list[str]:
    """Full names of the datasets below ``group``, without reading them."""
    names: list[str] = []
    group.visititems(lambda name, obj: names.append(f"{group.name}/{name}".lstrip("/")) if isinstance(obj, h5py.Dataset) else None)
    return names


def _dataset(handle: h5py.File, name: str) -> h5py.Dataset:
    if name not in handle:
        raise KeyError(f"{handle.filename}: no dataset '{name}'")
    return handle[name]


def read_h5(path: PathLike, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read datasets (all, or ``names``) of an HDF5 file into NumPy arrays; strings as ``str``."""
    out: dict[str, np.ndarray] = {}
    with _open_input(path) as handle:
        for name in _datasets_under(handle) if names is None else names:
            dataset = _dataset(handle, name)
            out[name] = _decode(dataset[()] if dataset.ndim == 0 else dataset[...])
    return out


def read_h5_rows(path: PathLike, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``rows`` (distinct, in any order) of datasets ``names``, along their first axis, reading no others.

    A shard job reads its items a batch at a time this way, so that its memory does not grow with
    the shard (benchmarks/shard_memory.py).
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    increasing = rows[order]
    if np.any(np.diff(increasing) == 0):
        raise ValueError(f"{path}: rows must be distinct")
    out: dict[str, np.ndarray] = {}
    with _open_input(path) as handle:
        for name in names:
            dataset = _dataset(handle, name)
            if not len(rows):
                data = np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
            elif increasing[-1] - increasing[0] + 1 == len(rows):  # a contiguous run: one slice
                data = dataset[int(increasing[0]) : int(increasing[-1]) + 1]
            else:
                data = dataset[increasing]  # h5py selects increasing rows only
            restored = np.empty_like(data)
            restored[order] = data
            out[name] = _decode(restored)
    return out


def dataset_names(path: PathLike, group: str) -> list[str]:
    """Full names of the datasets under ``group`` (none if it is absent), without reading them."""
    with _open_input(path) as handle:
        return _datasets_under(handle[group]) if group in handle else []


def dataset_shape(path: PathLike, name: str) -> tuple[int, ...]:
    """The shape of one dataset, without reading it."""
    with _open_input(path) as handle:
        return tuple(_dataset(handle, name).shape)


def read_provenance(path: PathLike) -> dict[str, Any]:
    """The provenance attributes of an HDF5 file, with ``params`` and ``seeds`` parsed."""
    with _open_input(path) as handle:
        attrs = dict(handle.attrs)
    for key in ("params", "seeds"):
        if key in attrs:
            attrs[key] = json.loads(attrs[key])
    return attrs


def require_params(path: PathLike, expected: Mapping[str, Any]) -> None:
    """Fail if ``path`` was written with parameters that differ from ``expected`` on shared keys."""
    written = read_provenance(path).get("params", {})
    differing = {k: (written[k], v) for k, v in expected.items() if k in written and canonical_json(written[k]) != canonical_json(v)}
    if differing:
        lines = ", ".join(f"{k}: file has {a!r}, config implies {b!r}" for k, (a, b) in differing.items())
        raise ProvenanceError(f"{path} was written with other parameters ({lines}); rerun its producing rule")


def write_csv(frame, path: PathLike) -> None:
    """Atomically write a pandas DataFrame as CSV (no index)."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)


def write_text(text: str, path: PathLike) -> None:
    """Atomically write a text file."""
    with atomic_path(path, suffix=Path(path).suffix or ".txt") as tmp:
        tmp.write_text(text)


class BatchCheckpoint:
    """Finished batches of a long job, kept in a side file ``<output>.partial.h5``.

    A rerun after a kill loads the finished batches and computes only the rest. The side file is
    tied to the job's parameters and to the content of its ``inputs``: with other parameters, or
    after an input was rewritten (a changed upstream stage), it is discarded. Batches are kept
    per batch size, so a rerun at another size computes afresh. Each batch is appended under its
    own group and flushed, so a kill loses at most the batch in progress.
    """

    def __init__(self, output: PathLike, params: Mapping[str, Any], inputs: Sequence[PathLike] = ()):
        self.path = Path(f"{output}.partial.h5")
        # the inputs' content, not their paths: moving the data keeps the finished batches
        self.hash = params_hash({"params": dict(params), "inputs": [file_digest(path) for path in inputs]})
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as handle:
                    stale = handle.attrs.get("params_hash") != self.hash
            except OSError:  # a kill during the very first write
                stale = True
            if stale:
                self.path.unlink()

    def _open(self, mode: str) -> h5py.File:
        handle = h5py.File(self.path, mode)
        if "params_hash" not in handle.attrs and mode != "r":
            handle.attrs["params_hash"] = self.hash
        return handle

    def keys(self) -> set[str]:
        if not self.path.exists():
            return set()
        try:
            with h5py.File(self.path, "r") as handle:
                return {k for k in handle.keys() if handle[k].attrs.get("complete", False)}
        except OSError:
            self.path.unlink()
            return set()

    def load(self, key: str) -> dict[str, np.ndarray]:
        """A finished batch's arrays, in the order ``compute`` returned them: the final file is then
        written in the same order, and so byte-identical, whether batches were resumed or not."""
        out: dict[str, np.ndarray] = {}
        with h5py.File(self.path, "r") as handle:
            group = handle[key]
            group.visititems(lambda name, obj: out.__setitem__(name, _decode(obj[...])) if isinstance(obj, h5py.Dataset) else None)
            order = json.loads(group.attrs.get("order", "[]")) or list(out)
        return {name: out[name] for name in order}

    def save(self, key: str, arrays: Mapping[str, Any]) -> None:
        with self._open("a") as handle:
            if key in handle:
                del handle[key]
            group = handle.create_group(key)
            for name, value in arrays.items():
                group.create_dataset(name, data=_encode(value), track_times=False)
            group.attrs["order"] = json.dumps(list(arrays))
            group.attrs["complete"] = True
            handle.flush()

    def kept(self, name: str, decide: Callable[[], int]) -> int:
        """A number decided once per job, such as a measured batch size.

        The value a killed run of this job decided, from the side file; else ``decide()``, saved
        there, so that a resumed job continues with the value (and so the batches) it began with.
        """
        key = f"kept:{name}"
        if self.path.exists():
            with h5py.File(self.path, "r") as handle:
                if key in handle.attrs:
                    return int(handle.attrs[key])
        value = int(decide())
        with self._open("a") as handle:
            handle.attrs[key] = value
        return value

    def run(self, n_items: int, batch_size: int, compute) -> dict[str, np.ndarray]:
        """``compute(slice)`` for consecutive batches, reusing finished ones; results concatenated.

        ``compute`` returns a dict of arrays whose first axis is the batch; keys may contain ``/``.
        """
        finished = self.keys()
        parts: list[dict[str, np.ndarray]] = []
        for start in tqdm(range(0, n_items, batch_size), desc=self.path.name.removesuffix(".partial.h5"), unit="batch"):
            key = f"batch{start:09d}_size{batch_size}"  # a batch of another shape need not give identical values
            if key in finished:
                parts.append(self.load(key))
                continue
            arrays = compute(slice(start, min(start + batch_size, n_items)))
            self.save(key, arrays)
            parts.append(arrays)
        if not parts:
            return {}
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()
