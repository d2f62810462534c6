"""The video cascade's thresholds chosen for a fidelity target, on frames the report does not use.

Each choosing frame is run once through the low-resolution pass and once through the full one (both
timed), and its grey thumbnail kept; the cascade's decisions (reuse, low, escalate) are then replayed
for every candidate pair of thresholds without running the model again, scored as mAP50 against the
full model's detections, and costed from the measured pass times. The fastest pair whose mAP50 reaches
the target is chosen; the report then runs the real cascade on the remaining frames.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext

ESCALATE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)  # 0: never escalate; 1.01: always
REUSE = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # mean |Δ| of grey thumbnails; 0: never reuse
CHOOSING_SHARE = 0.4  # the first 40 % of the measured frames choose, the rest (after a gap) report
GAP_FRAMES = 5  # frames between the two parts used by neither (neighbours are near-duplicates)


@dataclass(frozen=True)
class Record:
    thumb: np.ndarray
    low: Any  # Detections
    low_top: float
    low_ms: float
    full: Any
    full_ms: float
    thumb_ms: float


def split(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(choosing frames, reporting frames): contiguous parts, the choosing one first, a gap between."""
    cut = int(len(frames) * CHOOSING_SHARE)
    return frames[:cut], frames[cut + GAP_FRAMES:]


def record(model: ModelHandle, frames: list[np.ndarray], low_imgsz: int, ctx: TaskContext,
           threads: int) -> list[Record]:
    from studio.evaluate.fidelity import TARGET_CONF
    from studio.runtime.cascade import _thumb
    from studio.runtime.predictor import Predictor, make_backend

    backend = make_backend(model, "ort", threads=threads)
    full, low = Predictor(model, backend, conf=TARGET_CONF), Predictor(model, backend, conf=TARGET_CONF,
                                                                        imgsz=low_imgsz)
    records = []
    for index, frame in enumerate(frames):
        ctx.progress(index / max(len(frames), 1), f"choosing cascade thresholds ({index + 1}/{len(frames)})")
        start = time.perf_counter()
        thumb = _thumb(frame)
        thumb_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        low_result = low(frame).result
        low_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        full_result = full(frame).result
        full_ms = (time.perf_counter() - start) * 1e3
        scores = getattr(low_result, "scores", np.zeros(0))
        records.append(Record(thumb, low_result, float(scores.max()) if scores.size else 0.0, low_ms, full_result,
                              full_ms, thumb_ms))
    return records


def replay(records: list[Record], escalate: float, reuse: float, max_reuse: int) -> tuple[list[Any], float]:
    """(the cascade's detections per frame, its total time in ms) under these thresholds, as
    ``CascadePredictor`` decides."""
    produced, spent, last, reference, reused = [], 0.0, None, None, 0
    for rec in records:
        spent += rec.thumb_ms
        if (last is not None and reused < max_reuse and float(np.abs(rec.thumb - reference).mean()) < reuse):
            reused += 1
            produced.append(last)
            continue
        spent += rec.low_ms
        result = rec.low
        if rec.low_top < escalate:
            spent += rec.full_ms
            result = rec.full
        produced.append(result)
        last, reference, reused = result, rec.thumb, 0
    return produced, spent


def choose(records: list[Record], target: float, max_reuse: int, escalate: float | None,
           reuse: float | None) -> tuple[tuple[float, float] | None, list[dict[str, Any]]]:
    """((escalate_below, reuse_below) of the fastest pair reaching ``target`` by the task's metric — mAP50 of
    boxes, masks, OKS (``studio.evaluate.fidelity``) — or None; every candidate, keyed by that metric)."""
    from studio.evaluate.fidelity import detection_fidelity

    reference = [rec.full for rec in records]
    full_ms = sum(rec.full_ms for rec in records)
    candidates, metric = [], "map50"
    for esc, reu in itertools.product([escalate] if escalate is not None else ESCALATE,
                                      [reuse] if reuse is not None else REUSE):
        produced, spent = replay(records, esc, reu, max_reuse)
        fidelity = detection_fidelity(reference, produced, with_interval=False)
        metric = fidelity["metric"]
        candidates.append({"escalate_below": esc, "reuse_below": reu, metric: round(float(fidelity["value"]), 4),
                           "speedup_estimate": round(full_ms / max(spent, 1e-9), 3)})
    reaching = [c for c in candidates if c[metric] >= target]
    if not reaching:
        return None, candidates
    best = max(reaching, key=lambda c: (c["speedup_estimate"], c[metric]))
    return (best["escalate_below"], best["reuse_below"]), candidates
