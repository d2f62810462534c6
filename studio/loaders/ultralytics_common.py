"""What the Ultralytics loaders share: turning a YOLO ``nn.Module`` into a ``ModelHandle``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.complexity import torch_gflops, torch_params
from studio.loaders.ultralytics_support import RTDETR_HEAD, check_head, check_task, class_chain, ultralytics_resize
from studio.model import ImageInput, ModelHandle, Provenance, Task, TensorSpec

# Post-processing family per Ultralytics task (see studio.runtime.decoders).
_DECODERS = {
    Task.DETECT: "yolo",
    Task.SEGMENT: "yolo",
    Task.POSE: "yolo",
    Task.OBB: "yolo-obb",
    Task.CLASSIFY: "classify-probs",
}


def labels_of(names: Any, count: int | None = None) -> tuple[str, ...]:
    """Ultralytics keeps names as {index: name} (or a list in old files); return them in index order."""
    if isinstance(names, dict):
        return tuple(str(names[key]) for key in sorted(names, key=int))
    if isinstance(names, (list, tuple)):
        return tuple(str(name) for name in names)
    return tuple(f"class{i}" for i in range(count or 0))


def imgsz_pair(value: Any, default: int = 640) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return int(value[0]), int(value[0])
    return (int(value), int(value)) if value else (default, default)


def is_end2end(model: Any) -> bool:
    head = model.model[-1] if hasattr(model, "model") else None
    return bool(getattr(head, "end2end", False))


def is_rtdetr_module(model: Any) -> bool:
    layers = getattr(model, "model", None)
    return layers is not None and len(layers) > 0 and RTDETR_HEAD in class_chain(type(layers[-1]))


def _task_metadata(model: Any) -> dict[str, str]:
    """What the decoders read from an exported file's metadata, under Ultralytics' own keys: kpt_shape, end2end, and
    the mask coefficient count (Ultralytics' exports leave it to the prototypes' shape)."""
    head = model.model[-1] if hasattr(model, "model") and len(model.model) else None
    meta = {"end2end": str(is_end2end(model))}
    kpt_shape = getattr(head, "kpt_shape", None)
    if kpt_shape is not None:
        meta["kpt_shape"] = str([int(v) for v in kpt_shape])
    channels = getattr(head, "nm", None)
    if channels is not None:
        meta["mask_channels"] = str(int(channels))
    return meta


def handle_from_module(
    model: Any, *, path: Path, fmt: str, provenance: Provenance, imgsz: tuple[int, int], random_weights: bool
) -> ModelHandle:
    """Describe a loaded Ultralytics model. ``model`` must already be in eval mode on the CPU."""
    import torch
    from ultralytics.nn.tasks import guess_model_task

    layers = getattr(model, "model", None)
    if isinstance(layers, torch.nn.Sequential) and len(layers):  # a head the studio does not run: say so first
        check_head(class_chain(type(layers[-1])), path)
    rtdetr = is_rtdetr_module(model)
    # Ultralytics' guess knows no RT-DETR head (its RTDETR class fixes the task to detect).
    task_name = getattr(model, "task", None) or ("detect" if rtdetr else guess_model_task(model))
    check_task(task_name, path)
    task = Task(task_name)
    model.task = str(task)  # Ultralytics' exporter and predictor read it (its own loader sets it too)
    from ultralytics.cfg import DEFAULT_CFG_DICT

    model.args = {**DEFAULT_CFG_DICT, **(getattr(model, "args", None) or {})}  # as Ultralytics' own loader does
    stride = int(max(model.stride.tolist())) if hasattr(model, "stride") else 32
    channels = int(getattr(model, "yaml", {}).get("channels", 3))
    labels = labels_of(getattr(model, "names", None), getattr(model, "nc", None))
    classify = task == Task.CLASSIFY
    decoder = _DECODERS.get(task, "tensor")
    if decoder == "yolo" and is_end2end(model):
        decoder = "yolo-end2end"
    if rtdetr:
        decoder = "rtdetr"
        side = max(imgsz)  # RTDETRPredictor stretches every frame to a square (LetterBox(scale_fill=True))
        imgsz = (side, side)
    image_input = ImageInput(
        size=imgsz,
        resize=ultralytics_resize(task, decoder),
        stride=stride,
        # RT-DETR's anchors and its export are made for one size (Ultralytics exports it fixed); a classifier crops.
        dynamic=not classify and not rtdetr,
        crop_fraction=1.0,  # Ultralytics' classify_transforms: shorter side to size, then a centre crop
    )
    gflops, method = torch_gflops(model, (1, channels, *imgsz))
    return ModelHandle(
        name=path.stem,
        format=fmt,
        task=task,
        decoder=decoder,
        labels=labels,
        image_input=image_input,
        inputs=(TensorSpec("images", (1, channels, *(imgsz if rtdetr else ("height", "width"))), "float32"),),
        outputs=(),
        size_bytes=path.stat().st_size,
        provenance=provenance,
        params=torch_params(model),
        gflops=gflops,
        gflops_method=method,
        random_weights=random_weights,
        source_paths=(path,),
        torch_module=model,
        metadata={"family": "ultralytics", "stride": str(stride), "channels": str(channels), **_task_metadata(model),
                  **({"head": RTDETR_HEAD} if rtdetr else {})},
    )
