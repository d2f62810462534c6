"""CoreML models (``.mlpackage`` folders, ``.mlmodel`` files), inspected with coremltools' own reader.

coremltools predicts only on macOS; everywhere else the spec is read without loading the model
(``skip_model_load=True``): inputs and outputs, the user-defined metadata (the studio's keys and Ultralytics'),
the stored weight types and the operator histogram. The handle has no graph another runtime could run.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.artifact_metadata import DECODER_KEY, image_input_from_metadata, is_studio_metadata
from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.loaders.ultralytics_support import is_rtdetr, ultralytics_onnx_decoder, ultralytics_resize
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec

_FIX = "re-export the model (the studio and Ultralytics write a .mlpackage folder with Manifest.json and Data/)"
_BLOB_PREFIX = "@model_path/"
# coremltools' import logs the macOS-only parts it cannot load, and its version checks of torch and sklearn:
# noise on Linux, where nothing of those is used to read a spec.
_NOISY_LOGGERS = ("coremltools", "torch.utils._pytree")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _read(path: Path) -> tuple[Any, Path | None]:
    """The spec and the weights folder (None for a file without one)."""
    from google.protobuf.message import DecodeError

    if path.is_dir() and not (path / "Manifest.json").is_file():
        raise BadInputError("the CoreML package has no Manifest.json", path=path, fix=_FIX)
    with _quiet():
        import coremltools as ct

        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
        except (RuntimeError, ValueError, OSError, DecodeError, KeyError) as exc:
            from studio.errors import first_line

            raise BadInputError(f"coremltools cannot read this CoreML model ({first_line(exc, 160)})", path=path,
                                fix=_FIX) from exc
    spec = model.get_spec()
    if spec.WhichOneof("Type") is None:
        raise BadInputError("the CoreML spec holds no model", path=path, fix=_FIX)
    weights = getattr(model, "weights_dir", None)
    return spec, Path(weights) if weights else None


def _array_dtype(code: int) -> str:
    from coremltools.proto import FeatureTypes_pb2 as ft

    name = ft.ArrayFeatureType.ArrayDataType.Name(code) if code else "INVALID"
    return {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}.get(name, name.lower())


def _feature(feature: Any) -> TensorSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        image = feature.type.imageType
        from coremltools.proto import FeatureTypes_pb2 as ft

        space = ft.ImageFeatureType.ColorSpace.Name(image.colorSpace)
        flexible = image.HasField("imageSizeRange") or len(image.enumeratedSizes.sizes) > 1
        height: int | str = "?" if flexible or not image.height else int(image.height)
        width: int | str = "?" if flexible or not image.width else int(image.width)
        channels = 3 if space in ("RGB", "BGR") else 1
        return TensorSpec(feature.name, (1, channels, height, width), f"image {space}")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        shape: tuple[int | str, ...] = tuple(int(d) for d in array.shape)
        if array.HasField("shapeRange"):
            bounds = array.shapeRange.sizeRanges
            shape = tuple("?" if b.lowerBound != b.upperBound else int(b.lowerBound) for b in bounds)
        elif len(array.enumeratedShapes.shapes) > 1:
            shape = tuple("?" for _ in shape)
        return TensorSpec(feature.name, shape, _array_dtype(array.dataType))
    return TensorSpec(feature.name, (), kind or "unknown")


def _mil_dtype(code: int) -> str:
    from coremltools.proto import MIL_pb2

    return MIL_pb2.DataType.Name(code).lower()


def _elements(tensor: Any) -> int:
    size = 1
    for dim in tensor.dimensions:
        size *= int(dim.constant.size) if dim.WhichOneof("dimension") == "constant" else 1
    return size


def _program_weights(spec: Any, weights_dir: Path | None, path: Path) -> tuple[list[str], Counter[str], int]:
    """Weight lines, the operator histogram and the weight element count of an ML program; every weight blob
    it references must exist (a package with its weights removed still parses)."""
    ops: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    elements = 0
    blobs: set[str] = set()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
                stored = [v for v in op.attributes.values() if v.WhichOneof("value") == "blobFileValue"]
                blobs.update(v.blobFileValue.fileName for v in stored)
                if stored:  # a dequantising op also stores its scales and zero points: its largest blob is the weight
                    weight = max(stored, key=lambda v: _elements(v.type.tensorType))
                    counts[_mil_dtype(weight.type.tensorType.dataType)] += 1
                    elements += _elements(weight.type.tensorType)
    for name in sorted(blobs):
        relative = name[len(_BLOB_PREFIX):] if name.startswith(_BLOB_PREFIX) else name
        base = weights_dir.parent if weights_dir is not None else path.parent
        if not (base / relative).is_file():
            raise BadInputError(f"its weights file {relative} is missing", path=path,
                                fix="copy the whole .mlpackage folder, or re-export the model")
    lines = [f"{dtype}: {n} weight tensors stored" for dtype, n in counts.most_common()]
    dequantize = {op: n for op, n in ops.items() if op.startswith("constexpr_")}
    lines += [f"{op}: {n} ops (weights stored compressed, expanded at load)" for op, n in sorted(dequantize.items())]
    if ops.get("cast"):
        lines.append(f"cast: {ops['cast']} ops (precision changes inside the program, e.g. FP16 compute)")
    return lines or ["no weight file constants"], ops, elements


def _network_weights(spec: Any) -> tuple[list[str], Counter[str], int]:
    """The same for a neural-network spec: layer histogram and each WeightParams' storage."""
    network = next((getattr(spec, kind) for kind in ("neuralNetwork", "neuralNetworkClassifier",
                                                     "neuralNetworkRegressor") if spec.HasField(kind)), None)
    if network is None:
        return [f"a {spec.WhichOneof('Type')} model (no weights read)"], Counter(), 0
    layers: Counter[str] = Counter()
    storage: Counter[str] = Counter()
    elements = 0
    for layer in network.layers:
        layers[layer.WhichOneof("layer") or "unknown"] += 1
        for params in _weight_params(layer):
            if params.HasField("quantization"):
                kind, count = f"int{params.quantization.numberOfBits} (quantised)", len(params.rawValue) or 0
            elif len(params.floatValue):
                kind, count = "fp32", len(params.floatValue)
            elif params.float16Value:
                kind, count = "fp16", len(params.float16Value) // 2
            else:
                continue
            storage[kind] += 1
            elements += count
    lines = [f"{kind}: {n} weight tensors" for kind, n in storage.most_common()]
    return lines or ["no stored weights"], layers, elements


def _weight_params(message: Any) -> Iterator[Any]:
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        values = value if field.label == field.LABEL_REPEATED else [value]
        for item in values:
            if field.message_type.name == "WeightParams":
                yield item
            else:
                yield from _weight_params(item)


def _image_input(spec: TensorSpec, meta: dict[str, str], path: Path) -> ImageInput | None:
    sides = spec.shape[2:] if len(spec.shape) == 4 else ()
    size = (sides[0], sides[1]) if len(sides) == 2 and isinstance(sides[0], int) and isinstance(sides[1], int) \
        else None
    if is_studio_metadata(meta):
        return image_input_from_metadata(meta, path, default_size=size)
    if not spec.dtype.startswith("image"):
        return None
    return ImageInput(size=size or (640, 640), resize=Resize.STRETCH, rgb=spec.dtype != "image BGR",
                      dynamic=size is None)


def _meaning(meta: dict[str, str], inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
             path: Path) -> tuple[Task, tuple[str, ...], str, ImageInput | None, str]:
    image = _image_input(inputs[0], meta, path)
    if is_studio_metadata(meta) or "Ultralytics" in meta.get("author", "") or {"task", "names"} <= meta.keys():
        fields = parse_ultralytics_meta(meta, path)
        decoder = meta.get(DECODER_KEY) or ultralytics_onnx_decoder(fields.task, meta.get("end2end") == "True",
                                                                    outputs, fields.labels, path,
                                                                    rtdetr=is_rtdetr(meta))
        if image is not None and not is_studio_metadata(meta):
            image = ImageInput(size=image.size, resize=ultralytics_resize(fields.task, decoder),
                               stride=fields.stride, dynamic=image.dynamic, crop_fraction=1.0)
        who = "Deploy Studio" if is_studio_metadata(meta) else "Ultralytics"
        return fields.task, fields.labels, decoder, image, f"{who} {fields.version} CoreML export"
    return Task.TENSOR, (), "tensor", image, "generic CoreML model: inputs and outputs known, their meaning not"


def _files(path: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in path.rglob("*") if p.is_file())) if path.is_dir() else (path,)


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    spec, weights_dir = _read(path)
    description = spec.description
    inputs = tuple(_feature(f) for f in description.input)
    outputs = tuple(_feature(f) for f in description.output)
    if not inputs or not outputs:
        raise BadInputError("the CoreML model declares no inputs or no outputs", path=path, fix=_FIX)
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        weights, ops, elements = _program_weights(spec, weights_dir, path)
    else:
        weights, ops, elements = _network_weights(spec)
    user = {str(k): str(v) for k, v in description.metadata.userDefined.items()}
    standard = {"author": description.metadata.author, "description": description.metadata.shortDescription,
                "version": description.metadata.versionString, "license": description.metadata.license}
    meta = {**{k: v for k, v in standard.items() if v}, **user}
    task, labels, decoder, image, note = _meaning(meta, inputs, outputs, path)
    files = _files(path)
    details = {
        "coreml": [f"{kind}, specification version {spec.specificationVersion}",
                   "runs on macOS only (coremltools' predict); inspected here without loading it"],
        "weights": weights,
        "operators": [", ".join(f"{op} {n}" for op, n in ops.most_common(12)) or "none"],
        "metadata": [f"{k}: {v[:120]}" for k, v in sorted(meta.items())] or ["none"],
    }
    return ModelHandle(
        name=path.stem, format="coreml", task=task, decoder=decoder, labels=labels, image_input=image,
        inputs=inputs, outputs=outputs, size_bytes=sum(p.stat().st_size for p in files),
        params=elements or None, params_method="elements of the stored weight tensors",
        gflops=None, gflops_method="not counted for CoreML",
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(*files), loader="coreml", note=note),
        source_paths=(path,), metadata={k: v[:200] for k, v in meta.items()}, details=details,
    )
