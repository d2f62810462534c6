"""An optimize report of a segmentation model judges the variant by mask mAP50, box mAP50 beside it, and reads
a labelled segmentation folder as polygons (issue 20, item 4).

No segmentation weights ship in the studio's packages yet: the model is Ultralytics' yolov8n-seg.yaml with
random weights, its class biases raised so that it finds instances (with mask pixels) at the baseline's
conf 0.25 on the frames judged — the figures are meaningless, the keys and evidence are what is checked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from studio.recipe import Recipe, Step

PASSING = 200  # anchor-class pairs of bus.jpg raised above conf 0.3: a few dozen instances after NMS


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory, bus_path) -> Path:
    """yolov8n-seg.yaml, random weights (seed 0), its class biases set from its own logits on bus.jpg so that
    about ``PASSING`` anchor-class pairs score 0.3 (random logits barely vary: a fixed bias finds all or none)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import cv2
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolov8n-seg.yaml")
    classes = [branch[-1] for branch in yolo.model.model[-1].cv3]  # each stride's class-logit convolution
    for conv in classes:
        conv.bias.data.zero_()
    image = cv2.resize(cv2.imread(str(bus_path)), (640, 640))[:, :, ::-1].transpose(2, 0, 1) / 255.0
    with torch.no_grad():
        predictions = yolo.model.eval()(torch.from_numpy(image.copy()).float()[None])[0][0]  # (1, 4 + 80 + 32, anchors)
        scores = predictions[0, 4:84]
    logits = torch.logit(scores.clamp(1e-6, 1 - 1e-6)).flatten().sort().values
    bias = float(torch.logit(torch.tensor(0.3)) - logits[-PASSING])
    for conv in classes:
        conv.bias.data.fill_(bias)
    path = tmp_path_factory.mktemp("seg") / "yolov8n-seg-biased.pt"
    yolo.save(str(path))
    return path


def test_optimize_report_of_a_segmentation_model_says_mask_map50(seg_model, tmp_path, bus_path):
    from studio.loaders import load_model
    from studio.optimize import optimize_model
    from studio.report_text import optimize_text

    labels = tmp_path / "labelled"
    (labels / "images").mkdir(parents=True)
    (labels / "labels").mkdir()
    shutil.copy(bus_path, labels / "images" / "bus.jpg")
    (labels / "labels" / "bus.txt").write_text("0 0.06 0.23 0.30 0.23 0.30 0.93 0.06 0.93\n"
                                               "0 0.72 0.23 0.99 0.23 0.99 0.85 0.72 0.85\n")
    handle = load_model(str(seg_model), trust=True)
    report, _ = optimize_model(handle, Recipe((Step("quantize.fp16", {}, 1),)), tmp_path / "out", runs=3,
                               fidelity_frames_count=3, labels_dir=labels)
    fidelity = report["fidelity"]
    assert fidelity["metric"] == "mask_map50" and fidelity["value"] == fidelity["mask_map50"]
    assert 0.0 <= fidelity["value"] <= 1.0 and 0.0 <= fidelity["box_map50"] <= 1.0
    assert fidelity["map50"] == fidelity["box_map50"]  # the box figure a detector's readers know stays
    assert fidelity["evidence"]["unit"] == "baseline instances" and fidelity["targets"] > 0
    assert "mask IoU" in fidelity["method"] and fidelity["interval"] is not None
    assert f"fidelity mask mAP50 {fidelity['value']}" in optimize_text(report)
    for side in ("baseline", "variant"):
        accuracy = report["accuracy"][side]
        assert accuracy["metric"] == "mask_map50" and accuracy["targets"] == 2
        assert accuracy["evidence"]["unit"] == "labelled instances" and "mask IoU" in accuracy["method"]
    assert "true mask mAP50 on" in optimize_text(report)


def test_export_parity_of_a_segmentation_model_is_judged_by_its_masks(seg_model, tmp_path):
    from studio.export import run_export
    from studio.report_text import export_text

    report = run_export(str(seg_model), ["onnx"], tmp_path / "out", trust=True)
    agreement = report["exports"][0]["parity"]["agreement"]
    assert agreement["metric"] == "mask_map50" and "box_map50" in agreement
    assert agreement["evidence"]["unit"] == "baseline instances" and agreement["evidence"]["count"] > 0
    assert f"mask mAP50 {agreement['value']}" in export_text(report)
