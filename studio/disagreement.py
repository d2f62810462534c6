"""How many answers two variants disagree on, frame by frame (the A/B view's count)."""

from __future__ import annotations

import numpy as np

from studio.runtime.results import Classification, Detections


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def unmatched_boxes(a: Detections, b: Detections, iou: float = 0.5) -> int:
    """Boxes of either side with no same-class box on the other side at IoU ≥ ``iou`` (greedy by score)."""
    if not len(a) or not len(b):
        return len(a) + len(b)
    overlaps = _iou(a.boxes, b.boxes)
    overlaps[a.class_ids[:, None] != b.class_ids[None, :]] = 0.0
    matched = 0
    taken = np.zeros(len(b), bool)
    for row in overlaps:  # a is sorted by score: the most confident box picks first
        row = np.where(taken, 0.0, row)
        best = int(row.argmax())
        if row[best] >= iou:
            taken[best] = True
            matched += 1
    return len(a) + len(b) - 2 * matched


def disagreement(a: object, b: object) -> int:
    """Unmatched boxes for detectors, 1 when the top-1 class differs for classifiers, else 0."""
    if isinstance(a, Detections) and isinstance(b, Detections):
        return unmatched_boxes(a, b)
    if isinstance(a, Classification) and isinstance(b, Classification):
        return int(len(a.class_ids) and len(b.class_ids) and int(a.class_ids[0]) != int(b.class_ids[0]))
    return 0
