"""INT8 dynamic quantization: weights stored in INT8, activations quantized on the fly.

Made for Linear-heavy models (transformers). On convolutions onnxruntime runs ConvInteger, which on
x86 is usually slower than FP32 (see STACK.md); the optimize report measures and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plugins.quantize.common import common_reasons, prepared_float_graph, resolve_nodes
from studio.model import ModelHandle
from studio.plugin_api import Kind, option
from studio.tasks import TaskContext
from studio.variants import onnx_variant

OPS = {"linear": ["MatMul", "Gemm"], "all": ["MatMul", "Gemm", "Conv"]}


@dataclass
class DynamicInt8Settings:
    ops: Literal["linear", "all"] = option("linear", label="Layers to quantize",
                                           help="linear: MatMul/Gemm only; all: convolutions too (often slower)")
    per_channel: bool = option(False, label="Per-channel weights")
    weights: Literal["int8", "uint8"] = option("int8", label="Weight type")
    exclude: list[str] = option([], label="Keep in float (node names or patterns)")


class DynamicInt8:
    id = "quantize.dynamic_int8"
    title = "INT8 dynamic (weights INT8)"
    kind = Kind.QUANTIZE
    Settings = DynamicInt8Settings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        return common_reasons(model)

    def apply(self, model: ModelHandle, settings: DynamicInt8Settings, ctx: TaskContext) -> ModelHandle:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        float_graph = prepared_float_graph(model, ctx.sub(0.0, 0.2))
        graph = onnx.load(str(float_graph), load_external_data=False).graph
        exclude = resolve_nodes(graph, settings.exclude, "exclude")
        targets = [n for n in graph.node if n.op_type in OPS[settings.ops] and n.name not in exclude]
        if not targets:
            ops = "/".join(OPS[settings.ops])
            ctx.add_report({"warning": f"the graph has no {ops} node to quantize; the variant equals the float model"})
        ctx.progress(0.3, "quantizing weights")
        out = float_graph.with_name("int8_dynamic.onnx")
        quantize_dynamic(str(float_graph), str(out), op_types_to_quantize=OPS[settings.ops],
                         per_channel=settings.per_channel, nodes_to_exclude=exclude or None,
                         weight_type=QuantType.QInt8 if settings.weights == "int8" else QuantType.QUInt8)
        ctx.add_report({"quantized_nodes": len(targets), "ops": OPS[settings.ops],
                        "note": "dynamic quantization of convolutions (ConvInteger) is usually slower than FP32 "
                                "on x86; compare the measured latencies"})
        ctx.progress(1.0, "done")
        return onnx_variant(model, out, suffix="int8dyn", note=f"INT8 dynamic ({settings.ops})")
