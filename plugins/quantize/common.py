"""What the quantization plugins share: the float graph to start from, calibration, node selection."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from studio.calibration import calibration_frames, model_inputs
from studio.model import ModelHandle, Task
from studio.plugin_api import SettingsError
from studio.tasks import TaskContext

FLOAT_STEM_HELP = ("The convolution that reads the image stays float (with the ops up to the next layer): "
                   "onnxruntime's INT8 kernel is slower than float on 3 input channels, and it is the layer INT8 "
                   "hurts most. Turn off for a runtime whose INT8 stem is fast.")
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger",
                 "QLinearMatMul", "DynamicQuantizeLinear", "MatMulNBits"}


def graph_of(model: ModelHandle) -> Any:
    import onnx

    from studio.runtime.onnx_export import ensure_onnx

    return onnx.load(str(ensure_onnx(model)), load_external_data=False)


def common_reasons(model: ModelHandle) -> list[str]:
    """Why a quantizer cannot start on ``model`` (empty when it can)."""
    if model.task in (Task.GENERATE, Task.EMBED):
        return ["for a language model use 'Language model weights INT8 / INT4' (quantize.lm_weights)"]
    if model.onnx_path is None and model.torch_module is None:
        return ["it has neither an ONNX graph nor a PyTorch module"]
    if model.onnx_path is not None:
        import onnx

        graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
        if any(node.op_type in QUANTIZED_OPS for node in graph.node):
            return ["it is already quantized"]
    return []


def needs_frames(model: ModelHandle) -> list[str]:
    return [] if model.image_input is not None else ["calibration feeds frames, and this model does not take images"]


def prepared_float_graph(model: ModelHandle, ctx: TaskContext) -> Path:
    """The model's float ONNX graph after onnxruntime's quantization pre-processing (shape inference, folding)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from studio.runtime.onnx_export import ensure_onnx

    ctx.progress(0.0, "preparing the float graph")
    out = ctx.scratch("prep-") / "float.onnx"
    # Symbolic shape inference cannot finish on dynamic-size detectors; ONNX's own inference still runs.
    quant_pre_process(str(ensure_onnx(model)), str(out), skip_symbolic_shape=True)
    return out


class TensorReader:
    """onnxruntime's CalibrationDataReader over pre-processed input tensors."""

    def __init__(self, input_name: str, tensors: list[np.ndarray], ctx: TaskContext | None = None):
        self.input_name, self.tensors, self.ctx, self.index = input_name, tensors, ctx, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.tensors):
            return None
        if self.ctx is not None:
            self.ctx.progress(self.index / len(self.tensors), f"calibrating {self.index + 1}/{len(self.tensors)}")
        self.index += 1
        return {self.input_name: self.tensors[self.index - 1]}

    def __len__(self) -> int:
        return len(self.tensors)

    def rewind(self) -> None:
        self.index = 0


def calibration_inputs(model: ModelHandle, source: Path | None, samples: int,
                       ctx: TaskContext) -> tuple[list[np.ndarray], dict[str, Any]]:
    frames, info = calibration_frames(source, samples, ctx)
    return model_inputs(model, frames), info


def reduce_range_choice(settings: Any) -> tuple[bool, dict[str, Any]]:
    """(reduce_range, why): 7-bit INT8 weights where onnxruntime's u8s8 dot products can saturate.

    Without VNNI (AVX2, AVX-512BW) onnxruntime multiplies u8 activations by s8 weights with
    ``vpmaddubsw``, whose int16 pair sums saturate; 7-bit weights keep them in range at a small cost in
    resolution. ``auto`` decides by the CPU the quantization runs on, and the report says which it chose.
    """
    from studio.machine import cpu_description

    choice = getattr(settings, "reduce_range", "off")
    cpu = cpu_description()
    value = (not cpu["vnni"] and cpu["machine"] in ("x86_64", "AMD64")) if choice == "auto" else choice == "on"
    reason = (f"auto: {'on' if value else 'off'} ({cpu['int8_path']})" if choice == "auto"
              else f"{choice} (set in the recipe)")
    return value, {"setting": choice, "used": value, "why": reason}


def resolve_nodes(graph: Any, patterns: list[str], setting: str) -> list[str]:
    """Node names matching ``patterns`` (exact names, or shell patterns such as ``/model.22/*``)."""
    names = [node.name for node in graph.node]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            example = ", ".join(names[:3])
            raise SettingsError(f"setting '{setting}': no node matches {pattern!r}",
                                fix=f"use node names or patterns such as /model.22/* (e.g. {example})")
        chosen += [h for h in hits if h not in chosen]
    return chosen
