"""FP16 and INT8 TFLite from the FP32 file, with Google's ai-edge-quantizer (LiteRT's own quantizer).

- FP16: weights cast to float16 (``FLOAT_CASTING``); compute stays FP32, the file halves.
- INT8: static int8 weights and activations (``static_wi8_ai8``) calibrated on the same frames as the
  ONNX INT8 path (``studio.calibration``, disjoint from the verification frames). For a detector,
  segmenter, pose or OBB model, what stays float is found by a sensitivity search
  (``plugins.export.tflite_sensitivity``): units near the outputs each quantized alone and judged by the
  task's fidelity metric against the FP32 file, the most harmful kept float until the target is met.
  A detector rebuilt from ONNX (no module paths in its tensor names) keeps the head scope its caller
  names (``keep_float``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext

# Tasks whose INT8 file is searched for the units to keep float (their decoding mixes scales int8 cannot share).
SEARCHED_TASKS = ("detect", "segment", "pose", "obb")
# Defaults of the exporter's int8_search_frames and int8_search_units settings.
SEARCH_FRAMES = 12  # frames held out of calibration to judge each candidate on (and as many judging frames)
SEARCH_CANDIDATES = 12  # units nearest the outputs: about 5 s each for yolov8s at 640 on 2 cores


def _signature(path: Path) -> tuple[str, str, tuple[int, ...]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    shape = tuple(int(d) for d in interpreter.get_signature_runner(key).get_input_details()[name]["shape"])
    return key, name, shape


def input_hw(shape: tuple[int, ...]) -> tuple[int, int]:
    """Height and width of an image input, NCHW or NHWC."""
    nhwc = shape[-1] in (1, 3) and shape[1] not in (1, 3)
    return (shape[1], shape[2]) if nhwc else (shape[2], shape[3])


def calibration_inputs(model: ModelHandle, shape: tuple[int, ...], samples: int, ctx: TaskContext,
                       choosing: int = 0) -> tuple[list[np.ndarray], dict[str, Any], list[np.ndarray], str]:
    """(input tensors, where they came from, ``choosing`` frames held out of calibration, their note)."""
    from studio.calibration import calibration_and_choosing_frames, calibration_frames
    from studio.runtime.preprocess import prepare

    nhwc = shape[-1] in (1, 3) and shape[1] not in (1, 3)
    size = input_hw(shape)
    held: list[np.ndarray] = []
    note = ""
    if choosing:
        frames, info, held, note = calibration_and_choosing_frames(None, samples, choosing, ctx)
    else:
        frames, info = calibration_frames(None, samples, ctx)
    tensors = []
    for frame in frames:
        tensor = prepare(frame, model.required_image_input(), size, rect=False)[0]
        tensors.append(np.ascontiguousarray(tensor.transpose(0, 2, 3, 1) if nhwc else tensor))
    return tensors, info, held, note


def dtype_counts(path: Path) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return dict(Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()))


def quantize_tflite(source: Path, target: Path, precision: str, model: ModelHandle, ctx: TaskContext,
                    calibration_samples: int = 32, keep_float: str | None = None,
                    backend: Callable[[Path], Any] | None = None, target_fidelity: float = 0.95,
                    search_units: int = SEARCH_CANDIDATES, search_frames: int = SEARCH_FRAMES) -> dict[str, Any]:
    """Write ``target`` as the ``precision`` version of the FP32 ``source``; returns what was done.

    ``keep_float``: the op-scope regex of a detector's decoding to keep float (a detector rebuilt from ONNX
    carries its ONNX node names, not module paths to group by). Otherwise a detector-like model's INT8 is
    searched: ``backend`` opens a .tflite for scoring (as the export's verification does) and
    ``target_fidelity`` is the task metric against the FP32 file that the search stops at; it tries at most
    ``search_units`` units, each judged on ``search_frames`` frames."""
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
        static = list(recipe.static_wi8_ai8())
        steps = list(static)
        if keep_float:
            steps.append({"regex": keep_float, "operation": "*", "algorithm_key": AlgorithmName.NO_QUANTIZE.value,
                          "op_config": {}})
        engine.load_quantization_recipe(steps)  # every op quantized: calibration records every tensor's range
        key, name, shape = _signature(source)
        ctx.progress(0.05, "calibrating INT8 ranges")
        searched = not keep_float and backend is not None and model.task.value in SEARCHED_TASKS
        tensors, info, choosing, choosing_note = calibration_inputs(model, shape, calibration_samples, ctx,
                                                                    choosing=search_frames if searched else 0)
        calibration = engine.calibrate({key: [{name: t} for t in tensors]}, num_threads=2)
        ctx.check_cancelled()
        details |= {"recipe": "static int8 weights and activations (static_wi8_ai8, min-max)"
                              + (f"; decoding ops kept float (/{keep_float}/)" if keep_float else ""),
                    "calibration": info}
        if searched:
            assert backend is not None  # searched says so; for the type checker
            search = _search(source, target, calibration, static, model, backend, target_fidelity,
                             ctx.sub(0.3, 1.0), (choosing, choosing_note), units=search_units)
            kept = ", ".join(search["kept_in_float"]) or "none"
            details |= {"recipe": details["recipe"] + f"; kept float by sensitivity search: {kept}",
                        "int8_search": search, "tensor_dtypes": dtype_counts(target)}
            return details
        ctx.progress(0.7, "quantizing")
        result = engine.quantize(calibration, enable_progress_report=False)
    else:
        raise ValueError(f"no TFLite quantization for {precision}")
    result.export_model(str(target), overwrite=True)
    details["tensor_dtypes"] = dtype_counts(target)
    return details


def _search(source: Path, target: Path, calibration: Any, static: list[dict[str, Any]], model: ModelHandle,
            backend: Callable[[Path], Any], target_fidelity: float, ctx: TaskContext,
            choosing: tuple[list[np.ndarray], str], *, units: int = SEARCH_CANDIDATES) -> dict[str, Any]:
    """The sensitivity search, choosing on ``choosing`` (frames held out of calibration, their note) and
    judging the result on as many judging frames."""
    import tempfile

    from plugins.export.tflite_sensitivity import TfliteScorer, search_int8
    from studio.evaluate.frames import judging_frames

    hw = input_hw(_signature(source)[2])
    ctx.progress(0.0, "scoring the FP32 file on the frames held out of calibration")
    scorer = TfliteScorer(model, source, backend, hw, *choosing)
    judge = TfliteScorer(model, source, backend, hw, *judging_frames(len(choosing[0]), ctx))
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8-search-") as workdir:
        return search_int8(source, target, calibration, static, scorer, judge, Path(workdir), ctx,
                           target_fidelity=target_fidelity, max_candidates=units)
