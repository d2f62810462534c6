"""A cheap path first for video: reuse, low resolution, full resolution — in that order.

For each frame: when it barely differs from the last frame that was computed (mean absolute
difference of 64×36 grey thumbnails), the last result is reused (at most ``max_reuse`` times in a
row); otherwise a low-resolution pass runs, and only when its most confident detection scores below
``escalate_below`` does the frame go through the full-resolution pass. One dynamic-size graph serves
both resolutions. Each Prediction says which path produced it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from studio.model import ModelHandle
from studio.runtime.results import Prediction, StageTimes

THUMB_SIZE = (64, 36)


@dataclass(frozen=True)
class CascadeSettings:
    low_imgsz: int = 320
    escalate_below: float = 0.5
    reuse_below: float = 2.0  # mean |Δ| of grey thumbnails, 0–255
    max_reuse: int = 4

    def as_dict(self) -> dict:
        return asdict(self)


def _thumb(frame: np.ndarray) -> np.ndarray:
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


class CascadePredictor:
    def __init__(self, handle: ModelHandle, backend, settings: CascadeSettings, *, conf: float = 0.25,
                 iou: float | None = None):
        from studio.runtime.predictor import Predictor

        self.settings, self.backend, self.handle = settings, backend, handle
        self.full = Predictor(handle, backend, conf=conf, iou=iou)
        self.low = Predictor(handle, backend, conf=conf, iou=iou, imgsz=settings.low_imgsz)
        self.options = self.full.options
        self.paths: Counter[str] = Counter()
        self._last: Prediction | None = None
        self._reference: np.ndarray | None = None
        self._reused = 0
        self.last_input: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new source, a seek)."""
        self._last, self._reference, self._reused = None, None, 0

    def __call__(self, frame: np.ndarray) -> Prediction:
        start = time.perf_counter()
        thumb = _thumb(frame)
        if (self._last is not None and self._reused < self.settings.max_reuse
                and float(np.abs(thumb - self._reference).mean()) < self.settings.reuse_below):
            self._reused += 1
            self.paths["reuse"] += 1
            spent = (time.perf_counter() - start) * 1e3
            return Prediction(self._last.result, StageTimes(spent, 0.0, 0.0), self._last.input_shape, "reuse")
        check = (time.perf_counter() - start) * 1e3
        low = self.low(frame)
        scores = getattr(low.result, "scores", np.zeros(0))
        prediction, path = low, "low"
        if scores.size == 0 or float(scores.max()) < self.settings.escalate_below:
            prediction, path = self.full(frame), "full"
            times = StageTimes(check + low.times.pre + prediction.times.pre, low.times.infer + prediction.times.infer,
                               low.times.post + prediction.times.post)
            prediction = Prediction(prediction.result, times, prediction.input_shape, path)
        else:
            prediction = Prediction(low.result, StageTimes(check + low.times.pre, low.times.infer, low.times.post),
                                    low.input_shape, path)
        self.paths[path] += 1
        self._last, self._reference, self._reused = prediction, thumb, 0
        self.last_input = (self.full if path == "full" else self.low).last_input
        return prediction
