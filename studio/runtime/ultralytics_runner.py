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
        self.kwargs: dict[str, Any] = {"imgsz": size, "conf": conf, "iou": iou, "verbose": False, "device": "cpu"}

    def __call__(self, frame: np.ndarray) -> tuple[Detections, StageTimes, float]:
        """Detections, Ultralytics' own stage timings, and the wall time of the whole call (ms)."""
        start = time.perf_counter()
        result = self.model.predict(frame, **self.kwargs)[0]
        wall = (time.perf_counter() - start) * 1e3
        speed = result.speed
        times = StageTimes(speed["preprocess"], speed["inference"], speed["postprocess"])
        boxes = result.boxes
        detections = Detections(boxes.xyxy.numpy().astype(np.float32), boxes.conf.numpy().astype(np.float32),
                                boxes.cls.numpy().astype(np.int64), self.handle.labels)
        return detections, times, wall

    def describe(self) -> dict[str, Any]:
        import torch
        import ultralytics

        return {"runtime": f"ultralytics {ultralytics.__version__} predict on torch {torch.__version__}",
                "threads": torch.get_num_threads(), "stage_timings": "Ultralytics' own Results.speed"}
