"""What a prediction returns: detections or a classification, plus the time each stage took."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent in each stage of one frame (perf_counter around each stage)."""

    pre: float
    infer: float
    post: float

    @property
    def total(self) -> float:
        return self.pre + self.infer + self.post


@dataclass
class Detections:
    """Instances in original-image pixels, sorted by score, highest first.

    Every task fills ``boxes`` (x1, y1, x2, y2; for an oriented box, the upright box around its polygon), so
    box-level tools (drawing, box mAP, tracking) work on any of them. A task adds its own array, row-aligned
    with ``boxes``; the arrays a model's task does not have stay None:

    - segmentation: ``masks`` (N, H, W) bool, the instance's pixels in the original image (H, W);
    - pose: ``keypoints`` (N, K, 3) float32, x and y in original pixels and the keypoint's visibility score
      (1.0 where the model has no visibility channel, kpt_shape [K, 2]);
    - oriented boxes: ``rotated`` (N, 5) float32, centre x, centre y, width, height in original pixels and
      the angle in radians (Ultralytics' xywhr).
    """

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64
    labels: tuple[str, ...]  # every class name of the model, indexed by class id
    masks: np.ndarray | None = None  # (N, H, W) bool
    keypoints: np.ndarray | None = None  # (N, K, 3) float32
    rotated: np.ndarray | None = None  # (N, 5) float32 xywhr

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def label(self, index: int) -> str:
        class_id = int(self.class_ids[index])
        return self.labels[class_id] if class_id < len(self.labels) else f"class{class_id}"

    def as_list(self) -> list[dict[str, Any]]:
        return [self._row(i) for i in range(len(self))]

    def _row(self, i: int) -> dict[str, Any]:
        row: dict[str, Any] = {
            "label": self.label(i),
            "class_id": int(self.class_ids[i]),
            "score": round(float(self.scores[i]), 4),
            "box_xyxy": [round(float(v), 1) for v in self.boxes[i]],
        }
        if self.masks is not None:
            row["mask_area"] = int(self.masks[i].sum())
            row["polygon"] = mask_polygon(self.masks[i])
        if self.keypoints is not None:
            row["keypoints"] = [[round(float(x), 1), round(float(y), 1), round(float(v), 3)]
                                for x, y, v in self.keypoints[i]]
        if self.rotated is not None:
            x, y, w, h, r = (float(v) for v in self.rotated[i])
            row["xywhr"] = [round(x, 1), round(y, 1), round(w, 1), round(h, 1), round(r, 4)]
        return row

    @classmethod
    def empty(cls, labels: tuple[str, ...]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), labels)


def mask_polygon(mask: np.ndarray, tolerance: float = 1.0) -> list[list[int]]:
    """The outline of a mask's largest region as [[x, y], ...] original pixels, simplified to ``tolerance`` px so a
    JSON row stays short (the mask itself is the exact answer)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    largest = max(contours, key=cv2.contourArea)
    return [[int(x), int(y)] for x, y in cv2.approxPolyDP(largest, tolerance, True).reshape(-1, 2)]


@dataclass
class Classification:
    """The top-k classes with their probabilities, highest first."""

    class_ids: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {"label": self.labels[int(c)] if int(c) < len(self.labels) else f"class{int(c)}",
             "class_id": int(c), "score": round(float(s), 5)}
            for c, s in zip(self.class_ids, self.scores, strict=True)
        ]


@dataclass
class RawOutputs:
    """A tensor model's outputs, for graphs whose meaning the studio does not know."""

    arrays: list[np.ndarray] = field(default_factory=list)

    def as_list(self) -> list[dict[str, Any]]:
        return [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in self.arrays]


@dataclass
class Prediction:
    result: Detections | Classification | RawOutputs
    times: StageTimes
    input_shape: tuple[int, ...]
    path: str = "full"  # which route produced it: full, low (cascade), reuse (cascade), exitN (early exit)
