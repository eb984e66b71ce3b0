"""Weights as workflow inputs (advxai.weights, rule image_weights): fetched once from a local HTTP
server, verified against the sha256 prefix in their names, read by model jobs that never touch
the network (tests/offline/sitecustomize.py), and recorded in every model output's provenance."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, snakemake
from served_weights import (
    OFFLINE,
    WeightsServer,
    random_resnet18,
    save_hashed,
    served_overlay,
)

from advxai import weights
from advxai.models import load_model
from advxai.store import read_provenance


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    server = WeightsServer(folder)
    yield server, save_hashed(random_resnet18(), folder, "resnet18")
    server.server.shutdown()


def test_weight_urls_read_from_sources_are_torchvision_s():
    import torchvision

    urls = weights.torchvision_weight_urls()
    for name in torchvision.models.list_models(module=torchvision.models):
        enum = torchvision.models.get_model_weights(name)
        assert urls[name] == {**{member.name: member.url for member in enum}, "DEFAULT": enum.DEFAULT.url}, name
    assert weights.weights_url("resnet50", "IMAGENET1K_V1") == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert weights.weights_url("resnet50", None) is weights.weights_url("efficientnet_lite0", "DEFAULT") is None
    with pytest.raises(weights.WeightsError, match="unknown weights 'V9'"):
        weights.weights_url("resnet50", "V9")


def test_a_truncated_or_unnamed_file_is_one_error_naming_it(tmp_path, served):
    _, file = served
    copy = tmp_path / file.name
    copy.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(weights.WeightsError, match=f"{copy}.*corrupt or truncated"):
        weights.verify_weights(copy)
    with pytest.raises(weights.WeightsError, match="carries no sha256 prefix"):
        weights.verify_weights(tmp_path / "resnet18.pth")
    with pytest.raises(weights.WeightsError, match=f"{copy}.*corrupt or truncated"):
        load_model("resnet18", "IMAGENET1K_V1", weights_file=str(copy))


def test_fetch_downloads_once_and_takes_a_file_already_there(tmp_path, served, monkeypatch):
    server, file = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    output = tmp_path / "resources" / file.name
    before = len(server.requests)
    digest = weights.fetch_weights(server.url(file.name), output)
    assert digest == hashlib.sha256(file.read_bytes()).hexdigest() and output.read_bytes() == file.read_bytes()
    assert len(server.requests) == before + 1
    assert weights.fetch_weights(server.url(file.name), output) == digest  # already there: no request
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / file.name  # in $TORCH_HOME: copied, no request
    cached.parent.mkdir(parents=True)
    output.rename(cached)
    assert weights.fetch_weights(server.url(file.name), output) == digest and output.is_file()
    assert len(server.requests) == before + 1


def test_a_bad_download_leaves_nothing_and_names_the_url(tmp_path, served):
    server, file = served
    wrong = file.parent / "resnet18-00000000.pth"
    wrong.write_bytes(file.read_bytes())
    output = tmp_path / wrong.name
    with pytest.raises(weights.WeightsError, match=f"{server.url(wrong.name)}.*corrupt or truncated"):
        weights.fetch_weights(server.url(wrong.name), output)
    assert list(tmp_path.iterdir()) == []


def test_a_model_loads_its_weights_file_without_the_network(served, monkeypatch):
    _, file = served

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading a weights file")

    monkeypatch.setattr("socket.socket.connect", refuse)
    bundle = load_model("resnet18", "IMAGENET1K_V1", weights_file=str(file))
    loaded = bundle.module.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in random_resnet18().items())
    assert bundle.weights == {"source": "torchvision", "name": "IMAGENET1K_V1", "file": file.name,
                              "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}


def test_serving_a_weights_file_leaves_torch_hub_s_cache_to_torch_home(tmp_path, served, monkeypatch):
    """After a model loads its file, $TORCH_HOME decides torch.hub's cache again (it is not pinned)."""
    _, file = served
    load_model("resnet18", "IMAGENET1K_V1", weights_file=str(file))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")


def tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 224 * 224, 4))


def test_plug_ins_record_a_digest_of_their_state_and_random_weights_record_none():
    bundle = load_model(f"{__name__}:tiny_module", weights=None)
    state = tiny_module().state_dict()
    assert bundle.weights["source"] == "plug-in" and bundle.weights["sha256"] == weights.state_digest(state)
    state["1.bias"] = state["1.bias"] + 1
    assert weights.state_digest(state) != bundle.weights["sha256"]
    assert load_model("resnet18", weights=None).weights == {"source": "random", "name": None, "file": None, "sha256": None}


def test_the_offline_guard_refuses_a_job_s_connection(tmp_path, served):
    """Negative control: the guard of the workflow test does refuse a job script's request."""
    server, file = served
    scripts = tmp_path / ".snakemake" / "scripts"
    scripts.mkdir(parents=True)
    for rule, refused in (("clean_predictions", True), ("image_weights", False)):
        script = scripts / f"tmpabc123.{rule}.py"
        script.write_text(f"import urllib.request\nurllib.request.urlopen({server.url(file.name)!r}).read()\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(OFFLINE), os.environ.get("PYTHONPATH", "")])}
        result = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, env=env, timeout=60)
        assert (result.returncode != 0 and "network access in workflow job" in result.stderr) == refused, result.stderr


@pytest.mark.workflow
def test_model_jobs_read_the_fetched_file_offline_and_record_its_hash(tmp_path, served, monkeypatch):
    server, file = served
    workdir = tmp_path / "work"
    log = tmp_path / "offline.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(OFFLINE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ADVXAI_OFFLINE_LOG", str(log))
    before = len(server.requests)
    outputs = ["image/tiny/clean/shard0.h5", "image/tiny/adversaries/shard0.h5"]
    snakemake(workdir, *outputs, overlay=str(served_overlay(tmp_path, server, file, image_only=True)))
    assert len(server.requests) == before + 1 and not log.exists()
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert (workdir / weights.WEIGHTS_FOLDER / file.name).read_bytes() == file.read_bytes()
    for output in outputs:
        record = read_provenance(workdir / output)
        assert '"sha256":"' + digest + '"' in record["weights"] and record["device"] == "cpu", output

