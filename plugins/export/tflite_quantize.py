"""FP16 and INT8 TFLite from the FP32 file, with Google's ai-edge-quantizer (LiteRT's own quantizer).

- FP16: weights cast to float16 (``FLOAT_CASTING``); compute stays FP32, the file halves.
- INT8: static int8 weights and activations (``static_wi8_ai8``) calibrated on the same frames as the
  ONNX INT8 path (``studio.calibration``, disjoint from the verification frames). A detector's
  decoding (DFL softmax, box arithmetic, the concatenation of pixel boxes with 0–1 scores) stays
  float: one int8 scale for 0–640 boxes and 0–1 scores rounds every score to zero, the same reason
  the ONNX mixed-INT8 plugin keeps the head's non-convolution ops float.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext

# Op scopes (TFLite tensor names carry the torch module path) that decode a detector's outputs.
DECODE_SCOPES = {
    "ultralytics": r"DFL_dfl|head\.Detect_\d+;|_NormalizeCoords;",
    "darknet": r"YoloDecode",
}


def _signature(path: Path) -> tuple[str, str, tuple[int, ...]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    shape = tuple(int(d) for d in interpreter.get_signature_runner(key).get_input_details()[name]["shape"])
    return key, name, shape


def calibration_inputs(model: ModelHandle, shape: tuple[int, ...], samples: int,
                       ctx: TaskContext) -> tuple[list[np.ndarray], dict[str, Any]]:
    from studio.calibration import calibration_frames
    from studio.runtime.preprocess import prepare

    nhwc = shape[-1] in (1, 3) and shape[1] not in (1, 3)
    size = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    frames, info = calibration_frames(None, samples, ctx)
    tensors = []
    for frame in frames:
        tensor = prepare(frame, model.required_image_input(), size, rect=False)[0]
        tensors.append(np.ascontiguousarray(tensor.transpose(0, 2, 3, 1) if nhwc else tensor))
    return tensors, info


def dtype_counts(path: Path) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return dict(Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()))


def quantize_tflite(source: Path, target: Path, precision: str, model: ModelHandle, ctx: TaskContext,
                    calibration_samples: int = 32, keep_float: str | None = None) -> dict[str, Any]:
    """Write ``target`` as the ``precision`` version of the FP32 ``source``; returns what was done.

    ``keep_float``: the op-scope regex of a detector's decoding to keep float, where the model's family does not
    name it (a detector rebuilt from ONNX carries its ONNX node names, not its PyTorch module path)."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    engine = quantizer.Quantizer(str(source))
    details: dict[str, Any] = {"quantizer": "ai-edge-quantizer"}
    if precision == "fp16":
        engine.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                      algorithm_key=AlgorithmName.FLOAT_CASTING)
        details["recipe"] = "weights cast to float16 (FLOAT_CASTING), compute in float32"
        result = engine.quantize(enable_progress_report=False)
    elif precision == "int8":
        steps = list(recipe.static_wi8_ai8())
        scope = keep_float or (DECODE_SCOPES.get(model.metadata.get("family", "")) if model.task.value in (
            "detect", "segment", "pose") else None)
        if scope:
            steps.append({"regex": scope, "operation": "*", "algorithm_key": AlgorithmName.NO_QUANTIZE.value,
                          "op_config": {}})
        engine.load_quantization_recipe(steps)
        key, name, shape = _signature(source)
        ctx.progress(0.1, "calibrating INT8 ranges")
        tensors, info = calibration_inputs(model, shape, calibration_samples, ctx)
        calibration = engine.calibrate({key: [{name: t} for t in tensors]}, num_threads=2)
        ctx.check_cancelled()
        ctx.progress(0.7, "quantizing")
        result = engine.quantize(calibration, enable_progress_report=False)
        details |= {"recipe": "static int8 weights and activations (static_wi8_ai8, min-max)"
                              + (f"; decoding ops kept float (/{scope}/)" if scope else ""),
                    "calibration": info}
    else:
        raise ValueError(f"no TFLite quantization for {precision}")
    result.export_model(str(target), overwrite=True)
    details["tensor_dtypes"] = dtype_counts(target)
    return details
