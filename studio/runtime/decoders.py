"""Raw network outputs → detections or classes, per output family, vectorised in NumPy + OpenCV NMS.

One table maps a handle's ``decoder`` name to its function; adding a family adds a row, not a branch.
The YOLO decoder follows Ultralytics' ``non_max_suppression`` (class-aware, conf > threshold,
30 000 candidates, 300 detections) so that results match Ultralytics' own predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from studio.runtime.preprocess import Geometry
from studio.runtime.results import Classification, Detections, RawOutputs

MAX_CANDIDATES = 30_000
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class DecodeOptions:
    conf: float = 0.25
    iou: float = 0.7
    top_k: int = 5
    max_det: int = MAX_DETECTIONS


def _nms(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Indices kept by class-aware NMS, by descending score (OpenCV's NMSBoxesBatched)."""
    if scores.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    xywh = boxes_xyxy[order].astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    # OpenCV's stubs type these Sequence[...]; its bindings take the arrays as they are (no list round-trip).
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores[order].astype(np.float32),  # type: ignore[arg-type]
                                   class_ids[order].astype(np.int32),  # type: ignore[arg-type]
                                   score_threshold=0.0, nms_threshold=options.iou)
    keep = np.asarray(kept, np.int64).reshape(-1)
    return order[keep][: options.max_det]


def _to_original(boxes: np.ndarray, geometry: Geometry) -> np.ndarray:
    boxes = boxes.copy()
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - geometry.pad_xy[0]) / geometry.gain_xy[0]
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - geometry.pad_xy[1]) / geometry.gain_xy[1]
    height, width = geometry.orig_hw
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def _detections(boxes_xyxy, scores, class_ids, geometry, labels, options) -> Detections:
    keep = _nms(boxes_xyxy, scores, class_ids, options)
    return Detections(_to_original(boxes_xyxy[keep], geometry).astype(np.float32), scores[keep].astype(np.float32),
                      class_ids[keep].astype(np.int64), labels)


def decode_yolo(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                options: DecodeOptions) -> Detections:
    """Ultralytics v5u/v8/11 heads: output0 is [1, 4 + classes (+ mask/keypoint rows), anchors], xywh pixels."""
    pred = outputs[0][0]
    classes = len(labels) or pred.shape[0] - 4
    class_scores = pred[4:4 + classes]
    class_ids = class_scores.argmax(0)
    scores = np.take_along_axis(class_scores, class_ids[None], 0)[0]
    mask = scores > options.conf
    xywh = pred[:4, mask].T
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    return _detections(boxes, scores[mask], class_ids[mask], geometry, labels, options)


def decode_yolo_end2end(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                        options: DecodeOptions) -> Detections:
    """NMS-free heads (YOLO26, YOLOv10): output0 is [1, max_det, 6] rows of x1, y1, x2, y2, score, class."""
    rows = outputs[0][0]
    rows = rows[rows[:, 4] > options.conf][: options.max_det]
    order = np.argsort(-rows[:, 4], kind="stable")
    rows = rows[order]
    return Detections(_to_original(rows[:, :4], geometry).astype(np.float32), rows[:, 4].astype(np.float32),
                      rows[:, 5].astype(np.int64), labels)


def decode_darknet(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                   options: DecodeOptions) -> Detections:
    """Darknet YOLO rows [cx, cy, w, h, objectness, class × objectness], boxes normalised to the input."""
    rows = outputs[0].reshape(-1, outputs[0].shape[-1])
    class_ids = rows[:, 5:].argmax(1)
    scores = rows[np.arange(rows.shape[0]), 5 + class_ids]
    mask = scores > options.conf
    rows, scores, class_ids = rows[mask], scores[mask], class_ids[mask]
    height, width = geometry.input_hw
    centre, size = rows[:, 0:2] * (width, height), rows[:, 2:4] * (width, height)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    return _detections(boxes, scores, class_ids, geometry, labels, options)


def _top_k(probabilities: np.ndarray, labels: tuple[str, ...], k: int) -> Classification:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return Classification(order, probabilities[order], labels)


def decode_logits(outputs, geometry, labels, options) -> Classification:
    logits = outputs[0].reshape(-1).astype(np.float64)
    exp = np.exp(logits - logits.max())
    return _top_k(exp / exp.sum(), labels, options.top_k)


def decode_probabilities(outputs, geometry, labels, options) -> Classification:
    return _top_k(outputs[0].reshape(-1).astype(np.float64), labels, options.top_k)


def decode_raw(outputs, geometry, labels, options) -> RawOutputs:
    return RawOutputs(list(outputs))


Decoder = Callable[[list[np.ndarray], Geometry, tuple[str, ...], DecodeOptions],
                   Detections | Classification | RawOutputs]

DECODERS: dict[str, Decoder] = {
    "yolo": decode_yolo,
    "yolo-end2end": decode_yolo_end2end,
    "darknet": decode_darknet,
    "classify-logits": decode_logits,
    "classify-probs": decode_probabilities,
    "tensor": decode_raw,
}

# Defaults a user would expect from each family's own tools (Ultralytics predict; OpenCV's YOLO samples).
DEFAULT_IOU = {"yolo": 0.7, "yolo-end2end": 0.7, "darknet": 0.45}
