"""An optimize report judges a segmentation, pose or OBB variant by the task's own metric (mask mAP50, OKS pose mAP50,
probiou OBB mAP50), box mAP50 beside it, and reads a labelled folder of that task's YOLO rows (issue 20, item 4).

Pose and OBB run the zoo's real checkpoints. No segmentation weights ship in the studio's packages: that model is
bench/tasks.py's person segmenter (yolo11n-pose's trained boxes, a random mask head), so its boxes are real and its
masks noise — the keys and evidence are what is checked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from studio.recipe import Recipe, Step


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory) -> Path:
    """bench/tasks.py's person segmenter: yolo11n-pose's trained boxes under a random mask head."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from bench.tasks import seg_checkpoint

    return seg_checkpoint(tmp_path_factory.mktemp("seg"))


def _person_pose_row(x0: float, y0: float, x1: float, y1: float) -> str:
    """A person box with 17 keypoints down its middle (all visible), normalised."""
    points = " ".join(f"{(x0 + x1) / 2:.3f} {y0 + (y1 - y0) * (k + 1) / 18:.3f} 2" for k in range(17))
    return f"0 {(x0 + x1) / 2:.3f} {(y0 + y1) / 2:.3f} {x1 - x0:.3f} {y1 - y0:.3f} {points}"


# Per task: the model, whether it is trusted code, the report's metric and the words its method names, and two
# label rows of bus.jpg in that task's YOLO format (the two people at the left and right edge; a vehicle for OBB).
TASKS = {
    "segment": (None, "mask_map50", "mask IoU", "mask mAP50",
                ["0 0.06 0.23 0.30 0.23 0.30 0.93 0.06 0.93", "0 0.72 0.23 0.99 0.23 0.99 0.85 0.72 0.85"]),
    "pose": ("zoo:yolo11n-pose", "pose_map50", "OKS", "pose mAP50 (OKS)",
             [_person_pose_row(0.06, 0.23, 0.30, 0.93), _person_pose_row(0.72, 0.23, 0.99, 0.85)]),
    "obb": ("zoo:yolov8n-obb-dota", "obb_map50", "probabilistic IoU", "OBB mAP50 (probiou)",
            ["9 0.02 0.23 0.98 0.23 0.98 0.74 0.02 0.74", "9 0.06 0.23 0.30 0.23 0.30 0.93 0.06 0.93"]),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_optimize_report_judges_the_variant_by_the_task_metric(task, seg_model, tmp_path, bus_path):
    from studio.loaders import load_model
    from studio.optimize import optimize_model
    from studio.report_text import optimize_text

    spec, metric, method, words, rows = TASKS[task]
    labels = tmp_path / "labelled"
    (labels / "images").mkdir(parents=True)
    (labels / "labels").mkdir()
    shutil.copy(bus_path, labels / "images" / "bus.jpg")
    (labels / "labels" / "bus.txt").write_text("".join(row + "\n" for row in rows))
    handle = load_model(spec, trust=False) if spec else load_model(str(seg_model), trust=True)
    report, _ = optimize_model(handle, Recipe((Step("quantize.fp16", {}, 1),)), tmp_path / "out", runs=3,
                               fidelity_frames_count=3, labels_dir=labels)
    fidelity = report["fidelity"]
    assert fidelity["metric"] == metric and fidelity["value"] == fidelity[metric], fidelity
    assert 0.0 <= fidelity["value"] <= 1.0 and 0.0 <= fidelity["box_map50"] <= 1.0
    assert fidelity["map50"] == fidelity["box_map50"]  # the box figure a detector's readers know stays
    assert fidelity["evidence"]["unit"] == "baseline instances" and fidelity["targets"] > 0
    assert method in fidelity["method"] and fidelity["interval"] is not None
    if task != "segment":  # real weights: an FP16 copy answers as the FP32 model does
        assert fidelity["value"] >= 0.9, fidelity
    text = optimize_text(report)
    assert f"fidelity {words} {fidelity['value']}" in text, text
    for side in ("baseline", "variant"):
        accuracy = report["accuracy"][side]
        assert accuracy["metric"] == metric and accuracy["targets"] == 2, accuracy
        assert accuracy["evidence"]["unit"] == "labelled instances" and method in accuracy["method"]
    assert f"true {words} on" in text, text


def test_export_parity_of_a_segmentation_model_is_judged_by_its_masks(seg_model, tmp_path):
    from studio.export import run_export
    from studio.report_text import export_text

    report = run_export(str(seg_model), ["onnx"], tmp_path / "out", trust=True)
    agreement = report["exports"][0]["parity"]["agreement"]
    assert agreement["metric"] == "mask_map50" and "box_map50" in agreement
    assert agreement["evidence"]["unit"] == "baseline instances" and agreement["evidence"]["count"] > 0
    assert f"mask mAP50 {agreement['value']}" in export_text(report)
