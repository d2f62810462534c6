"""Ultralytics' own predictor, run as the reference the studio's runtime is measured against."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from studio.errors import UnsupportedError
from studio.model import ModelHandle
from studio.runtime.results import Detections, StageTimes


class UltralyticsRunner:
    """``YOLO(file).predict(frame)`` on the handle's own file, with its per-stage timings."""

    name = "ultralytics"

    def __init__(self, handle: ModelHandle, *, threads: int = 1, imgsz: int | None = None, conf: float = 0.25,
                 iou: float = 0.7):
        if handle.format not in ("ultralytics-pt", "ultralytics-onnx") or not handle.source_paths:
            raise UnsupportedError(f"{handle.name} is a {handle.format} model; Ultralytics runs only its own "
                                   ".pt and exported .onnx files", fix="use --runtime ort or torch")
        if handle.image_input is None:
            raise UnsupportedError(f"{handle.name} does not take images; Ultralytics' predictor runs on frames")
        import torch
        from ultralytics import YOLO

        torch.set_num_threads(threads)
        self.handle, self.threads = handle, threads
        # Any: predict() is annotated with the union of every source and stream mode's result (iterator or list,
        # Results or tensors, boxes optional, tensors or arrays); a frame without stream=True gives list[Results].
        self.model: Any = YOLO(str(handle.source_paths[0]), task=str(handle.task))
        size = imgsz or handle.image_input.size[0]
        self.kwargs: dict[str, Any] = {"imgsz": size, "conf": conf, "iou": iou, "verbose": False, "device": "cpu",
                                       # masks in original pixels, as the studio's decoders give them
                                       "retina_masks": True}

    def __call__(self, frame: np.ndarray) -> tuple[Detections, StageTimes, float]:
        """Detections, Ultralytics' own stage timings, and the wall time of the whole call (ms)."""
        start = time.perf_counter()
        result = self.model.predict(frame, **self.kwargs)[0]
        wall = (time.perf_counter() - start) * 1e3
        speed = result.speed
        times = StageTimes(speed["preprocess"], speed["inference"], speed["postprocess"])
        return results_to_detections(result, self.handle.labels), times, wall

    def describe(self) -> dict[str, Any]:
        import torch
        import ultralytics

        return {"runtime": f"ultralytics {ultralytics.__version__} predict on torch {torch.__version__}",
                "threads": torch.get_num_threads(), "stage_timings": "Ultralytics' own Results.speed"}


def results_to_detections(result: Any, labels: tuple[str, ...]) -> Detections:
    """An Ultralytics ``Results`` as the studio's ``Detections``: upright boxes for every task, and the task's own
    array beside them (masks in original pixels, keypoints with visibility, xywhr of oriented boxes)."""
    def array(tensor: Any, dtype: Any) -> np.ndarray:
        return tensor.cpu().numpy().astype(dtype)

    if result.obb is not None:
        obb = result.obb
        return Detections(array(obb.xyxy, np.float32), array(obb.conf, np.float32), array(obb.cls, np.int64), labels,
                          rotated=array(obb.xywhr, np.float32))
    boxes = result.boxes
    masks = keypoints = None
    if result.masks is not None:
        masks = array(result.masks.data, np.float32) > 0.5
    if result.keypoints is not None:
        data = array(result.keypoints.data, np.float32)
        keypoints = data if data.shape[-1] == 3 else np.concatenate([data, np.ones_like(data[..., :1])], axis=-1)
    return Detections(array(boxes.xyxy, np.float32), array(boxes.conf, np.float32), array(boxes.cls, np.int64),
                      labels, masks=masks, keypoints=keypoints)
