"""OpenVINO IR export (model.xml + model.bin), re-opened and run by OpenVINO's own runtime.

Precision is OpenVINO's own: FP16 compresses the stored weights (compute stays FP32 on CPU), INT8 is
NNCF post-training quantization (OpenVINO's quantizer) calibrated on the same frames as the ONNX INT8
path. A detector's decoding tail (everything between the last convolutions and the outputs: DFL
softmax, box arithmetic, sigmoid, concatenation) is left float, as Ultralytics' own OpenVINO INT8
export does: one INT8 scale cannot hold pixel boxes and 0–1 scores at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.export.common import (
    VISION_PRECISIONS,
    Exporter,
    VisionPrecision,
    precision_from_flag,
    source_graph,
    verification_size,
)
from studio.artifact_metadata import artifact_metadata
from studio.model import ModelHandle
from studio.plugin_api import VISION, Exports, option
from studio.tasks import TaskContext


@dataclass
class OpenVinoExportSettings:
    precision: VisionPrecision = option(
        "fp32", label="Precision",
        help="fp16: weights stored in FP16 (half the .bin); int8: NNCF post-training quantization, calibrated")
    calibration_frames: int = option(64, label="INT8 calibration frames", min=8, max=300)


class OpenVinoExport(Exporter):
    id = "export.openvino"
    title = "OpenVINO IR"
    format = "openvino"
    suffix = "_openvino"
    Settings = OpenVinoExportSettings
    # From the float graph, by OpenVINO's own tools (compress_to_fp16, NNCF); no language models.
    exports = (Exports(VISION, VISION_PRECISIONS, native=VISION_PRECISIONS),)
    settings_version = 2
    migrate = precision_from_flag("fp16_weights")

    def export(self, model: ModelHandle, settings: OpenVinoExportSettings, target: Path, ctx: TaskContext) -> dict:
        import openvino as ov

        ctx.progress(0.1, "converting to OpenVINO IR")
        source = source_graph(model)
        converted = ov.convert_model(str(source))
        details: dict[str, Any] = {}
        if settings.precision == "int8":
            converted, details = _nncf_int8(converted, source, model, settings, ctx.sub(0.1, 0.45))
        for key, value in artifact_metadata(model).items():
            converted.set_rt_info(value, ["model_info", key.replace(".", "_")])
        target.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(target / "model.xml"), compress_to_fp16=settings.precision == "fp16")
        ctx.progress(0.5, "verifying in OpenVINO")
        core = ov.Core()
        compiled = core.compile_model(str(target / "model.xml"), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})

        def run_openvino(tensor):
            result = compiled([tensor])
            return [result[output] for output in compiled.outputs]

        from studio.runtime.backends import OrtBackend
        from studio.verify import parity

        check = parity(model, OrtBackend(source, threads=2).run, run_openvino, verification_size(model),
                       ctx=ctx.sub(0.5, 1.0))
        return {"runtime": f"openvino {ov.__version__} (CPU, f32 inference)", "parity": check, **details}


def decoding_tail(onnx_path: Path) -> list[str]:
    """Names of the nodes between a detector's last convolutions and its outputs.

    Walks back from the outputs through every node that is not a convolution; a convolution fed by
    a Softmax (Ultralytics' DFL, fixed weights 0..15) is part of the decoding too.
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    tail: dict[str, Any] = {}
    pending = [producer[o.name] for o in graph.output if o.name in producer]
    while pending:
        node = pending.pop()
        if node.name in tail:
            continue
        if node.op_type == "Conv":
            feeder = producer.get(node.input[0])
            if feeder is None or feeder.op_type not in ("Softmax", "Transpose", "Reshape"):
                continue
        tail[node.name] = node
        pending.extend(producer[i] for i in node.input if i in producer)
    return sorted(tail)


def _nncf_int8(converted: Any, source: Path, model: ModelHandle, settings: OpenVinoExportSettings,
               ctx: TaskContext) -> tuple[Any, dict[str, Any]]:
    import nncf

    from studio.calibration import calibration_frames
    from studio.runtime.preprocess import prepare

    if any(op.get_type_name() == "FakeQuantize" for op in converted.get_ops()):
        return converted, {"quantizer": "none: the variant is already INT8 (its QDQ pairs became FakeQuantize)"}
    ctx.progress(0.0, "reading calibration frames")
    frames, info = calibration_frames(None, settings.calibration_frames, ctx)
    size = verification_size(model)
    tensors = [prepare(frame, model.required_image_input(), size, rect=False)[0] for frame in frames]
    detector = model.task.value in ("detect", "segment", "pose", "obb")
    ignored = decoding_tail(source) if detector else []
    names = {op.get_friendly_name() for op in converted.get_ops()}
    ignored = [name for name in ignored if name in names]
    ctx.progress(0.2, "NNCF post-training quantization")
    quantized = nncf.quantize(converted, nncf.Dataset(tensors), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(tensors),
                              ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None)
    fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    return quantized, {"quantizer": f"nncf {nncf.__version__} (preset MIXED)", "calibration": info,
                       "kept_float": len(ignored), "fake_quantize_ops": fake_quantize}
