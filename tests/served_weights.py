"""Weights served from a local HTTP server for the workflow tests (tests/test_weights.py, tests/test_slurm.py):
random-weight state dicts saved under names that carry their real sha256 prefix, as torchvision's do."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import torch

from advxai.models import load_model

OFFLINE = Path(__file__).resolve().parent / "offline"
"""A sitecustomize folder: on PYTHONPATH, workflow jobs (but image_weights) may not open a socket."""


class WeightsServer:
    """Files of `folder` over HTTP on 127.0.0.1; `requests` lists the paths asked for."""

    def __init__(self, folder: Path):
        self.folder, self.requests = folder, []
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                served.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"


def save_hashed(state: dict, folder: Path, stem: str) -> Path:
    """`state` saved as <stem>-<its sha256 prefix>.pth: a name that carries its real hash, as torchvision's do."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{stem}.tmp"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"{stem}-{digest[:8]}.pth")


@functools.cache
def random_resnet18() -> dict:
    """The random weights that the test preset's tiny model (resnet18, weights null) builds itself."""
    return load_model("resnet18", weights=None).module.state_dict()


def served_overlay(folder: Path, server: WeightsServer, file: Path, image_only: bool = False) -> Path:
    """presets/test.yaml's tiny model with 'IMAGENET1K_V1' weights served from `server` (the random weights it has)."""
    overlay = folder / "served-weights.yaml"
    overlay.write_text(f"image:\n  models:\n    tiny:\n      weights: IMAGENET1K_V1\n      weights_url: {server.url(file.name)}\n"
                       + ("audio:\n  enabled: false\n" if image_only else ""))
    return overlay
