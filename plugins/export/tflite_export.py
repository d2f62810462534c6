"""TFLite (LiteRT) export from PyTorch through litert-torch, re-opened in ai_edge_litert's interpreter.

Ultralytics models go through Ultralytics' exporter (its LiteRT path); other PyTorch models through
``litert_torch.convert``. A model that exists only as ONNX (a third-party file, a float variant) goes the
same way through a PyTorch module rebuilt from its graph by onnx2torch (``onnx_torch_route``): its outputs
stay those of the ONNX graph (a detector keeps pixel boxes), so nothing is rescaled for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.export.common import (
    VISION_PRECISIONS,
    Exporter,
    VisionPrecision,
    source_graph,
    verification_size,
)
from studio.artifact_metadata import artifact_metadata
from studio.errors import UnsupportedError
from studio.lm.variants import is_language_model
from studio.loaders.tflite_file import STUDIO_BOXES_FIELD as TFLITE_BOXES
from studio.model import ModelHandle, Task
from studio.plugin_api import LANGUAGE, VISION, Exports, option
from studio.tasks import TaskContext

_DETECTORS = (Task.DETECT, Task.SEGMENT, Task.POSE, Task.OBB)
RTDETR_INT8 = ("INT8 TFLite of an RT-DETR model is not supported (its INT8 conversion aborts the process): export it "
               "to TFLite at fp32 or fp16, or to OpenVINO at int8")


@dataclass
class TfliteExportSettings:
    """Converted from the float PyTorch model; FP16/INT8 by ai-edge-quantizer on the converted file."""

    precision: VisionPrecision = option(
        "fp32", label="Precision", help="fp16: float16 weights; int8: int8 weights and activations, calibrated")
    verify_frames: int = option(12, label="Frames to verify on", min=1, max=27,
                                help="Bundled frames run through the source and the .tflite for parity")
    int8_target: float = option(
        0.95, label="INT8 fidelity target", min=0.0, max=1.0,
        help="int8 of a detector, segmenter, pose or OBB model: the sensitivity search keeps the most harmful "
             "units float until the task's metric against the FP32 file reaches this")
    calibration_frames: int = option(32, label="INT8 calibration frames", min=8, max=300,
                                     help="int8: frames whose activation ranges set the int8 scales (every op's "
                                          "tensors recorded per frame: the slowest part of an INT8 export)")
    int8_search_units: int = option(
        12, label="INT8 search: units tried", min=1, max=64,
        help="int8 of a detector, segmenter, pose or OBB model: how many op units nearest the outputs the search "
             "quantizes alone and judges (about 5 s each for yolov8s at 640 on 2 cores); fewer is faster and may "
             "leave a harmful unit untried")
    int8_search_frames: int = option(
        12, label="INT8 search: frames", min=1, max=27,
        help="Frames held out of calibration that each candidate INT8 file is scored on (as many judging frames "
             "judge the result); fewer is faster and noisier")


class TfliteExport(Exporter):
    id = "export.tflite"
    title = "TFLite (LiteRT)"
    format = "tflite"
    suffix = ".tflite"
    Settings = TfliteExportSettings
    # From the float PyTorch model, quantized by ai-edge-quantizer; language models at FP32 only
    # (studio.lm.mobile converts them at a fixed window).
    exports = (Exports(VISION, VISION_PRECISIONS, native=VISION_PRECISIONS),
               Exports(LANGUAGE, ("fp32",), native=("fp32",)))
    torch_reason = "TFLite is converted from a PyTorch module, and this model has none"
    onnx_route = True

    def precision_reasons(self, model: ModelHandle, precision: str) -> list[str]:
        if precision == "int8" and model.decoder == "rtdetr":
            # Measured: ai-edge-quantizer calibrates yolov8-rtdetr (3 min), then the process aborts (SIGABRT, no
            # Python error to catch), so it is refused before the conversion starts.
            return [RTDETR_INT8]
        if precision == "int8" and model.torch_module is None and model.onnx_path is not None \
                and model.task in _DETECTORS and not is_language_model(model):
            # An ONNX-only detector whose head has no known name is refused here, before any format is written
            # or verified (it used to be refused inside the converter, after the formats asked before it).
            try:
                _onnx_head_scope(model)
            except UnsupportedError as refused:
                return [str(refused)]
        return []

    def export(self, model: ModelHandle, settings: TfliteExportSettings, target: Path, ctx: TaskContext) -> dict:
        if is_language_model(model):  # a fixed window of tokens, verified in ai_edge_litert
            from studio.lm.mobile import tflite_language

            return tflite_language(model, target, ctx)
        for reason in self.precision_reasons(model, settings.precision):  # callers other than run_export
            raise UnsupportedError(reason)
        keep_float = None
        if model.torch_module is None and settings.precision == "int8" and model.task in _DETECTORS:
            keep_float = _onnx_head_scope(model)
        # A variant of an Ultralytics model may have lost its PyTorch module (an ONNX-only step): it then goes
        # through its ONNX graph, whose boxes are pixels, not through Ultralytics' exporter.
        ultralytics = model.metadata.get("family") == "ultralytics" and model.torch_module is not None
        converted = target if settings.precision == "fp32" else target.with_name(f"{target.stem}.fp32.tflite")
        details: dict = {}
        if ultralytics:
            from plugins.export.ultralytics_route import ultralytics_export

            ctx.progress(0.05, "converting with litert-torch")
            ultralytics_export(model, "tflite", converted)
        else:
            from plugins.export.onnx_torch_route import convertible_torch

            source, details = convertible_torch(model, ctx)  # check() admitted its PyTorch module or ONNX graph
            ctx.check_cancelled()
            ctx.progress(0.05, "converting with litert-torch")
            _convert_torch(source, converted)
        from studio.runtime.litert_backend import LiteRtBackend

        # Ultralytics' LiteRT export normalises detection boxes to 0–1 where the ONNX graph gives pixels.
        # Ultralytics' LiteRT export normalises boxes (and a pose head's keypoints, an OBB head's xywh) to 0–1.
        # RT-DETR's head normalises its boxes itself, in every format, and its decoder scales them: nothing to undo.
        scaled = ultralytics and model.task in (Task.DETECT, Task.SEGMENT, Task.POSE, Task.OBB) and \
            model.decoder != "rtdetr"

        def backend(path: Path) -> LiteRtBackend:
            made = LiteRtBackend(path, threads=2, box_decoder=model.decoder if scaled else None, boxes_known=True)
            return made.with_keypoints_of(model) if scaled else made

        if converted != target:
            from plugins.export.tflite_quantize import quantize_tflite

            ctx.check_cancelled()
            details |= quantize_tflite(converted, target, settings.precision, model, ctx.sub(0.05, 0.6),
                                       calibration_samples=settings.calibration_frames, keep_float=keep_float,
                                       backend=backend, target_fidelity=settings.int8_target,
                                       search_units=settings.int8_search_units,
                                       search_frames=settings.int8_search_frames)
            converted.unlink()
        details["metadata"] = write_metadata(target, model, boxes_normalised=scaled)
        ctx.progress(0.6, "verifying in ai_edge_litert")
        run = backend(target).run
        from studio.runtime.backends import OrtBackend
        from studio.verify import parity

        check = parity(model, OrtBackend(source_graph(model), threads=2).run, run, verification_size(model),
                       frames=settings.verify_frames, ctx=ctx.sub(0.6, 1.0))
        return {"runtime": "ai_edge_litert interpreter", "parity": check, **details}


def json_metadata(model: ModelHandle, *, boxes_normalised: bool = False) -> dict:
    """Ultralytics' metadata.json keys (task, names, imgsz, stride, kpt_shape, end2end) plus the studio's
    provenance; ``boxes_normalised`` says that coordinates come out 0–1 (an INT8 re-quantisation drops
    Ultralytics' own metadata.json, and the reader would otherwise have to guess from the output range)."""
    flat = artifact_metadata(model)
    image = model.image_input
    own = {k.removeprefix("deploy_studio."): v for k, v in flat.items() if k.startswith("deploy_studio.")}
    if boxes_normalised:
        own[TFLITE_BOXES] = "normalised"
    return {"description": flat["description"], "author": flat["author"], "task": flat["task"], "batch": 1,
            "names": dict(enumerate(model.labels)),
            **({"imgsz": list(image.size), "stride": image.stride} if image is not None else {}),
            **_head_fields(model),
            "deploy_studio": own}


def _head_fields(model: ModelHandle) -> dict:
    """kpt_shape, end2end and mask_channels as Ultralytics' metadata.json holds them (a list, a bool, a number)."""
    from studio.loaders.ultralytics_support import kpt_shape_from

    meta, fields = model.metadata, dict[str, Any]()
    if (kpt_shape := kpt_shape_from(meta)) is not None:
        fields["kpt_shape"] = list(kpt_shape)
    if "end2end" in meta:
        fields["end2end"] = meta["end2end"] == "True"
    if meta.get("mask_channels", "").isdigit():
        fields["mask_channels"] = int(meta["mask_channels"])
    return fields


def write_metadata(target: Path, model: ModelHandle, *, boxes_normalised: bool = False) -> str:
    """Append the metadata as a zip entry after the flatbuffer, as Ultralytics does (LiteRT ignores
    trailing bytes). A file that already carries Ultralytics' metadata.json gets deploy_studio.json."""
    import json
    import zipfile

    with zipfile.ZipFile(target, "a", zipfile.ZIP_DEFLATED) as archive:
        name = "deploy_studio.json" if "metadata.json" in archive.namelist() else "metadata.json"
        archive.writestr(name, json.dumps(json_metadata(model, boxes_normalised=boxes_normalised), indent=2))
    return name


def read_metadata(path: Path) -> dict:
    """Every JSON entry appended to a .tflite, merged (metadata.json first)."""
    import json
    import zipfile

    merged: dict = {}
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist(), key=lambda n: n != "metadata.json"):
            if name.endswith(".json"):
                merged |= json.loads(archive.read(name))
    return merged


def _onnx_head_scope(model: ModelHandle) -> str:
    """The TFLite op scope of an ONNX-only detector's decoding head, kept float in INT8.

    onnx2torch names each module after its ONNX node, so the Ultralytics head's nodes (``/model.N/…``, N the
    last stage) become ``_model/N/`` scopes; its convolution branches (cv2, cv3) quantize well and are left to
    INT8, its decoding (DFL, box arithmetic, the final concatenation named after the output) is not. Measured on
    yolov8s-fall's ONNX: mAP50 0.968 against 0.0 with the whole head in INT8. Other detectors' heads have no
    name to find them by: refused.
    """
    import re

    import onnx

    assert model.onnx_path is not None, "check() admitted only models with an ONNX graph"
    graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
    stages = {int(match.group(1)) for node in graph.node if (match := re.match(r"/model\.(\d+)/", node.name))}
    if not stages:
        raise UnsupportedError(
            "INT8 TFLite of a detector that exists only as ONNX needs its decoding head kept float, and this "
            "graph's head cannot be told by its node names (only Ultralytics' /model.N/ names are known)",
            path=model.onnx_path,
            fix="export the PyTorch model with --to tflite --precision int8, or this ONNX at --precision fp16")
    return rf"_model/{max(stages)}/(?!cv[23]/)|serving_default_output"


def _convert_torch(model: ModelHandle, target: Path) -> None:
    import litert_torch
    import torch

    shape = tuple(int(d) for d in model.inputs[0].shape) if all(
        isinstance(d, int) for d in model.inputs[0].shape) else (1, 3, *verification_size(model))
    converted = litert_torch.convert(model.torch_module.eval(), (torch.zeros(shape),))
    converted.export(str(target))
