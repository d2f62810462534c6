"""mAP of predictions against targets by the task's own IoU, with the box mAP beside it.

Targets and predictions are ``Detections`` frame by frame (a baseline's, or a labelled folder's made into
``Detections``). A task array (masks, keypoints, rotated) makes its metric the headline (``mask_map50``,
``pose_map50``, ``obb_map50``); boxes alone keep ``map50``. The box figures stay in the dict under
``map50``/``map50_95`` (and ``box_map50``/``box_map50_95`` when a task metric leads), so a detector's
result reads as before. ``map50_class_agnostic`` beside them matches boxes whatever their class: a variant
that keeps the boxes but flips near-tied classes (a fall detector's Normal/Fall on walking people) reads
high there and low on ``map50``; one that loses the boxes reads low on both. Frames are reduced to their
matches one at a time (``frame_score``), so a caller can drop each frame's masks before the next is
predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.evaluate.detection_map import FrameBoxes, FrameMatches, frame_matches, map_of_matches, match
from studio.evaluate.evidence import bootstrap_interval, evidence
from studio.evaluate.task_iou import TASK_METRICS, task_iou
from studio.runtime.results import Detections


@dataclass(frozen=True)
class FrameScore:
    """One frame matched by its boxes and by each task array either side of it carried."""

    box: FrameMatches
    tasks: dict[str, FrameMatches]
    agnostic: FrameMatches  # the boxes matched as if every box were of one class

    def by(self, task: str) -> FrameMatches:
        """Matched by ``task``; a frame where neither side had its array matched nothing."""
        found = self.tasks.get(task)
        return found if found is not None else FrameMatches(np.zeros_like(self.box.correct), self.box.scores,
                                                            self.box.classes, self.box.true_classes)


def frame_score(target: Detections, prediction: Detections) -> FrameScore:
    frame = FrameBoxes(prediction.boxes, prediction.scores, prediction.class_ids, target.boxes, target.class_ids)
    box = frame_matches([frame])[0]
    one_class = FrameBoxes(prediction.boxes, prediction.scores, np.zeros_like(prediction.class_ids),
                           target.boxes, np.zeros_like(target.class_ids))
    agnostic = frame_matches([one_class])[0]
    tasks = {name: FrameMatches(match(frame, task_iou(name, target, prediction)), box.scores, box.classes,
                                box.true_classes)
             for name in TASK_METRICS if getattr(target, name) is not None or getattr(prediction, name) is not None}
    return FrameScore(box, tasks, agnostic)


def _interval(parts: list[FrameMatches], with_interval: bool) -> dict[str, Any] | None:
    if not with_interval:
        return None
    return bootstrap_interval(lambda rows: float(map_of_matches([parts[i] for i in rows])["map50"]), len(parts))


def summary(scores: list[FrameScore], *, unit: str, task: str | None = None,
            with_interval: bool = True) -> dict[str, Any]:
    """The metric dict (metric, value, figures, interval, evidence). ``task``: the task array to judge by;
    None takes the first any frame carried (boxes when none did). ``unit`` names the targets ("baseline")."""
    if task is None:
        task = next((name for name in TASK_METRICS if any(name in s.tasks for s in scores)), None)
    box_parts = [s.box for s in scores]
    box = map_of_matches(box_parts) | {"map50_class_agnostic": map_of_matches([s.agnostic for s in scores])["map50"]}
    if task is None:
        return {"metric": "map50", "value": box["map50"], **box, "interval": _interval(box_parts, with_interval),
                "evidence": evidence(len(scores), int(box["targets"]), f"{unit} boxes")}
    metric, iou_words = TASK_METRICS[task]
    task_parts = [s.by(task) for s in scores]
    figures = map_of_matches(task_parts)
    return {"metric": metric, "value": figures["map50"], metric: figures["map50"],
            f"{metric}_95": figures["map50_95"], **{k: v for k, v in figures.items() if "map" not in k},
            "map50": box["map50"], "map50_95": box["map50_95"], "box_map50": box["map50"],
            "map50_class_agnostic": box["map50_class_agnostic"],
            "box_map50_95": box["map50_95"], "iou": iou_words, "interval": _interval(task_parts, with_interval),
            "evidence": evidence(len(scores), int(figures["targets"]), f"{unit} instances")}


def scored(targets: list[Detections], predictions: list[Detections], *, unit: str,
           with_interval: bool = True) -> dict[str, Any]:
    return summary([frame_score(t, p) for t, p in zip(targets, predictions, strict=True)], unit=unit,
                   with_interval=with_interval)
