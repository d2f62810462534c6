"""Ultralytics model definitions (``yolo11n.yaml`` …): real architectures with RANDOM weights.

Useful for shape, export and speed work on every architecture; meaningless for accuracy, and the
handle says so (``random_weights``) wherever it is shown.
"""

from __future__ import annotations

import re
from pathlib import Path

from studio.errors import BadInputError, first_line
from studio.hashing import sha256_file
from studio.loaders.ultralytics_common import handle_from_module
from studio.loaders.ultralytics_support import check_head, check_task
from studio.model import ModelHandle, Provenance


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    return _build(path, str(path))


def load_bundled(name: str) -> ModelHandle:
    """A definition that ships inside Ultralytics, by its scaled name (``yolo11n.yaml``)."""
    from ultralytics.utils.checks import check_yaml

    # Ultralytics stores one file per family (yolo11.yaml) and reads the scale from the name (the "n").
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    source = Path(check_yaml(unscaled, hard=False) or name)
    return _build(source, name, display=Path(name).stem)


def _build(path: Path, spec: str, display: str | None = None) -> ModelHandle:
    import torch
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    try:
        cfg = yaml_model_load(spec)
    except Exception as exc:
        raise BadInputError(f"not a readable YAML file ({first_line(exc, 120)})", path=path,
                            fix="give an Ultralytics model definition such as yolo11n.yaml") from exc
    if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
        raise BadInputError("not an Ultralytics model definition (no 'backbone' and 'head')", path=path,
                            fix="give a model yaml such as yolo11n.yaml (dataset yamls are not models)")
    _check_modules(cfg, path)
    check_head(_head_classes(cfg), path)
    rtdetr = "RTDETRDecoder" in _head_classes(cfg)
    task = "detect" if rtdetr else guess_model_task(cfg)  # Ultralytics' guess knows no RT-DETR head: None
    check_task(task, path)
    model_class = _model_class(task, rtdetr=rtdetr)
    _without_pretrained_download(cfg)
    torch.manual_seed(0)  # the same random weights every time, so runs are comparable
    try:
        module = model_class(cfg, verbose=False).float().eval()
    except Exception as exc:
        raise BadInputError(f"Ultralytics cannot build this definition ({first_line(exc, 120)})",
                            path=path, fix="check the layer list against Ultralytics' own yaml files") from exc
    for param in module.parameters():
        param.requires_grad_(False)
    module.args = {}
    default = 224 if task == "classify" else 640  # Ultralytics' own training defaults per task
    size = cfg["imgsz"] if isinstance(cfg.get("imgsz"), int) else default
    provenance = Provenance(path=str(path.resolve()), sha256=sha256_file(path), loader="ultralytics-yaml",
                            note=f"{spec}: architecture only, weights are random (seed 0)")
    handle = handle_from_module(module, path=path, fmt="ultralytics-yaml", provenance=provenance,
                                imgsz=(size, size), random_weights=True)
    return handle.replace(name=display) if display else handle


def _model_class(task: str, *, rtdetr: bool = False):
    from ultralytics.nn import tasks

    if rtdetr:  # its own model class: Ultralytics' RTDETR(...) builds this one (loss and batch handling differ)
        return tasks.RTDETRDetectionModel

    return {
        "detect": tasks.DetectionModel,
        "segment": tasks.SegmentationModel,
        "pose": tasks.PoseModel,
        "obb": tasks.OBBModel,
        "classify": tasks.ClassificationModel,
    }.get(task, tasks.DetectionModel)


def _layers(cfg: dict) -> list[list]:
    """The [from, repeats, module, args] rows; malformed rows are left for Ultralytics' own build to name."""
    rows = [*(cfg.get("backbone") or []), *(cfg.get("head") or [])]
    return [row for row in rows if isinstance(row, list) and len(row) == 4 and isinstance(row[2], str)]


def _resolve(name: str):
    """The class Ultralytics' parse_model would use for a layer's module name, or None."""
    import torch
    from ultralytics.nn import tasks

    if name.startswith("nn."):
        return getattr(torch.nn, name[3:], None)
    if name.startswith("torchvision.ops."):
        import torchvision

        return getattr(torchvision.ops, name[16:], None)
    found = vars(tasks).get(name)
    return found if isinstance(found, type) else None


def _check_modules(cfg: dict, path: Path) -> None:
    """A layer naming a module this Ultralytics does not define (a fork's, a newer release's) is named
    here; Ultralytics itself would fail with a bare KeyError."""
    import ultralytics

    for index, row in enumerate(_layers(cfg)):
        if _resolve(row[2]) is None:
            owner = ("torch.nn" if row[2].startswith("nn.") else "torchvision.ops"
                     if row[2].startswith("torchvision.ops.") else f"Ultralytics {ultralytics.__version__}")
            raise BadInputError(f"layer {index} uses the module '{row[2][:60]}', which {owner} does not define",
                                path=path,
                                fix="the definition comes from a fork or a newer release: load it with the "
                                    "Ultralytics that defines it and export it to ONNX")


def _head_classes(cfg: dict) -> list[str]:
    from studio.loaders.ultralytics_support import class_chain

    layers = _layers(cfg)
    head = _resolve(layers[-1][2]) if layers else None
    return class_chain(head) if head is not None else [layers[-1][2] if layers else "?"]


def _without_pretrained_download(cfg: dict) -> None:
    """TorchVision layers download ImageNet weights by default ("DEFAULT"); this loader promises random
    weights, and there is no network here, so they are built without."""
    for row in _layers(cfg):
        if row[2] == "TorchVision" and isinstance(row[3], list):
            args = row[3]
            if len(args) >= 3:
                args[2] = None
            elif len(args) == 2:  # [channels, model]: the weights argument left at its default
                args.append(None)
