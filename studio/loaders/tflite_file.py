"""``.tflite`` files: the studio's own exports and Ultralytics' recognised from their appended metadata, any
other as a tensor model (with an image input where its one input plainly is an image).

The interpreter is built without its default delegates here: opening a file only needs the tensors and a
successful ``allocate_tensors`` (which is where a missing custom operator shows), not XNNPACK's kernels.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from studio.artifact_metadata import image_input_from_metadata
from studio.errors import BadInputError, UnsupportedError, first_line
from studio.hashing import sha256_file
from studio.loaders.tflite_metadata import FlatbufferFacts, read_flatbuffer, read_zip_entries
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.loaders.ultralytics_support import TASK_DECODERS as _TASK_DECODERS
from studio.loaders.ultralytics_support import is_rtdetr, ultralytics_onnx_decoder, ultralytics_resize
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec

NOT_TFLITE_FIX = "re-export or re-download the model; the file may be truncated or not a TFLite flatbuffer"
# "normalised": Ultralytics' LiteRT export divides box coordinates by the input size; "auto": a YOLO head whose
# file does not say (ai-edge-quantizer rewrites the file without Ultralytics' metadata.json), told from its output.
BOXES_KEY = "tflite_boxes"
# The studio's own exports say so in their deploy_studio metadata (field name within it).
STUDIO_BOXES_FIELD = "tflite_boxes"
_CUSTOM_OP = "Encountered unresolved custom op: "


def open_interpreter(data: bytes, path: Path) -> Any:
    """An allocated interpreter without delegates, or the one-line refusal of a file it cannot run."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_content=data, num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise BadInputError(f"not a valid TFLite file ({first_line(exc, 120)})", path=path, fix=NOT_TFLITE_FIX) from exc
    try:
        interpreter.allocate_tensors()
    except RuntimeError as exc:
        raise _prepare_refusal(exc, data, path) from exc
    return interpreter


def _prepare_refusal(exc: RuntimeError, data: bytes, path: Path) -> Exception:
    text = str(exc)
    if _CUSTOM_OP not in text:
        return BadInputError(f"ai_edge_litert's interpreter cannot prepare it ({first_line(exc, 160)})", path=path,
                             fix="check that it was written for TFLite / LiteRT, or re-export it")
    name = text.split(_CUSTOM_OP, 1)[1].split()[0].rstrip(".")[:80]
    try:
        others = [op for op in read_flatbuffer(data).custom_ops if op != name]
    except Exception:  # the op's name is already known; the rest is a courtesy
        others = []
    also = f" (and also {', '.join(others)})" if others else ""
    return UnsupportedError(f"it uses the custom operator {name}{also}, which ai_edge_litert's interpreter does not "
                            "have", path=path,
                            fix="run it in the framework it was built for (which registers that operator), or "
                                "re-export the model from its source with built-in TFLite operators only")


def _specs(details: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
    specs = []
    for detail in details:
        signature = detail.get("shape_signature")
        shape = signature if signature is not None and len(signature) == len(detail["shape"]) else detail["shape"]
        specs.append(TensorSpec(detail["name"], tuple(int(d) if d >= 0 else "?" for d in shape),
                                np.dtype(detail["dtype"]).name))
    return tuple(specs)


def image_layout(spec: TensorSpec) -> tuple[str, tuple[int, int] | None] | None:
    """("nhwc" or "nchw", fixed (height, width) or None) of a rank-4, three-channel input; None otherwise."""
    shape = spec.shape
    if len(shape) != 4:
        return None
    if shape[3] == 3 and shape[1] != 3:
        layout, height, width = "nhwc", shape[1], shape[2]
    elif shape[1] == 3:
        layout, height, width = "nchw", shape[2], shape[3]
    else:
        return None
    fixed = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    return layout, (int(height), int(width)) if fixed else None


def _quantisation_line(detail: dict[str, Any]) -> str:
    params = detail.get("quantization_parameters") or {}
    scales, zeros = np.asarray(params.get("scales", [])), np.asarray(params.get("zero_points", []))
    dtype = np.dtype(detail["dtype"]).name
    if scales.size == 0:
        return f"{detail['name']}: {dtype}, not quantised"
    if scales.size == 1:
        return f"{detail['name']}: {dtype}, scale {scales[0]:.6g}, zero point {int(zeros[0]) if zeros.size else 0}"
    return (f"{detail['name']}: {dtype}, per-axis on axis {params.get('quantized_dimension', 0)}: {scales.size} "
            f"scales {scales.min():.6g}–{scales.max():.6g}")


def _meta_strings(json_meta: dict[str, Any]) -> dict[str, str]:
    """Ultralytics' JSON values as the Python-literal strings ``parse_ultralytics_meta`` reads."""
    flat: dict[str, str] = {}
    for key in ("task", "names", "imgsz", "stride", "version", "author", "description", "end2end", "batch",
                "kpt_shape", "mask_channels"):
        if key in json_meta:
            value = json_meta[key]
            flat[key] = value if isinstance(value, str) and key in ("task", "version", "author", "description") \
                else repr(value)
    if isinstance(flat.get("end2end"), str):
        flat["end2end"] = str(json_meta["end2end"] is True)
    return flat


def _studio_fields(entries: dict[str, Any]) -> dict[str, str]:
    own = entries.get("deploy_studio")
    if not isinstance(own, dict):
        return {}
    return {f"deploy_studio.{key}"[:80]: (value if isinstance(value, str) else json.dumps(value))
            for key, value in own.items()}


def _decoder(task: Task, studio: dict[str, str], from_ultralytics: bool, outputs: tuple[TensorSpec, ...],
             labels: tuple[str, ...], end2end: bool, path: Path, *, rtdetr: bool = False) -> str:
    allowed = _TASK_DECODERS.get(task, ("tensor",))
    named = studio.get("deploy_studio.decoder")
    if named is not None:
        if named not in allowed:
            raise BadInputError(f"its metadata names decoder '{named[:40]}', which a {task} model does not use "
                                f"(one of {', '.join(allowed)})", path=path,
                                fix="re-export the model with Deploy Studio")
        return named
    if task == Task.CLASSIFY:  # Ultralytics' classify head ends in a softmax; the studio's other classifiers do not
        return "classify-probs" if from_ultralytics else "classify-logits"
    shape = outputs[0].shape if outputs else ()
    if task == Task.DETECT and len(shape) == 3 and shape[2] == 5 + len(labels) and shape[1] != 4 + len(labels):
        return "darknet"
    return ultralytics_onnx_decoder(task, end2end, outputs, labels, path, rtdetr=rtdetr)


def _assumed_image(spec: TensorSpec, detail: dict[str, Any], spec_meta: dict[str, Any]) -> tuple[ImageInput, str]:
    """The ``ImageInput`` of a file that names no pre-processing of its own, and how its range was chosen."""
    hw = image_layout(spec)
    assert hw is not None and hw[1] is not None
    size = hw[1]
    params = detail.get("quantization_parameters") or {}
    scales, zeros = list(params.get("scales", [])), list(params.get("zero_points", []))
    norm = spec_meta.get("normalization", {})
    means, stds = set(norm.get("mean", [])), set(norm.get("std", []))
    if spec.dtype in ("uint8", "int8") and len(scales) == 1:
        # Quantised pixels: pixel p is fed as the integer p (uint8) or p − 128 (int8), exactly.
        mean = float(zeros[0] if zeros else 0) + (128.0 if spec.dtype == "int8" else 0.0)
        image = ImageInput(size=size, resize=Resize.STRETCH, mean=mean, scale=float(scales[0]), crop_fraction=1.0)
        how = f"pixels 0–255 fed as the {spec.dtype} input's own range (its scale and zero point)"
    elif len(means) == 1 and len(stds) == 1 and next(iter(stds)) != 0:
        mean, std = float(next(iter(means))), float(next(iter(stds)))
        image = ImageInput(size=size, resize=Resize.STRETCH, mean=mean, scale=1 / std, crop_fraction=1.0)
        how = f"(pixel − {mean:g}) / {std:g}, from the file's TFLite metadata"
    else:
        image = ImageInput(size=size, resize=Resize.STRETCH, crop_fraction=1.0)
        how = "pixels scaled to 0–1 (ASSUMED: the file does not say)"
    return image, f"stretched to {size[0]}×{size[1]}, RGB, {how}"


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    data = path.read_bytes()
    interpreter = open_interpreter(data, path)
    in_details, out_details = interpreter.get_input_details(), interpreter.get_output_details()
    inputs, outputs = _specs(in_details), _specs(out_details)
    if not inputs:
        raise BadInputError("the model takes no input", path=path, fix=NOT_TFLITE_FIX)
    try:
        facts = read_flatbuffer(data)
    except Exception as exc:  # verified by the interpreter already; a schema quirk must not stop the opening
        facts = FlatbufferFacts(description=f"(schema not readable: {type(exc).__name__})")
    entry_names, entries = read_zip_entries(path)
    ultralytics_json = entries.get("metadata.json", {})
    merged: dict[str, Any] = {}
    for name in sorted(entries, key=lambda n: n != "metadata.json"):
        merged |= entries[name]
    flat, studio = _meta_strings(merged), _studio_fields(merged)
    from_ultralytics = "Ultralytics" in str(ultralytics_json.get("author", ""))
    details = _details(in_details, out_details, facts, entry_names)
    layout = image_layout(inputs[0]) if len(inputs) == 1 else None
    meta: dict[str, str] = {}
    if studio or from_ultralytics or {"task", "names"} <= flat.keys():
        fields = parse_ultralytics_meta(flat, path)
        task, labels = fields.task, fields.labels
        decoder = _decoder(task, studio, from_ultralytics, outputs, labels, flat.get("end2end") == "True", path,
                           rtdetr=is_rtdetr(flat))
        image = image_input_from_metadata({**flat, **studio}, path, default_size=layout[1] if layout else None)
        if image is not None and layout is not None and layout[1] is not None:
            # The file's own input shape wins over the source's pre-processing it carries: a studio export of a
            # dynamic model is fixed here, and its head's box normalisation is baked for that size, so a
            # rectangle fed through resize_tensor_input would come back with every box scaled wrong.
            image = dataclasses.replace(image, size=layout[1], dynamic=False)
        if image is None and layout is not None:
            image = ImageInput(size=layout[1] or fields.imgsz, resize=ultralytics_resize(task, decoder),
                               stride=fields.stride, dynamic=layout[1] is None, crop_fraction=1.0)
        if image is not None and layout is None:
            raise BadInputError(f"its metadata gives image pre-processing, but input '{inputs[0].name}' has shape "
                                f"{list(inputs[0].shape)}, not a three-channel NHWC or NCHW image", path=path,
                                fix="re-export the model with Deploy Studio")
        said_normalised = studio.get(f"deploy_studio.{STUDIO_BOXES_FIELD}") == "normalised"
        if (from_ultralytics or said_normalised) and decoder in ("yolo", "yolo-end2end", "yolo-obb"):
            meta[BOXES_KEY] = "normalised"
        elif decoder == "yolo":  # re-quantised exports lose Ultralytics' metadata.json: the backend looks
            meta[BOXES_KEY] = "auto"
        fmt_note = (f"Deploy Studio {studio.get('deploy_studio.version', '?')[:40]} file" if studio else
                    f"Ultralytics {fields.version} export")
        note = f"{fmt_note}: task, labels and pre-processing from its appended metadata"
    else:
        task, labels, decoder, image = Task.TENSOR, (), "tensor", None
        note = "generic tensor model: inputs and outputs known, their meaning not"
        if layout is not None and layout[1] is not None:
            image, how = _assumed_image(inputs[0], in_details[0], facts.spec_metadata)
            cannot = ("its outputs are shown as raw tensors, never drawn: without metadata naming a task the "
                      "studio cannot know whether they are boxes, anchors, landmarks or masks")
            note = f"tensor model with an image input ({how}); {cannot}"
            details["pre-processing"] = [how, cannot]
    return ModelHandle(
        name=path.stem, format="tflite", task=task, decoder=decoder, labels=labels, image_input=image,
        inputs=inputs, outputs=outputs, size_bytes=path.stat().st_size, params=facts.params or None,
        params_method=(f"elements of the flatbuffer's {facts.weight_tensors} constant tensors (weights, biases, small "
                       "shape constants), each buffer once"),
        gflops=None, gflops_method="not counted for TFLite files",
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(path), loader="tflite", note=note),
        source_paths=(path,),
        metadata={**({"description": facts.description} if facts.description else {}),
                  "subgraphs": str(facts.subgraphs), **meta,
                  **{k: v[:200] for k, v in {**flat, **studio}.items()}},
        details=details,
    )


def _details(in_details: list[dict[str, Any]], out_details: list[dict[str, Any]], facts: FlatbufferFacts,
             entry_names: list[str]) -> dict[str, list[str]]:
    details: dict[str, list[str]] = {}
    weights = ", ".join(f"{count} {dtype}" for dtype, count in facts.weight_dtypes.most_common())
    details["quantisation"] = [*(f"input {_quantisation_line(d)}" for d in in_details),
                               *(f"output {_quantisation_line(d)}" for d in out_details),
                               *([f"constant tensors: {weights}"] if weights else [])]
    total = sum(facts.operators.values())
    details["operators"] = [f"{total} operators in {facts.subgraphs} subgraph(s)",
                            *(f"{name} ×{count}" for name, count in facts.operators.most_common())]
    spec = facts.spec_metadata
    if spec:
        lines = [f"{key}: {spec[key]}" for key in ("name", "description", "version", "author", "license")
                 if key in spec]
        if "normalization" in spec:
            norm = spec["normalization"]
            lines.append(f"input normalisation: mean {norm.get('mean')}, std {norm.get('std')}")
        if spec.get("associated_files"):
            lines.append(f"associated files: {', '.join(spec['associated_files'])}")
        if "unreadable" in spec:
            lines.append(f"TFLITE_METADATA present but unreadable ({spec['unreadable']})")
        details["tflite metadata"] = lines
    if facts.metadata_names:
        details["metadata entries"] = list(facts.metadata_names)
    if entry_names:
        details["appended files"] = entry_names
    return details
