"""ONNX graphs: Ultralytics exports recognised from their metadata (or output shape), others as tensor models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.complexity import onnx_gflops, onnx_params, onnx_params_method
from studio.errors import BadInputError, first_line
from studio.hashing import sha256_file
from studio.loaders.onnx_checks import check_onnx
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.loaders.ultralytics_support import ultralytics_onnx_decoder
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec

_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool", 2: "uint8", 3: "int8"}


def _read(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise BadInputError(f"not a valid ONNX file ({first_line(exc, 120)})",
                            path=path, fix="re-export the model; the file may be truncated or not ONNX") from exc
    if not model.graph.node or not model.graph.input:
        raise BadInputError("the ONNX graph is empty (no nodes or no inputs)", path=path,
                            fix="re-export the model; the file may be truncated or not ONNX")
    check_onnx(model, path)
    return model


def tensor_specs(values: Any, initializers: set[str]) -> tuple[TensorSpec, ...]:
    specs = []
    for value in values:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        # -1 is how paddle2onnx and older exporters write "any size": it is dynamic, never a size.
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or "?")
                      for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, shape, _DTYPES.get(tensor.elem_type, f"type{tensor.elem_type}")))
    return tuple(specs)


def _ultralytics_meta(model: Any) -> dict[str, str]:
    meta = {prop.key: prop.value for prop in model.metadata_props}
    return meta if "Ultralytics" in meta.get("author", "") or {"task", "names", "stride"} <= meta.keys() else {}


def _looks_like_yolo(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> int | None:
    """Class count when the output is Ultralytics' [1, 4 + classes, anchors] for a 640-style input."""
    if len(inputs) != 1 or len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    shape, image = outputs[0].shape, inputs[0].shape
    if len(image) != 4 or not all(isinstance(d, int) for d in (*image[2:], *shape[1:])):
        return None
    height, width, rows, columns = (int(d) for d in (image[2], image[3], shape[1], shape[2]))  # all int, as checked
    anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    return rows - 4 if columns == anchors and rows > 4 else None


def _image_input(spec: TensorSpec, size: tuple[int, int] | None, stride: int, resize: Resize) -> ImageInput | None:
    shape = spec.shape
    if len(shape) != 4 or shape[1] not in (1, 3) or not spec.dtype.startswith("float"):
        return None
    fixed = isinstance(shape[2], int) and isinstance(shape[3], int) and shape[2] > 0 and shape[3] > 0
    hw = (int(shape[2]), int(shape[3])) if fixed else (size or (640, 640))
    return ImageInput(size=hw, resize=resize, stride=stride, dynamic=not fixed, crop_fraction=1.0)


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    model = _read(path)
    initializers = {init.name for init in model.graph.initializer}
    inputs, outputs = tensor_specs(model.graph.input, initializers), tensor_specs(model.graph.output, set())
    if not inputs:
        raise BadInputError("the graph takes no input (every input is one of its own weights)", path=path,
                            fix="re-export the model with its real input")
    meta = _ultralytics_meta(model)
    hw_source = "metadata" if "imgsz" in meta else ""
    shape_classes = None if meta else _looks_like_yolo(inputs, outputs)
    if meta:
        fields = parse_ultralytics_meta(meta, path)
        task, labels = fields.task, fields.labels
        resize = Resize.CENTER_CROP if task == Task.CLASSIFY else Resize.LETTERBOX
        image = _image_input(inputs[0], fields.imgsz, fields.stride, resize)
        decoder = ultralytics_onnx_decoder(task, meta.get("end2end") == "True", outputs, labels, path)
        fmt, note = "ultralytics-onnx", f"Ultralytics {fields.version} export"
    elif shape_classes:
        task, labels, decoder, fmt = Task.DETECT, tuple(f"class{i}" for i in range(shape_classes)), "yolo", "onnx"
        image = _image_input(inputs[0], None, 32, Resize.LETTERBOX)
        note = "recognised as a YOLO detector from its output shape (no metadata: class names unknown)"
    else:
        task, labels, decoder, fmt, image = Task.TENSOR, (), "tensor", "onnx", None
        note = "generic tensor model: inputs and outputs known, their meaning not"
    # A dynamic image is profiled at the size it is run at: its metadata's imgsz, else the stated default.
    gflops, method = onnx_gflops(path, inputs, image.size if image and hw_source else None, hw_source)
    return ModelHandle(
        name=path.stem, format=fmt, task=task, decoder=decoder, labels=labels, image_input=image,
        inputs=inputs, outputs=outputs, size_bytes=_size(path, model), params=onnx_params(model),
        params_method=onnx_params_method(model), gflops=gflops, gflops_method=method,
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(path), loader="onnx", note=note),
        source_paths=(path,), onnx_path=path,
        metadata={"producer": f"{model.producer_name} {model.producer_version}".strip(),
                  "opset": str(max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                                   default=0)), **{k: v[:200] for k, v in meta.items()}},
    )


def _size(path: Path, model: Any) -> int:
    """The graph file plus external-data files its weights (initializers or Constant nodes) name in its folder."""
    from studio.onnx_weights import stored_tensors

    total = path.stat().st_size
    seen = set()
    for _, tensor, _ in stored_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value not in seen:
                seen.add(entry.value)
                candidate = (path.parent / entry.value).resolve()
                if candidate.is_relative_to(path.parent.resolve()) and candidate.is_file():
                    total += candidate.stat().st_size
    return total

