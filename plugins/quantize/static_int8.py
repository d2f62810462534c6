"""INT8 static quantization (QDQ) with onnxruntime.quantization, calibrated on real frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from plugins.quantize.common import (
    FLOAT_STEM_HELP,
    TensorReader,
    calibration_inputs,
    common_reasons,
    needs_frames,
    prepared_float_graph,
    reduce_range_choice,
    resolve_nodes,
)
from plugins.quantize.stem import keep_stem_float
from studio.model import ModelHandle
from studio.plugin_api import VISION, Kind, Provides, option
from studio.tasks import TaskContext
from studio.variants import onnx_variant

METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass
class StaticInt8Settings:
    calibration: Path | None = option(None, label="Calibration images or video",
                                      help="An image folder or a video; empty uses the bundled media")
    samples: int = option(32, label="Calibration frames", min=8, max=2048)
    method: Literal["minmax", "entropy", "percentile"] = option("minmax", label="Calibration method", search=True)
    per_channel: bool = option(True, label="Per-channel weights")
    activations: Literal["uint8", "int8"] = option(
        "uint8", label="Activation type", help="uint8 suits x86 CPUs (VNNI), int8 suits ARM")
    exclude: list[str] = option([], label="Keep in float (node names or patterns)",
                                help="e.g. /model.22/* keeps a whole block in float")
    float_stem: bool = option(True, label="Keep the first layer float", help=FLOAT_STEM_HELP)
    outlier_report: bool = option(True, label="Activation outlier report",
                                  help="Range and kurtosis of every activation; the layers likely to hurt INT8")
    reduce_range: Literal["auto", "on", "off"] = option(
        "auto", label="7-bit weights (reduce_range)",
        help="auto: on when this CPU has no VNNI, where onnxruntime's u8s8 kernels can saturate; "
             "on: for a model that will run on such CPUs (AVX2, AVX-512 without VNNI)")


def quantize_static_graph(float_graph: Path, out: Path, reader: TensorReader, settings, *,
                          exclude: list[str] | None = None, only: list[str] | None = None,
                          cache: Path | None = None) -> Path:
    """onnxruntime's quantize_static with the studio's settings; ``cache`` reuses one calibration."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(float_graph), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
        activation_type=QuantType.QUInt8 if settings.activations == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=exclude or None, nodes_to_quantize=only or None,
        calibrate_method=getattr(CalibrationMethod, METHODS[settings.method]),
        calibration_cache_path=str(cache) if cache else None,
        reduce_range=reduce_range_choice(settings)[0],
    )
    return out


class StaticInt8:
    id = "quantize.static_int8"
    title = "INT8 static (QDQ)"
    kind = Kind.QUANTIZE
    provides = (Provides("int8", VISION),)
    Settings = StaticInt8Settings
    settings_version = 2

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 quantized the stem too.
        return {**data, "float_stem": False} if version < 2 else data

    def check(self, model: ModelHandle) -> list[str]:
        return common_reasons(model) or needs_frames(model)

    def apply(self, model: ModelHandle, settings: StaticInt8Settings, ctx: TaskContext) -> ModelHandle:
        import onnx

        float_graph = prepared_float_graph(model, ctx.sub(0.0, 0.05))
        stem = keep_stem_float(float_graph) if settings.float_stem else None
        graph = onnx.load(str(float_graph), load_external_data=False).graph
        exclude = resolve_nodes(graph, settings.exclude, "exclude")
        exclude += [n for n in (stem or {}).get("nodes", []) if n not in exclude]
        tensors, info = calibration_inputs(model, settings.calibration, settings.samples, ctx.sub(0.05, 0.1))
        reader = TensorReader(graph.input[0].name, tensors, ctx.sub(0.1, 0.8))
        out = float_graph.with_name("int8_static.onnx")
        quantize_static_graph(float_graph, out, reader, settings, exclude=exclude)
        ctx.add_report({"calibration": info, "kept_in_float": exclude, "float_stem": stem,
                        "reduce_range": reduce_range_choice(settings)[1]})
        if settings.outlier_report:
            from studio.activation_stats import activation_report

            ctx.add_report({"activation_outliers": activation_report(float_graph, tensors[:16], ctx.sub(0.8, 1.0))})
        ctx.progress(1.0, "done")
        note = (f"INT8 static QDQ, {settings.method}, {info['frames']} calibration frames"
                + (", first layer float" if stem and stem["nodes"] else ""))
        return onnx_variant(model, out, suffix="int8", note=note)
