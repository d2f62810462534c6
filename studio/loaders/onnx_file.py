"""ONNX graphs: the studio's own files and Ultralytics exports recognised from their metadata (or output shape),
others as tensor models."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from studio.artifact_metadata import (
    DECODER_KEY,
    OWN_FIX,
    RUNTIME_MODE_KEY,
    image_input_from_metadata,
    is_studio_metadata,
)
from studio.complexity import onnx_gflops, onnx_params, onnx_params_method
from studio.errors import BadInputError, first_line
from studio.hashing import sha256_file
from studio.loaders.onnx_checks import check_onnx
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.loaders.ultralytics_support import TASK_DECODERS as _TASK_DECODERS
from studio.loaders.ultralytics_support import is_rtdetr, ultralytics_onnx_decoder, ultralytics_resize
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
    props = {prop.key: prop.value for prop in model.metadata_props}
    own = is_studio_metadata(props)  # the studio's own keys say more than Ultralytics' (pre-processing, decoder)
    meta = props if own else _ultralytics_meta(model)
    hw_source = "metadata" if "imgsz" in meta else ""
    shape_classes = None if meta else _looks_like_yolo(inputs, outputs)
    if own:
        task, labels, decoder, image, note = _studio_fields(meta, model, inputs, outputs, path)
        fmt = "onnx"
        hw_source = "metadata" if image is not None and image.dynamic else hw_source
    elif meta:
        fields = parse_ultralytics_meta(meta, path)
        task, labels = fields.task, fields.labels
        decoder = ultralytics_onnx_decoder(task, meta.get("end2end") == "True", outputs, labels, path,
                                           rtdetr=is_rtdetr(meta))
        image = _image_input(inputs[0], fields.imgsz, fields.stride, ultralytics_resize(task, decoder))
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


# The decoders each task's graphs may name, and the layout each decoder reads from output 0: (rank, axis, least
# size of that axis before the class count is added; None: the class count is not in that axis).
_LAYOUTS: dict[str, tuple[int, int, int, bool]] = {
    "yolo": (3, 1, 4, True), "yolo-obb": (3, 1, 5, True), "yolo-end2end": (3, 2, 6, False), "rtdetr": (3, 2, 6, False),
    "darknet": (3, 2, 5, True), "classify-logits": (2, 1, 0, True), "classify-probs": (2, 1, 0, True)}
# Nodes that pass a classifier's scores through unchanged in meaning (shape, type, quantisation).
_PASS_THROUGH = frozenset({"Reshape", "Flatten", "Squeeze", "Identity", "Cast", "QuantizeLinear", "DequantizeLinear"})


def _studio_fields(meta: dict[str, str], model: Any, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                   path: Path) -> tuple[Task, tuple[str, ...], str, ImageInput | None, str]:
    """(task, labels, decoder, image input, note) of a file the studio wrote, from its metadata, checked against
    the graph: a claim the graph contradicts is refused, not run into garbage."""
    version = meta.get("deploy_studio.version", "?")[:40]
    if meta.get(RUNTIME_MODE_KEY) == "early_exit":
        # One segment's outputs are features and an exit's logits: only all segments together are the model.
        return Task.TENSOR, (), "tensor", None, (f"one segment of a Deploy Studio {version} early-exit variant: "
                                                 "it runs as the model only with its sibling segment_N.onnx files")
    fields = parse_ultralytics_meta(meta, path)
    task, labels = fields.task, fields.labels
    if task not in _TASK_DECODERS:
        raise BadInputError(f"its metadata says task '{task}', which an image or tensor graph does not have",
                            path=path, fix=OWN_FIX)
    spec = inputs[0]
    fixed = _fixed_hw(spec)
    image = image_input_from_metadata(meta, path, default_size=fixed)
    if image is None and task != Task.TENSOR:  # written before the pre-processing was recorded
        resize = Resize.CENTER_CROP if task == Task.CLASSIFY else Resize.LETTERBOX
        image = _image_input(spec, fields.imgsz, fields.stride, resize)
    elif image is not None:
        if _image_input(spec, None, image.stride, image.resize) is None:
            raise BadInputError(f"its metadata gives image pre-processing, but input '{spec.name}' has shape "
                                f"{list(spec.shape)} ({spec.dtype}), not a float [N, 1 or 3, H, W] image",
                                path=path, fix=OWN_FIX)
        if fixed is not None and image.size != fixed:
            raise BadInputError(f"its metadata says images of {list(image.size)}, but input '{spec.name}' is fixed "
                                f"at {list(fixed)}", path=path, fix=OWN_FIX)
        if image.dynamic and fixed is not None:
            image = dataclasses.replace(image, dynamic=False)
    decoder = _own_decoder(meta, task, model, outputs, labels, path)
    return task, labels, decoder, image, f"Deploy Studio {version} file: pre-processing, labels and decoder from " \
                                         "its metadata"


def _fixed_hw(spec: TensorSpec) -> tuple[int, int] | None:
    shape = spec.shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


def _own_decoder(meta: dict[str, str], task: Task, model: Any, outputs: tuple[TensorSpec, ...],
                 labels: tuple[str, ...], path: Path) -> str:
    allowed = _TASK_DECODERS[task]
    if DECODER_KEY in meta:
        decoder = meta[DECODER_KEY]
        if decoder not in allowed:
            raise BadInputError(f"its metadata names decoder '{decoder[:40]}', which a {task} model does not use "
                                f"(one of {', '.join(allowed)})", path=path, fix=OWN_FIX)
    elif task == Task.CLASSIFY:
        decoder = "classify-probs" if _ends_in_softmax(model) else "classify-logits"
    elif task == Task.DETECT and _darknet_rows(outputs, labels):
        decoder = "darknet"
    else:
        decoder = ultralytics_onnx_decoder(task, meta.get("end2end") == "True", outputs, labels, path,
                                           rtdetr=is_rtdetr(meta))
    shape: tuple[int | str, ...] = outputs[0].shape if outputs else ()
    if decoder in _LAYOUTS:
        rank, axis, least, per_class = _LAYOUTS[decoder]
        least = max(least + len(labels), 1) if per_class else least
        if len(shape) != rank or (isinstance(dim := shape[axis], int) and dim < least):
            raise BadInputError(f"its metadata says a {task} model decoded as '{decoder}', but output "
                                f"'{outputs[0].name if outputs else '?'}' has shape {list(shape)}, which is not "
                                "that layout", path=path, fix=OWN_FIX)
    return decoder


def _darknet_rows(outputs: tuple[TensorSpec, ...], labels: tuple[str, ...]) -> bool:
    """Rows [cx, cy, w, h, objectness, classes…] on the last axis, where an Ultralytics head has them on axis 1."""
    shape = outputs[0].shape if outputs else ()
    return len(shape) == 3 and shape[2] == 5 + len(labels) and shape[1] != 4 + len(labels)


def _ends_in_softmax(model: Any) -> bool:
    """Whether output 0 is a Softmax's result (probabilities), through reshapes, casts and quantisation nodes."""
    producers = {name: node for node in model.graph.node for name in node.output}
    name = model.graph.output[0].name
    for _ in range(len(producers)):
        node = producers.get(name)
        if node is None or node.op_type not in _PASS_THROUGH or not node.input:
            return node is not None and node.op_type == "Softmax"
        name = node.input[0]
    return False


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

