"""FP16 weights and activations, inputs and outputs kept FP32 (onnxruntime's float16 converter)."""

from __future__ import annotations

from dataclasses import dataclass

from plugins.quantize.common import common_reasons, resolve_nodes
from studio.model import ModelHandle
from studio.plugin_api import VISION, Kind, Provides, option
from studio.tasks import TaskContext
from studio.variants import onnx_variant


@dataclass
class Fp16Settings:
    keep_in_float: list[str] = option([], label="Keep in FP32 (node names or patterns)")


class Fp16:
    id = "quantize.fp16"
    title = "FP16 (I/O kept FP32)"
    kind = Kind.QUANTIZE
    provides = (Provides("fp16", VISION),)
    Settings = Fp16Settings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        return common_reasons(model)

    def apply(self, model: ModelHandle, settings: Fp16Settings, ctx: TaskContext) -> ModelHandle:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        from studio.runtime.onnx_export import ensure_onnx

        ctx.progress(0.1, "converting to FP16")
        source = onnx.load(str(ensure_onnx(model)))
        keep = resolve_nodes(source.graph, settings.keep_in_float, "keep_in_float")
        converted = convert_float_to_float16(source, keep_io_types=True, node_block_list=keep or None)
        out = ctx.scratch("fp16-") / "fp16.onnx"
        onnx.save(converted, str(out))
        ctx.progress(1.0, "done")
        return onnx_variant(model, out, suffix="fp16", note="FP16, inputs and outputs FP32")
