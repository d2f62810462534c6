"""Bare weight files (.pth, .bin, .safetensors): refused with the reason, since they hold no architecture."""

from __future__ import annotations

from pathlib import Path

from studio.errors import UnsupportedError
from studio.model import ModelHandle


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    raise UnsupportedError(
        "this file holds weights without the network that uses them",
        path=path,
        fix="export the model to ONNX in the code that defines it (torch.onnx.export), or save an Ultralytics .pt",
    )
