"""The ONNX graph the studio's ORT runtime runs for a PyTorch model, exported once and cached.

Ultralytics models go through Ultralytics' own exporter (dynamic height/width, so frames run at the
smallest letterboxed rectangle); other modules through ``torch.onnx.export`` at their fixed size.
The cache key is the source file's hash plus everything that changes the graph, so an edited file
or a new library version exports anew. Files are written to a temporary name, then renamed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

from studio.errors import UnsupportedError
from studio.model import ModelHandle
from studio.paths import cache_dir

OPSET = 18  # STACK.md: Ultralytics' default here; every runtime the studio targets reads it


def _versions() -> str:
    import onnx
    import torch

    parts = [f"torch{torch.__version__}", f"onnx{onnx.__version__}", f"opset{OPSET}"]
    with contextlib.suppress(ImportError):
        import ultralytics

        parts.append(f"ultralytics{ultralytics.__version__}")
    return "-".join(parts)


def cached_onnx_path(handle: ModelHandle) -> Path:
    from studio import __version__

    # The module's printed structure is part of the key: the same weights built differently (a loader
    # fix, another activation) must not reuse a graph exported from the old structure.
    structure = hashlib.sha256(repr(handle.torch_module).encode()).hexdigest()
    head = "end2end" if handle.metadata.get("end2end") == "True" else "one2many"  # graphs before nms=False differ
    parts = f"{handle.provenance.sha256}|{handle.format}|{structure}|{_versions()}|studio{__version__}|{head}"
    key = hashlib.sha256(parts.encode()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{handle.name}-{key}.onnx"


def ensure_onnx(handle: ModelHandle) -> Path:
    """Path of an ONNX graph equivalent to ``handle``; exports (and caches) it when needed."""
    if handle.onnx_path is not None:
        return handle.onnx_path
    if handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} has neither an ONNX graph nor a PyTorch module to export")
    target = cached_onnx_path(handle)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        exporter = _export_ultralytics if handle.metadata.get("family") == "ultralytics" else _export_torch
        with warnings.catch_warnings():  # the TorchScript exporter's notes are not the user's concern
            warnings.simplefilter("ignore")
            produced = exporter(handle, Path(tmp))
        os.replace(produced, target)
    return target


def _export_ultralytics(handle: ModelHandle, workdir: Path) -> Path:
    from ultralytics.engine.exporter import Exporter
    from ultralytics.utils import LOGGER

    module = copy.deepcopy(handle.torch_module)  # the exporter fuses layers in place; the handle stays intact
    module.pt_path = str(workdir / "model.pt")  # the exporter names its output after this path
    size = handle.image_input.size if handle.image_input else (640, 640)
    # RT-DETR is exported at its one size, as Ultralytics exports it: its anchors and top-k are made for that grid.
    dynamic = handle.decoder != "rtdetr"
    overrides = {"format": "onnx", "imgsz": list(size), "dynamic": dynamic, "simplify": True, "opset": OPSET,
                 "batch": 1, "device": "cpu", "verbose": False}
    if handle.decoder == "yolo-end2end" or handle.metadata.get("end2end") == "True":
        # Ultralytics' exporter writes the one-to-many head unless nms=False; the handle decodes the NMS-free rows.
        overrides["nms"] = False
    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        return Path(Exporter(overrides=overrides)(model=module))
    finally:
        LOGGER.setLevel(level)


def _export_torch(handle: ModelHandle, workdir: Path) -> Path:
    import onnx
    import onnxslim
    import torch

    shape = tuple(int(d) for d in handle.inputs[0].shape)
    output = workdir / "model.onnx"
    names = [spec.name for spec in handle.outputs] or ["output0"]
    with torch.inference_mode():
        torch.onnx.export(copy.deepcopy(handle.torch_module).eval(), (torch.zeros(shape),), str(output),
                          opset_version=OPSET, input_names=[handle.inputs[0].name], output_names=names,
                          dynamo=False)
    onnx.save(onnxslim.slim(onnx.load(str(output))), str(output))
    return output
