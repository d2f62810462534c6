"""mAP and fidelity arithmetic on known cases, and labelled folders in YOLO and COCO format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from studio.evaluate.detection_map import FrameBoxes, mean_average_precision
from studio.evaluate.labelled import labelled_map, load_labelled

LABELS = Path(__file__).resolve().parents[1] / "data" / "labelled" / "labels"


def _frame(pred, scores, pred_cls, true, true_cls):
    return FrameBoxes(np.asarray(pred, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.asarray(pred_cls), np.asarray(true, np.float32).reshape(-1, 4), np.asarray(true_cls))


# Ultralytics integrates the 101-point interpolated PR curve: a perfect detector scores 0.995.
PERFECT = 0.995


def test_perfect_predictions_score_the_ceiling():
    boxes = [[10, 10, 50, 50], [60, 60, 120, 140]]
    result = mean_average_precision([_frame(boxes, [0.9, 0.8], [0, 1], boxes, [0, 1])])
    assert result["map50"] == pytest.approx(PERFECT, abs=1e-3)
    assert result["map50_95"] == pytest.approx(PERFECT, abs=1e-3)


def test_wrong_class_and_shifted_boxes_score_lower():
    true = [[10, 10, 50, 50]]
    wrong_class = mean_average_precision([_frame(true, [0.9], [1], true, [0])])
    shifted = mean_average_precision([_frame([[18, 10, 58, 50]], [0.9], [0], true, [0])])  # IoU 0.667
    assert wrong_class["map50"] == 0.0
    assert shifted["map50"] == pytest.approx(PERFECT, abs=1e-3) and shifted["map50_95"] < 0.5


def test_missing_half_the_objects_halves_recall():
    true = [[0, 0, 10, 10], [20, 20, 30, 30]]
    result = mean_average_precision([_frame([[0, 0, 10, 10]], [0.9], [0], true, [0, 0])])
    assert result["recall"] == pytest.approx(0.5, abs=1e-3)


def test_flipped_classes_keep_the_class_agnostic_map_and_lost_boxes_lose_both():
    """A fidelity result says "boxes kept, classes flipped" apart from "boxes lost"."""
    from studio.evaluate.fidelity import detection_fidelity
    from studio.runtime.results import Detections

    def detections(boxes, classes):
        return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(classes), 0.9, np.float32),
                          np.asarray(classes, int), ("Normal", "Fall"))

    boxes = [[10, 10, 50, 50], [60, 60, 120, 140], [200, 20, 260, 90], [300, 30, 340, 80]]
    base = [detections(boxes, [0, 0, 1, 1])]
    flipped = detection_fidelity(base, [detections(boxes, [0, 1, 1, 0])], with_interval=False)
    lost = detection_fidelity(base, [detections(boxes[:2], [0, 0])], with_interval=False)
    assert flipped["map50_class_agnostic"] == pytest.approx(PERFECT, abs=1e-3) and flipped["map50"] < 0.6
    assert lost["map50_class_agnostic"] < 0.6 and lost["map50"] < 0.6
    from studio.report_text import fidelity_text

    assert "classes flipped" in fidelity_text(flipped) and "classes flipped" not in fidelity_text(lost)


@pytest.fixture
def yolo_folder(tmp_path, bus_path, zidane_path) -> Path:
    (tmp_path / "images").mkdir()
    shutil.copy(bus_path, tmp_path / "images" / "bus.jpg")
    shutil.copy(zidane_path, tmp_path / "images" / "zidane.jpg")
    shutil.copytree(LABELS, tmp_path / "labels")
    return tmp_path


def test_yolo_folder_true_map(yolo_folder, darknet_handle):
    from studio.runtime.predictor import Predictor, make_backend

    items = load_labelled(yolo_folder, darknet_handle.labels)
    assert [len(i.classes) for i in items] == [5, 3]
    assert items[0].boxes[4][0] == pytest.approx(15, abs=1)  # the bus starts near x = 15 px
    predictor = Predictor(darknet_handle, make_backend(darknet_handle, "ort", threads=2), conf=0.001)
    result = labelled_map(predictor, items)
    assert result["targets"] == 8
    assert 0.3 < result["map50"] <= 1.0  # YOLOv3-tiny finds most of the hand-labelled people and the bus


def test_coco_folder_matches_yolo_folder(yolo_folder, darknet_handle):
    items = load_labelled(yolo_folder, darknet_handle.labels)
    names = darknet_handle.labels
    coco = {"images": [], "annotations": [], "categories": [{"id": 100 + i, "name": n} for i, n in enumerate(names)]}
    for image_id, item in enumerate(items):
        coco["images"].append({"id": image_id, "file_name": f"images/{item.path.name}"})
        for box, cls in zip(item.boxes, item.classes, strict=True):
            x1, y1, x2, y2 = map(float, box)
            coco["annotations"].append({"image_id": image_id, "category_id": 100 + int(cls),
                                        "bbox": [x1, y1, x2 - x1, y2 - y1]})
    shutil.rmtree(yolo_folder / "labels")
    (yolo_folder / "instances.json").write_text(json.dumps(coco))
    again = load_labelled(yolo_folder, names)
    for a, b in zip(items, again, strict=True):
        assert np.allclose(a.boxes, b.boxes, atol=1e-3) and list(a.classes) == list(b.classes)


def test_evaluate_command_reads_a_labelled_folder(yolo_folder):
    from tests.engine.cli_helpers import run_json

    result = run_json("evaluate", "zoo:yolov3-tiny-coco", yolo_folder)
    assert result["targets"] == 8 and result["frames"] == 2
    assert 0.3 < result["map50"] <= 1.0
