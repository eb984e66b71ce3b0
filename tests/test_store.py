"""Storage: atomic writes, provenance, parameter checks, and resumable batch checkpoints."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from messages import exactly

from advxai import __version__, seeding
from advxai.store import (
    BatchCheckpoint,
    ProvenanceError,
    atomic_path,
    canonical_json,
    dataset_names,
    dataset_shape,
    file_digest,
    read_h5,
    read_h5_rows,
    read_provenance,
    require_params,
    write_csv,
    write_h5,
)


def test_write_and_read_round_trip_with_provenance(tmp_path):
    path = tmp_path / "out.h5"
    arrays = {"ids": np.array(["a", "b"]), "group/values": np.arange(6.0).reshape(2, 3), "count": 3, "Xray": np.ones(1)}
    write_h5(path, arrays, stage="demo", params={"k": 3, "names": ["x"]}, seeds={"seed": 1})
    back = read_h5(path)
    assert sorted(back) == ["Xray", "count", "group/values", "ids"]  # every name as written
    assert back["ids"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(back["group/values"], arrays["group/values"])
    assert type(back["count"]) is np.int64 and back["count"] == 3  # a scalar comes back a NumPy scalar, not a 0-d array
    provenance = read_provenance(path)
    assert provenance["advxai_version"] == __version__
    assert provenance["stage"] == "demo" and provenance["params"] == {"k": 3, "names": ["x"]} and provenance["seeds"] == {"seed": 1}
    assert len(provenance["params_hash"]) == 16
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]  # no temporary file left behind


def test_identical_writes_are_identical_bytes(tmp_path):
    for name in ("a.h5", "b.h5"):
        write_h5(tmp_path / name, {"x": np.arange(4)}, stage="s", params={"p": 1})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_require_params_lists_every_differing_key(tmp_path):
    path = tmp_path / "x.h5"
    write_h5(path, {"x": np.zeros(1)}, stage="s", params={"epsilon": 0.05, "steps": 10, "same": 1})
    message = (f"{path} was written with other parameters (epsilon: file has 0.05, config implies 0.1, "
               "steps: file has 10, config implies 20); rerun its producing rule")
    with pytest.raises(ProvenanceError, match=exactly(message)):
        require_params(path, {"epsilon": 0.1, "steps": 20, "same": 1})


def test_dataset_names_of_an_absent_group_are_none(tmp_path):
    write_h5(tmp_path / "x.h5", {"scores/sal": np.zeros(1)}, stage="s", params={})
    assert dataset_names(tmp_path / "x.h5", "scores") == ["scores/sal"] and dataset_names(tmp_path / "x.h5", "flips") == []


def test_checkpoint_ignores_unfinished_batches_and_stores_no_times(tmp_path, capsys):
    checkpoint = BatchCheckpoint(tmp_path / "adversaries.h5", {"p": 1})
    result = checkpoint.run(3, 2, lambda rows: {"b": np.arange(rows.start, rows.stop), "a": np.zeros(rows.stop - rows.start)})
    assert list(result) == ["b", "a"] and result["b"].tolist() == [0, 1, 2]
    progress = capsys.readouterr().err
    assert "adversaries.h5: 100%" in progress and "batch/s]" in progress  # named after the output, counted in batches
    with h5py.File(checkpoint.path, "a") as handle:
        assert h5py.h5o.get_info(handle["batch000000000_size2/b"].id).ctime == 0  # no timestamps: identical bytes on a rerun
        handle.create_group("unfinished").create_dataset("b", data=np.zeros(1))  # a save killed before "complete"
        unordered = handle.create_group("foreign")
        unordered.create_dataset("x", data=np.ones(1))
        unordered.attrs["complete"] = True
    assert checkpoint.keys() == {"batch000000000_size2", "batch000000002_size2", "foreign"}
    assert list(checkpoint.load("foreign")) == ["x"]  # a batch saved without its order: the stored order


def test_require_params_names_the_file_and_both_values(tmp_path):
    path = tmp_path / "x.h5"
    write_h5(path, {"x": np.zeros(1)}, stage="s", params={"epsilon": 0.05})
    require_params(path, {"epsilon": 0.05, "other": 1})
    with pytest.raises(ProvenanceError, match=r"x\.h5.*epsilon: file has 0\.05, config implies 0\.1"):
        require_params(path, {"epsilon": 0.1})


@pytest.mark.parametrize("reader", [
    read_h5, read_provenance, lambda path: dataset_shape(path, "x"), lambda path: dataset_names(path, "scores"),
    lambda path: read_h5_rows(path, ["x"], np.arange(2)),
])
def test_missing_file_is_named(tmp_path, reader):
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        reader(tmp_path / "nothere.h5")


def test_missing_dataset_is_named_with_its_file(tmp_path):
    path = tmp_path / "some.h5"
    write_h5(path, {"x": np.zeros((2, 3))}, stage="test", params={})
    assert dataset_shape(path, "x") == (2, 3)
    for read in (lambda: dataset_shape(path, "y"), lambda: read_h5(path, ["y"]), lambda: read_h5_rows(path, ["y"], np.arange(1))):
        with pytest.raises(KeyError, match=r"some\.h5: no dataset 'y'"):
            read()


def test_write_csv(tmp_path):
    write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"


def _compute(calls):
    def compute(part: slice):
        calls.append(part.start)
        rng = seeding.numpy_rng(0, "test", part.start)
        return {"values": rng.random((part.stop - part.start, 2)), "nested/ids": np.arange(part.start, part.stop)}

    return compute


def test_batch_checkpoint_resumes_to_the_identical_result(tmp_path):
    output = tmp_path / "out.h5"
    reference = BatchCheckpoint(tmp_path / "ref.h5", {"p": 1}).run(10, 3, _compute([]))

    calls: list[int] = []
    checkpoint = BatchCheckpoint(output, {"p": 1})
    compute = _compute(calls)

    def killed_after_two(part):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed during its third batch
        return compute(part)

    with pytest.raises(KeyboardInterrupt):
        checkpoint.run(10, 3, killed_after_two)
    calls.clear()
    resumed = BatchCheckpoint(output, {"p": 1}).run(10, 3, compute)
    assert calls == [6, 9]  # only the unfinished batches were computed again
    assert list(resumed) == list(reference) == ["values", "nested/ids"]  # compute's order, not HDF5's
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name])
    # so the final file is byte-identical to an uninterrupted run's
    write_h5(tmp_path / "a.h5", reference, stage="s", params={})
    write_h5(tmp_path / "b.h5", resumed, stage="s", params={})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_batch_checkpoint_with_other_params_starts_afresh(tmp_path):
    output = tmp_path / "out.h5"
    BatchCheckpoint(output, {"p": 1}).run(4, 2, _compute([]))
    calls: list[int] = []
    BatchCheckpoint(output, {"p": 2}).run(4, 2, _compute(calls))
    assert calls == [0, 2]


def test_file_digest_is_the_sha256_of_the_whole_file(tmp_path):
    path = tmp_path / "data.bin"
    content = np.random.default_rng(0).bytes(3 * 4096 + 17)  # not a whole number of chunks
    path.write_bytes(content)
    assert file_digest(path, chunk_bytes=4096) == hashlib.sha256(content).hexdigest()


def test_batch_checkpoint_of_other_input_content_starts_afresh(tmp_path):
    """A side file left by a killed job is reused only while its inputs hold the same bytes."""
    output, source = tmp_path / "out.h5", tmp_path / "input.h5"
    source.write_bytes(b"adversaries of the first attack")
    BatchCheckpoint(output, {"p": 1}, inputs=[source]).run(4, 2, _compute([]))
    moved = source.rename(tmp_path / "moved.h5")
    calls: list[int] = []
    BatchCheckpoint(output, {"p": 1}, inputs=[moved]).run(4, 2, _compute(calls))
    assert calls == []  # the same content in another folder: moving the data keeps the batches
    moved.write_bytes(b"adversaries of a rerun attack")
    BatchCheckpoint(output, {"p": 1}, inputs=[moved]).run(4, 2, _compute(calls))
    assert calls == [0, 2]


def test_batch_checkpoint_at_another_batch_size_computes_every_batch(tmp_path):
    output = tmp_path / "out.h5"
    BatchCheckpoint(output, {"p": 1}).run(6, 2, _compute([]))
    calls: list[int] = []
    resumed = BatchCheckpoint(output, {"p": 1}).run(6, 3, _compute(calls))
    assert calls == [0, 3]
    reference = BatchCheckpoint(tmp_path / "ref.h5", {"p": 1}).run(6, 3, _compute([]))
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name])


def test_batch_checkpoint_keeps_a_decided_value_until_its_params_change(tmp_path):
    output = tmp_path / "out.h5"
    assert BatchCheckpoint(output, {"p": 1}).kept("batch_size", lambda: 16) == 16
    assert BatchCheckpoint(output, {"p": 1}).kept("batch_size", lambda: 4) == 16  # a resumed job
    assert BatchCheckpoint(output, {"p": 2}).kept("batch_size", lambda: 4) == 4  # other params: decided afresh


def test_rows_are_read_in_the_order_asked_and_nothing_else(tmp_path):
    path = tmp_path / "rows.h5"
    values = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    write_h5(path, {"ids": [f"i{k}" for k in range(6)], "values": values}, stage="test", params={})
    for rows in ([4, 1, 3], [2, 3, 4], [3, 0], [5], []):
        read = read_h5_rows(path, ["ids", "values"], np.array(rows, dtype=int))
        np.testing.assert_array_equal(read["values"], values[rows].reshape(len(rows), 2, 2))
        assert read["values"].dtype == np.float32
        assert read["ids"].tolist() == [f"i{k}" for k in rows]
    with pytest.raises(ValueError, match="distinct"):
        read_h5_rows(path, ["values"], np.array([1, 1]))
    with pytest.raises(KeyError, match="no dataset 'missing'"):
        read_h5_rows(path, ["missing"], np.array([0]))


def test_canonical_json_of_numpy_scalars_and_paths():
    assert canonical_json({"b": np.int64(3), "a": Path("x/y.h5"), "c": np.float32(0.5)}) == '{"a":"x/y.h5","b":3,"c":0.5}'
    with pytest.raises(TypeError, match=exactly("not JSON-serialisable: {1}")):
        canonical_json({"a": {1}})


def test_a_checkpoint_torn_by_a_kill_is_discarded_and_foreign_files_are_read(tmp_path):
    (tmp_path / "out.h5.partial.h5").write_bytes(b"\x89HDF\r\n torn")  # killed during its very first write
    checkpoint = BatchCheckpoint(tmp_path / "out.h5", {"p": 1})
    assert not checkpoint.path.exists()
    assert checkpoint.run(2, 2, lambda rows: {"x": np.arange(rows.start, rows.stop)})["x"].tolist() == [0, 1]
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:  # written by another tool: no provenance
        handle["ids"] = np.array(["é", "b"], dtype=h5py.string_dtype())
    require_params(tmp_path / "foreign.h5", {"epsilon": 0.1})  # nothing to compare
    assert read_h5(tmp_path / "foreign.h5")["ids"].tolist() == ["é", "b"]
