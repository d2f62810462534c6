"""OpenVINO IR export (model.xml + model.bin), re-opened and run by OpenVINO's own runtime.

An INT8 variant arrives as a QDQ ONNX graph; OpenVINO reads the QuantizeLinear/DequantizeLinear pairs
and runs the convolutions in INT8, so the IR stays INT8 without a second quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugins.export.common import Exporter, artifact_metadata, source_graph, verification_size
from studio.model import ModelHandle
from studio.plugin_api import option
from studio.tasks import TaskContext


@dataclass
class OpenVinoExportSettings:
    fp16_weights: bool = option(False, label="Store weights in FP16", help="Halves the .bin; compute stays FP32")


class OpenVinoExport(Exporter):
    id = "export.openvino"
    title = "OpenVINO IR"
    format = "openvino"
    suffix = "_openvino"
    Settings = OpenVinoExportSettings

    def export(self, model: ModelHandle, settings: OpenVinoExportSettings, target: Path, ctx: TaskContext) -> dict:
        import openvino as ov

        ctx.progress(0.1, "converting to OpenVINO IR")
        source = source_graph(model)
        converted = ov.convert_model(str(source))
        for key, value in artifact_metadata(model).items():
            converted.set_rt_info(value, ["model_info", key.replace(".", "_")])
        target.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(target / "model.xml"), compress_to_fp16=settings.fp16_weights)
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
        return {"runtime": f"openvino {ov.__version__} (CPU, f32 inference)", "parity": check}
