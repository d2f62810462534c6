"""Raw network outputs → detections or classes, per output family, vectorised in NumPy + OpenCV NMS.

One table maps a handle's ``decoder`` name to its function; adding a family adds a row, not a branch.
The YOLO decoders follow Ultralytics' ``non_max_suppression`` (class-aware, conf > threshold,
30 000 candidates, 300 detections) so that results match Ultralytics' own predictions. A segment or
pose head's rows carry extra channels after the class scores (mask coefficients, keypoints); the
``DecodeOptions`` the ``Predictor`` fills from the model's metadata say which, and
``studio.runtime.decode_tasks`` turns them into masks and keypoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from studio.errors import BadInputError
from studio.runtime import decode_tasks
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
    # What a task's extra channels hold (filled from the model's metadata by the Predictor): keypoints per instance
    # and values per keypoint (pose), mask coefficients per instance (segment), and whether the head is NMS-free.
    kpt_shape: tuple[int, int] | None = None
    mask_channels: int = 0
    end2end: bool = False


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


def _with_extras(found: Detections, extras: np.ndarray, boxes_input: np.ndarray, protos: np.ndarray | None,
                 geometry: Geometry, options: DecodeOptions) -> Detections:
    """``found`` with its task's array from the extra channels of its rows (``boxes_input``: its boxes in
    network-input pixels, where Ultralytics crops masks)."""
    if options.mask_channels:
        channels = options.mask_channels
        if protos is None or extras.shape[1] != channels:
            raise BadInputError(f"a segmentation model's rows should carry {channels} mask coefficients and a "
                                f"prototype output, but they carry {extras.shape[1]} extra channels and "
                                f"{'a' if protos is not None else 'no'} prototype output",
                                fix="re-export the model with Ultralytics, or open it as a detector")
        patches = decode_tasks.instance_mask_patches(extras[:, :channels].astype(np.float32),
                                                     decode_tasks.prototypes_chw(protos, channels), boxes_input,
                                                     geometry)
        # Ultralytics drops an instance whose mask is empty; dropped before frame-sized masks are made for it.
        keep = np.array([patch is not None and bool(patch.any()) for _, _, patch in patches], bool)
        if not keep.all():
            found = Detections(found.boxes[keep], found.scores[keep], found.class_ids[keep], found.labels)
        found.masks = decode_tasks.masks_from_patches([patches[i] for i in np.flatnonzero(keep)], geometry.orig_hw)
    elif options.kpt_shape is not None:
        points, dims = options.kpt_shape
        if extras.shape[1] != points * dims:
            raise BadInputError(f"kpt_shape [{points}, {dims}] needs {points * dims} keypoint channels per row, "
                                f"but the model's rows carry {extras.shape[1]}",
                                fix="re-export the model with Ultralytics (its metadata holds kpt_shape)")
        found.keypoints = decode_tasks.keypoints_to_original(extras, options.kpt_shape, geometry)
    return found


def _detections(boxes_xyxy, scores, class_ids, geometry, labels, options, extras=None, protos=None) -> Detections:
    keep = _nms(boxes_xyxy, scores, class_ids, options)
    found = Detections(_to_original(boxes_xyxy[keep], geometry).astype(np.float32), scores[keep].astype(np.float32),
                       class_ids[keep].astype(np.int64), labels)
    if extras is None or not extras.shape[1]:
        return found
    return _with_extras(found, extras[keep], boxes_xyxy[keep], protos, geometry, options)


def decode_yolo(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                options: DecodeOptions) -> Detections:
    """Ultralytics v5u/v8/11 heads: output0 is [1, 4 + classes (+ mask/keypoint rows), anchors], xywh pixels; a
    segment head's prototypes are output1."""
    preds, protos = decode_tasks.split_outputs(outputs)
    pred = preds[0]
    classes = len(labels) or pred.shape[0] - 4
    class_scores = pred[4:4 + classes]
    class_ids = class_scores.argmax(0)
    scores = np.take_along_axis(class_scores, class_ids[None], 0)[0]
    mask = scores > options.conf
    xywh = pred[:4, mask].T
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    extras = pred[4 + classes:, mask].T
    return _detections(boxes, scores[mask], class_ids[mask], geometry, labels, options, extras, protos)


def decode_yolo_end2end(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                        options: DecodeOptions) -> Detections:
    """NMS-free heads (YOLO26, YOLOv10): output0 is [1, max_det, 6 + extras] rows of x1, y1, x2, y2, score, class,
    then the task's channels (mask coefficients with the prototypes in output1, or keypoints)."""
    preds, protos = decode_tasks.split_outputs(outputs)
    rows = preds[0]
    rows = rows[rows[:, 4] > options.conf][: options.max_det]
    order = np.argsort(-rows[:, 4], kind="stable")
    rows = rows[order]
    found = Detections(_to_original(rows[:, :4], geometry).astype(np.float32), rows[:, 4].astype(np.float32),
                       rows[:, 5].astype(np.int64), labels)
    if rows.shape[1] <= 6:
        return found
    return _with_extras(found, rows[:, 6:], rows[:, :4], protos, geometry, options)


def decode_yolo_obb(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                    options: DecodeOptions) -> Detections:
    """Oriented boxes: [1, 4 + classes + 1, anchors] columns of cx, cy, w, h (input pixels), class scores, angle
    (radians), with rotated NMS by probabilistic IoU; or, NMS-free (YOLO26), [1, max_det, 7] rows of cx, cy, w, h,
    score, class, angle."""
    pred = outputs[0][0]
    classes = len(labels) or pred.shape[0] - 5
    if options.end2end or (pred.shape[1] == 7 and pred.shape[0] != 5 + classes):
        rows = pred[pred[:, 4] > options.conf][: options.max_det]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]
        xywhr = np.concatenate([rows[:, :4], rows[:, 6:7]], 1)
        scores, class_ids = rows[:, 4], rows[:, 5].astype(np.int64)
    else:
        class_scores = pred[4:4 + classes]
        ids = class_scores.argmax(0)
        best = np.take_along_axis(class_scores, ids[None], 0)[0]
        mask = best > options.conf
        candidates = np.concatenate([pred[:4, mask].T, pred[4 + classes:5 + classes, mask].T], 1)
        keep = decode_tasks.rotated_nms(candidates, best[mask], ids[mask], options.iou, options.max_det,
                                        MAX_CANDIDATES)
        xywhr, scores, class_ids = candidates[keep], best[mask][keep], ids[mask][keep].astype(np.int64)
    rotated, boxes = decode_tasks.rotated_to_original(xywhr, geometry)
    return Detections(boxes, scores.astype(np.float32), class_ids, labels, rotated=rotated)


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


def decode_rtdetr(outputs: list[np.ndarray], geometry: Geometry, labels: tuple[str, ...],
                  options: DecodeOptions) -> Detections:
    """RT-DETR (Ultralytics' ``RTDETRDecoder``): boxes cx, cy, w, h normalised to the network input, scores already
    sigmoid, no NMS (its queries are one-to-one). Ultralytics 8.3.x+ heads end in a top-k over (query, class) pairs,
    output0 [1, k, 6] rows cx, cy, w, h, score, class, as ``RTDETRPredictor.postprocess`` reads them (a query may
    appear once per class); older exports give [1, queries, 4 + classes], each query taking its best class. Then the
    conf filter, at most max_det by score, and boxes back to the frame through the pre-processing's geometry (a
    plain stretch for RT-DETR: x × frame width, as Ultralytics scales them)."""
    pred = outputs[0].reshape(-1, outputs[0].shape[-1]).astype(np.float32)
    classes = len(labels)
    # Rows end in an integer class index; with 2 classes, per-query rows [4 + 2] have the same width, and their last
    # column is a sigmoid score, never all whole numbers in [0, classes).
    last = pred[:, 5] if pred.shape[1] == 6 else None
    topk_rows = last is not None and (classes != 2 or bool(np.all((last == np.round(last)) & (last >= 0)
                                                                   & (last < classes))))
    if topk_rows:
        scores, class_ids = pred[:, 4], pred[:, 5].astype(np.int64)
    else:
        class_scores = pred[:, 4:]
        class_ids = class_scores.argmax(1)
        scores = class_scores[np.arange(len(pred)), class_ids]
    mask = scores > options.conf
    order = np.argsort(-scores[mask], kind="stable")[: options.max_det]  # top-k rows are sorted already: unchanged
    xywh, scores, class_ids = pred[mask, :4][order], scores[mask][order], class_ids[mask][order]
    height, width = geometry.input_hw
    centre, size = xywh[:, :2] * (width, height), xywh[:, 2:4] * (width, height)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    return Detections(_to_original(boxes, geometry).astype(np.float32), scores.astype(np.float32), class_ids, labels)


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
    "yolo-obb": decode_yolo_obb,
    "darknet": decode_darknet,
    "rtdetr": decode_rtdetr,
    "classify-logits": decode_logits,
    "classify-probs": decode_probabilities,
    "tensor": decode_raw,
}

# Defaults a user would expect from each family's own tools (Ultralytics predict; OpenCV's YOLO samples).
DEFAULT_IOU = {"yolo": 0.7, "yolo-end2end": 0.7, "yolo-obb": 0.7, "darknet": 0.45}
