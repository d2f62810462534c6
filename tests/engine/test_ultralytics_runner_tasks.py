"""The Ultralytics reference runner (``bench --runtime ultralytics``) returns each task's own array, not boxes alone:
masks, keypoints and oriented boxes from ``Results`` agree with the studio's own predictor on the same file and frame
by the task's metric (an OBB model used to end in an AttributeError: its ``Results.boxes`` is None)."""

from __future__ import annotations

import os

import pytest

from studio.evaluate.fidelity import TARGET_CONF, compare_results
from studio.loaders import load_model
from studio.runtime.predictor import make_predictor
from studio.runtime.ultralytics_runner import UltralyticsRunner

CASES = {"segment": ("masks", "mask_map50"), "pose": ("keypoints", "pose_map50"), "obb": ("rotated", "obb_map50")}


@pytest.mark.parametrize("task", list(CASES))
def test_the_reference_runner_gives_the_task_array_the_studio_agrees_with(task, tmp_path, bus_path):
    import cv2

    os.environ.setdefault("YOLO_OFFLINE", "1")
    if task == "segment":
        from bench.tasks import seg_checkpoint

        handle = load_model(str(seg_checkpoint(tmp_path)), trust=True)
    else:
        handle = load_model({"pose": "zoo:yolo11n-pose", "obb": "zoo:yolov8n-obb-dota"}[task])
    frame = cv2.imread(str(bus_path))
    field, metric = CASES[task]
    reference, _, _ = UltralyticsRunner(handle, threads=2, conf=TARGET_CONF)(frame)
    assert len(reference) > 0 and getattr(reference, field) is not None
    assert getattr(reference, field).shape[0] == len(reference)
    if task == "segment":
        assert reference.masks.shape[1:] == frame.shape[:2]  # original pixels, as the studio's decoders give them
    if task == "pose":
        assert reference.keypoints.shape[1:] == (17, 3)
    studio = make_predictor(handle, "torch", conf=0.001)(frame).result
    agreement = compare_results([reference], [studio])
    assert agreement["metric"] == metric and agreement["value"] >= 0.9, agreement
