"""Ultralytics' own exporter for the formats it knows (TFLite through LiteRT, CoreML): it handles
its detection heads (normalised boxes for TFLite, image inputs for CoreML) the way its users expect."""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from studio.model import ModelHandle


def ultralytics_export(model: ModelHandle, fmt: str, target: Path, **overrides) -> Path:
    """Run Ultralytics' exporter on a private copy of the module; move its output to ``target``."""
    from ultralytics.engine.exporter import Exporter
    from ultralytics.utils import LOGGER

    workdir = Path(tempfile.mkdtemp(prefix=f".{fmt}-", dir=target.parent))
    module = copy.deepcopy(model.torch_module)
    module.pt_path = str(workdir / "model.pt")  # the exporter names its output after this path
    size = model.image_input.size if model.image_input else (640, 640)
    settings = {"format": fmt, "imgsz": list(size), "batch": 1, "device": "cpu", "verbose": False, **overrides}
    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            produced = Path(Exporter(overrides=settings)(model=module))
        shutil.move(str(produced), str(target))
        return target
    finally:
        LOGGER.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)
