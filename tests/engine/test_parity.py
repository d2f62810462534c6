"""The studio's ONNX Runtime pipeline gives the same answers as the reference implementations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from studio.runtime.predictor import Predictor, make_backend
from studio.runtime.ultralytics_runner import UltralyticsRunner


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (N, 4) and b (M, 4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _match(ours, theirs) -> tuple[float, float]:
    """Every reference box has a studio box of the same class at IoU ≥ 0.9 (and none extra).

    Returns the worst IoU and the worst score difference over the matched pairs.
    """
    assert len(ours) == len(theirs), f"{len(ours)} studio boxes vs {len(theirs)} Ultralytics boxes"
    if len(theirs) == 0:
        return 1.0, 0.0
    iou = _iou(theirs.boxes, ours.boxes)
    same_class = theirs.class_ids[:, None] == ours.class_ids[None, :]
    iou = np.where(same_class, iou, 0.0)
    best = iou.argmax(1)
    assert len(set(best.tolist())) == len(best), "two reference boxes matched the same studio box"
    worst_iou = float(iou[np.arange(len(best)), best].min())
    worst_score = float(np.abs(theirs.scores - ours.scores[best]).max())
    return worst_iou, worst_score


@pytest.mark.slow
@pytest.mark.parametrize("conf", [0.25, 0.1])
def test_ort_detections_match_ultralytics_predict(fall_handle, bus_path, zidane_path, bikes_frames, fall_onnx, conf):
    frames = [cv2.imread(str(bus_path)), cv2.imread(str(zidane_path)), *bikes_frames]
    assert len(frames) == 22
    studio = Predictor(fall_handle, make_backend(fall_handle, "ort", threads=2), conf=conf, iou=0.7)
    reference = UltralyticsRunner(fall_handle, threads=2, conf=conf, iou=0.7)
    worst_iou, worst_score, boxes = 1.0, 0.0, 0
    for frame in frames:
        ours = studio(frame).result
        theirs, _, _ = reference(frame)
        frame_iou, frame_score = _match(ours, theirs)
        worst_iou, worst_score = min(worst_iou, frame_iou), max(worst_score, frame_score)
        boxes += len(theirs)
    print(f"parity at conf {conf} over {len(frames)} frames, {boxes} boxes: worst IoU {worst_iou:.4f}, "
          f"worst score difference {worst_score:.4f}")
    assert boxes >= 5, "the frames should hold enough detections for the comparison to mean something"
    assert worst_iou >= 0.9
    assert worst_score <= 0.05


def test_efficientnet_top5_identical_on_ort_and_torch(effnet_handle, bus_path):
    from studio.media import bundled_image

    for path in (bus_path, bundled_image("zidane.jpg")):
        frame = cv2.imread(str(path))
        on_ort = Predictor(effnet_handle, make_backend(effnet_handle, "ort", threads=1))(frame).result
        on_torch = Predictor(effnet_handle, make_backend(effnet_handle, "torch", threads=1))(frame).result
        assert list(on_ort.class_ids) == list(on_torch.class_ids)
        assert np.allclose(on_ort.scores, on_torch.scores, atol=1e-4)


def test_darknet_outputs_match_opencv_dnn(darknet_handle, bus_path):
    """OpenCV DNN's Darknet importer is the reference; it zeroes class scores below its 0.2 threshold."""
    cfg, weights = darknet_handle.source_paths
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    blob = cv2.dnn.blobFromImage(cv2.imread(str(bus_path)), 1 / 255.0, (416, 416), swapRB=True, crop=False)
    net.setInput(blob)
    reference = np.concatenate([o.reshape(-1, o.shape[-1]) for o in net.forward(net.getUnconnectedOutLayersNames())])
    with torch.inference_mode():
        ours = darknet_handle.torch_module(torch.from_numpy(blob))[0].numpy()
    assert ours.shape == reference.shape == (2535, 85)
    assert np.abs(ours[:, :5] - reference[:, :5]).max() < 1e-4
    kept = reference[:, 5:] > 0
    assert np.array_equal(ours[:, 5:] >= 0.2, kept)
    assert np.abs(ours[:, 5:][kept] - reference[:, 5:][kept]).max() < 1e-4


def test_darknet_finds_the_people_on_the_bus(darknet_handle, bus_path):
    result = Predictor(darknet_handle, make_backend(darknet_handle, "ort", threads=1))(cv2.imread(str(bus_path))).result
    people = [item for item in result.as_list() if item["label"] == "person"]
    assert len(people) >= 3
    assert people[0]["score"] > 0.9
