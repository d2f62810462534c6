"""OpenVINO IR (``model.xml`` + ``model.bin``): the studio's own exports, Ultralytics' ``*_openvino_model/``
folders, and any other IR as a tensor model. Read by OpenVINO's own reader, so what ``info`` shows is what
the runtime will run.

Metadata comes from three places, first found wins per key: the IR's ``rt_info`` ``model_info`` (the studio
writes its keys there with ``_`` for ``.``; Ultralytics writes its labels), Ultralytics' ``metadata.yaml``
beside the IR, and ``rt_info`` ``framework`` (the source ONNX graph's metadata, kept by ``convert_model``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

from studio.artifact_metadata import DECODER_KEY, image_input_from_metadata, is_studio_metadata
from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.loaders.ultralytics_support import TASK_DECODERS as _TASK_DECODERS
from studio.loaders.ultralytics_support import is_rtdetr, ultralytics_onnx_decoder, ultralytics_resize
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec

_FIX = "re-export it, or open the folder the studio or Ultralytics wrote (model.xml with model.bin beside it)"
_OWN_FIX = "re-export the model with Deploy Studio, or remove its 'deploy_studio_*' rt_info to open it as a plain IR"
MAX_YAML_BYTES = 1 << 20  # a metadata.yaml with 80 class names is ~2 kB
_STUDIO_PREFIX = "deploy_studio_"
# Decoders a studio file may name, per task (the studio's runtimes decode these from output 0).


def ir_xml(path: Path) -> Path:
    """The ``.xml`` of an IR given as the file or as a folder holding exactly one."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.xml"))
    if not found:
        raise BadInputError("the folder holds no OpenVINO .xml", path=path, fix=_FIX)
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:6]) + (" …" if len(found) > 6 else "")
        raise BadInputError(f"the folder holds {len(found)} .xml files ({names}); the studio cannot tell which is "
                            "the model", path=path, fix="open the model's .xml file itself")
    return found[0]


def ov_reason(exc: BaseException) -> str:
    """The line of an OpenVINO exception that says what is wrong (its first lines name C++ source files)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    text = (said or lines or [type(exc).__name__])[-1]
    return text if len(text) <= 200 else text[:199] + "…"


def read_ir(xml: Path) -> Any:
    import openvino as ov

    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise BadInputError(f"its weights file {weights.name} is missing", path=xml,
                            fix=f"put {weights.name} (written with the .xml) beside it, or re-export the model")
    try:
        return ov.Core().read_model(str(xml), str(weights))
    except RuntimeError as exc:
        raise BadInputError(f"OpenVINO cannot read this IR ({ov_reason(exc)})", path=xml,
                            fix="re-export it; the .xml or .bin may be truncated or not an OpenVINO IR") from exc


def port_specs(ports: Any) -> tuple[TensorSpec, ...]:
    import numpy as np

    specs = []
    for index, port in enumerate(ports):
        names = port.get_names()
        name = port.get_any_name() if names else f"{port.get_node().get_friendly_name()}:{index}"
        # An interval (21..) or unknown dimension is dynamic: shown as ?, never as its lower bound.
        shape = tuple(int(d.get_length()) if d.is_static else "?" for d in port.get_partial_shape())
        element = port.get_element_type()
        try:
            dtype = np.dtype(element.to_dtype()).name
        except (RuntimeError, TypeError):
            dtype = element.get_type_name()
        specs.append(TensorSpec(name, shape, dtype))
    return tuple(specs)


def _rt_section(model: Any, key: str) -> dict[str, str]:
    info = model.get_rt_info()
    if key not in info:
        return {}
    section = info[key]
    if not isinstance(section, dict):
        return {}
    out = {}
    for name, value in section.items():
        text = value.astype(str) if hasattr(value, "astype") else str(value)
        out[str(name)] = text
    return out


def _studio_key(name: str) -> str:
    """The studio writes ``deploy_studio.preprocess`` as ``deploy_studio_preprocess`` (rt_info keys are paths)."""
    return "deploy_studio." + name[len(_STUDIO_PREFIX):] if name.startswith(_STUDIO_PREFIX) else name


def _yaml_meta(folder: Path) -> dict[str, str]:
    """Ultralytics' ``metadata.yaml``, its values turned into the text its ONNX metadata would hold."""
    path = folder / "metadata.yaml"
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_YAML_BYTES:
        raise BadInputError(f"metadata.yaml is {path.stat().st_size:,} bytes, far more than any model's metadata",
                            path=path, fix="re-export the model with Ultralytics")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        raise BadInputError(f"metadata.yaml is not YAML ({type(exc).__name__})", path=path,
                            fix="re-export the model with Ultralytics, or delete metadata.yaml to open a plain IR"
                            ) from None
    if not isinstance(data, dict):
        return {}
    return {str(k): (v if isinstance(v, str) else repr(v)) for k, v in data.items()}


def ir_metadata(model: Any, folder: Path | None) -> dict[str, str]:
    meta = {_studio_key(k): v for k, v in _rt_section(model, "model_info").items()}
    for extra in (_yaml_meta(folder) if folder else {}, _rt_section(model, "framework")):
        for key, value in extra.items():
            meta.setdefault(key, value)
    return meta


def _is_ultralytics(meta: dict[str, str]) -> bool:
    return "Ultralytics" in meta.get("author", "") or {"task", "names", "stride"} <= meta.keys()


def weight_lines(model: Any) -> tuple[list[str], int]:
    """One line per stored element type of the weight constants (count, bytes), the quantisation ops, and the
    number of weight elements (constants of rank ≥ 1 in a float or 8/4-bit type: shape constants are int64)."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    elements = 0
    ops: Counter[str] = Counter()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind in ("FakeQuantize", "FakeConvert"):
            ops[kind] += 1
        if kind != "Constant":
            continue
        element = op.get_output_element_type(0).get_type_name()
        counts[element] += 1
        sizes[element] += op.get_byte_size()
        shape = op.get_output_partial_shape(0)
        if element in ("f32", "f16", "bf16", "i8", "u8", "i4", "u4", "nf4") and shape.is_static and len(shape):
            elements += math.prod(int(d.get_length()) for d in shape)
    lines = [f"{element}: {counts[element]} constants, {sizes[element] / 1e6:.2f} MB"
             for element in sorted(counts, key=lambda e: -sizes[e])]
    lines += [f"{kind}: {n} ops (quantised activations or weights)" for kind, n in sorted(ops.items())]
    return lines or ["no constants (the graph stores no weights)"], elements


def _fixed_hw(spec: TensorSpec) -> tuple[int, int] | None:
    shape = spec.shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


def looks_like_image(spec: TensorSpec) -> bool:
    shape = spec.shape
    return len(shape) == 4 and shape[1] in (1, 3) and spec.dtype.startswith("float")


def image_for(spec: TensorSpec, size: tuple[int, int] | None, stride: int, resize: Resize) -> ImageInput | None:
    if not looks_like_image(spec):
        return None
    fixed = _fixed_hw(spec)
    return ImageInput(size=fixed or size or (640, 640), resize=resize, stride=stride, dynamic=fixed is None,
                      crop_fraction=1.0)


def _studio_fields(meta: dict[str, str], inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                   path: Path) -> tuple[Task, tuple[str, ...], str, ImageInput | None]:
    fields = parse_ultralytics_meta(meta, path)
    task, labels = fields.task, fields.labels
    if task not in _TASK_DECODERS:
        raise BadInputError(f"its metadata says task '{task}', which an image or tensor graph does not have",
                            path=path, fix=_OWN_FIX)
    spec = inputs[0]
    fixed = _fixed_hw(spec)
    image = image_input_from_metadata(meta, path, default_size=fixed)
    if image is None and task != Task.TENSOR:
        image = image_for(spec, fields.imgsz, fields.stride,
                          Resize.CENTER_CROP if task == Task.CLASSIFY else Resize.LETTERBOX)
    elif image is not None:
        if not looks_like_image(spec):
            raise BadInputError(f"its metadata gives image pre-processing, but input '{spec.name}' has shape "
                                f"{list(spec.shape)} ({spec.dtype}), not a float [N, 1 or 3, H, W] image",
                                path=path, fix=_OWN_FIX)
        if fixed is not None and image.size != fixed:
            raise BadInputError(f"its metadata says images of {list(image.size)}, but input '{spec.name}' is fixed "
                                f"at {list(fixed)}", path=path, fix=_OWN_FIX)
        if image.dynamic and fixed is not None:
            image = dataclasses.replace(image, dynamic=False)
    allowed = _TASK_DECODERS[task]
    decoder = meta.get(DECODER_KEY) or ultralytics_onnx_decoder(task, meta.get("end2end") == "True", outputs,
                                                                labels, path, rtdetr=is_rtdetr(meta))
    if decoder not in allowed:
        raise BadInputError(f"its metadata names decoder '{decoder[:40]}', which a {task} model does not use "
                            f"(one of {', '.join(allowed)})", path=path, fix=_OWN_FIX)
    return task, labels, decoder, image


def describe_ir(model: Any, *, name: str, path: Path, files: tuple[Path, ...], folder: Path | None,
                loader: str, note_prefix: str = "") -> ModelHandle:
    """A handle for an OpenVINO ``Model`` whose IR is ``files`` (xml first); ``path`` is what the user opened."""
    inputs, outputs = port_specs(model.inputs), port_specs(model.outputs)
    if not inputs or not outputs:
        raise BadInputError("the graph declares no inputs or no outputs", path=path, fix=_FIX)
    meta = ir_metadata(model, folder)
    if is_studio_metadata(meta):
        task, labels, decoder, image = _studio_fields(meta, inputs, outputs, path)
        note = f"Deploy Studio {meta.get('deploy_studio.version', '?')[:40]} export: pre-processing, labels and " \
               "decoder from its rt_info"
    elif _is_ultralytics(meta):
        fields = parse_ultralytics_meta(meta, path)
        task, labels = fields.task, fields.labels
        decoder = ultralytics_onnx_decoder(task, meta.get("end2end") == "True", outputs, labels, path,
                                           rtdetr=is_rtdetr(meta))
        image = image_for(inputs[0], fields.imgsz, fields.stride, ultralytics_resize(task, decoder))
        note = f"Ultralytics {fields.version} export"
    else:
        task, labels, decoder = Task.TENSOR, (), "tensor"
        image = image_for(inputs[0], None, 32, Resize.STRETCH) if len(inputs) == 1 else None
        note = "generic tensor model: inputs and outputs known, their meaning not" + (
            " (its one input looks like an image: frames are stretched to it, scaled to 0–1)" if image else "")
    weights, elements = weight_lines(model)
    details = {"weights": weights, "ir": _ir_lines(model, files)}
    shown = {k: v for k, v in meta.items() if k not in ("args", "date", "license", "docs")}
    if shown:
        details["metadata"] = [f"{k}: {v[:120]}" for k, v in sorted(shown.items())]
    return ModelHandle(
        name=name, format="openvino", task=task, decoder=decoder, labels=labels, image_input=image,
        inputs=inputs, outputs=outputs, size_bytes=sum(p.stat().st_size for p in files if p.is_file()),
        params=elements or None,
        params_method="elements of the IR's weight constants (float and 8/4-bit types, rank ≥ 1)",
        gflops=None, gflops_method="not counted for OpenVINO IR",
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(*files), loader=loader,
                              note=note_prefix + note),
        source_paths=files, metadata={k: v[:200] for k, v in meta.items()}, details=details,
    )


def _ir_lines(model: Any, files: tuple[Path, ...]) -> list[str]:
    info = model.get_rt_info()
    lines = [f"files: {', '.join(p.name for p in files)}"]
    if "Runtime_version" in info:
        lines.append(f"written by OpenVINO {info['Runtime_version'].astype(str)[:80]}")
    if "conversion_parameters" in info:
        params = _rt_section(model, "conversion_parameters")
        if params.get("input_model"):
            lines.append(f"converted from {params['input_model'][:160]}")
    return lines


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    xml = ir_xml(path)
    model = read_ir(xml)
    name = path.name if path.is_dir() else xml.stem
    if name == "model" and not path.is_dir():  # the studio's and Ultralytics' file name: the folder says more
        name = xml.parent.name
    return describe_ir(model, name=name, path=path, files=(xml, xml.with_suffix(".bin")), folder=xml.parent,
                       loader="openvino")
