"""Darknet models: a ``.cfg`` with its ``.weights`` (and class names) beside it."""

from __future__ import annotations

from pathlib import Path

from studio.complexity import torch_gflops, torch_params
from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec


def _pair(path: Path) -> tuple[Path, Path]:
    cfg, weights = path.with_suffix(".cfg"), path.with_suffix(".weights")
    missing = weights if path.suffix.lower() == ".cfg" else cfg
    if not missing.exists():
        raise BadInputError(f"a Darknet model needs {missing.name} beside it", path=path,
                            fix="put the .cfg and .weights with the same name in one folder")
    return cfg, weights


def _labels(cfg: Path, count: int) -> tuple[str, ...]:
    for candidate in [cfg.with_suffix(".names"), *sorted(cfg.parent.glob("*.names"))]:
        if candidate.exists():
            names = [line.strip() for line in candidate.read_text(errors="replace").splitlines() if line.strip()]
            if len(names) == count:
                return tuple(names)
    return tuple(f"class{i}" for i in range(count))


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    from studio.nets.darknet import DarknetNet, load_weights
    from studio.nets.darknet_cfg import parse_cfg

    cfg, weights = _pair(path)
    sections = parse_cfg(cfg)
    if not any(section.kind == "yolo" for section in sections):
        raise BadInputError("the .cfg has no [yolo] layer: only Darknet YOLO detectors are supported", path=cfg,
                            fix="give a YOLO .cfg (yolov3, yolov3-tiny, yolov4-tiny)")
    # The file's float32 values after its header (16 or 20 bytes): the most the .cfg may declare.
    model = DarknetNet(sections, cfg, max_params=max(weights.stat().st_size - 16, 0) // 4)
    load_weights(model, weights)
    model = model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    height, width = model.input_size
    gflops, method = torch_gflops(model, (1, model.in_channels, height, width))
    return ModelHandle(
        name=cfg.stem,
        format="darknet",
        task=Task.DETECT,
        decoder="darknet",
        labels=_labels(cfg, model.num_classes),
        # OpenCV's blobFromImage(1/255, size, swapRB=True): a plain resize, no letterbox.
        image_input=ImageInput(size=(height, width), resize=Resize.STRETCH),
        inputs=(TensorSpec("images", (1, model.in_channels, height, width), "float32"),),
        outputs=(TensorSpec("detections", (1, "rows", 5 + model.num_classes), "float32"),),
        size_bytes=cfg.stat().st_size + weights.stat().st_size,
        provenance=Provenance(path=str(cfg.resolve()), sha256=sha256_file(cfg, weights), loader="darknet"),
        params=torch_params(model),
        gflops=gflops,
        gflops_method=method,
        source_paths=(cfg, weights),
        torch_module=model,
        metadata={"family": "darknet"},
    )
