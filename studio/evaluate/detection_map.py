"""Detection mAP50 and mAP50-95 with Ultralytics' own AP computation (``ap_per_class``).

Matching follows Ultralytics' validator: predictions in descending confidence order each claim the
best unclaimed target of the same class, separately at each IoU threshold 0.50:0.05:0.95. The IoU is the
boxes' unless the caller gives a frame's (targets, predictions) matrix of its task's own IoU
(``studio.evaluate.task_iou``: masks, OKS, probiou): every task goes through the same matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class FrameBoxes:
    """One frame's predictions (boxes, scores, classes) and targets (boxes, classes), xyxy pixels."""

    pred_boxes: np.ndarray
    pred_scores: np.ndarray
    pred_classes: np.ndarray
    true_boxes: np.ndarray
    true_classes: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU, (len(a), len(b))."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(frame: FrameBoxes, iou: np.ndarray | None = None) -> np.ndarray:
    """(predictions, 10) booleans: is each prediction a true positive at each IoU threshold. ``iou``:
    (targets, predictions) in the frame's order, the boxes' IoU when None."""
    order = np.argsort(-frame.pred_scores, kind="stable")
    correct = np.zeros((len(order), len(IOU_THRESHOLDS)), bool)
    if len(order) == 0 or len(frame.true_classes) == 0:
        return correct
    iou = box_iou(frame.true_boxes, frame.pred_boxes) if iou is None else np.asarray(iou, np.float64)
    iou = iou[:, order] * (frame.true_classes[:, None] == frame.pred_classes[order][None, :])
    claimed = np.zeros((iou.shape[0], len(IOU_THRESHOLDS)), bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS[0]).any(0)):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(0)
        correct[j] = available[best, columns] >= IOU_THRESHOLDS
        claimed[best, columns] |= correct[j]
    unsorted = np.empty_like(correct)
    unsorted[order] = correct
    return unsorted


@dataclass(frozen=True)
class FrameMatches:
    """One frame reduced to what mAP needs: per-prediction correctness, scores, classes; target classes."""

    correct: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    true_classes: np.ndarray


def frame_matches(frames: list[FrameBoxes], ious: list[np.ndarray] | None = None) -> list[FrameMatches]:
    """Each frame matched by its boxes, or by ``ious`` (one (targets, predictions) matrix per frame)."""
    per_frame: list[np.ndarray | None] = list(ious) if ious is not None else [None] * len(frames)
    return [FrameMatches(match(f, iou), f.pred_scores, f.pred_classes, f.true_classes)
            for f, iou in zip(frames, per_frame, strict=True)]


def mean_average_precision(frames: list[FrameBoxes]) -> dict[str, float | int]:
    """mAP50, mAP50-95, precision and recall (at the best-F1 confidence) over all frames."""
    return map_of_matches(frame_matches(frames))


def map_of_matches(parts: list[FrameMatches]) -> dict[str, float | int]:
    """The figures of ``mean_average_precision`` from frames already matched (a bootstrap resamples these)."""
    from ultralytics.utils.metrics import ap_per_class

    true_classes = np.concatenate([p.true_classes for p in parts]) if parts else np.zeros(0)
    predictions = sum(len(p.scores) for p in parts)
    summary = {"targets": int(true_classes.size), "predictions": int(predictions), "frames": len(parts)}
    if true_classes.size == 0:
        empty = predictions == 0  # nothing to find and nothing found is perfect agreement
        return summary | {"map50": float(empty), "map50_95": float(empty), "precision": float(empty),
                          "recall": float(empty)}
    if predictions == 0:
        return summary | {"map50": 0.0, "map50_95": 0.0, "precision": 0.0, "recall": 0.0}
    correct = np.concatenate([p.correct for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    classes = np.concatenate([p.classes for p in parts])
    _, _, precision, recall, _, ap, *_ = ap_per_class(correct, scores, classes, true_classes)
    return summary | {"map50": round(float(ap[:, 0].mean()), 4), "map50_95": round(float(ap.mean()), 4),
                      "precision": round(float(precision.mean()), 4), "recall": round(float(recall.mean()), 4)}
