"""``deploy-studio predict``: a model over a source, results per frame and counts per class."""

from __future__ import annotations

from collections import Counter
from typing import Any

from studio.model import ModelHandle
from studio.runtime.choice import resolve_runtime
from studio.runtime.predictor import make_predictor
from studio.sources import open_source


def run_predict(handle: ModelHandle, source_spec: str, *, runtime: str = "auto", conf: float = 0.25,
                iou: float | None = None, imgsz: int | None = None, threads: int = 2,
                max_frames: int = 30, device: str | None = None) -> dict[str, Any]:
    """``device``: a ``--device`` name (``studio.runtime.devices``); None is the CPU."""
    predictor = make_predictor(handle, runtime, threads=threads, conf=conf, iou=iou, imgsz=imgsz, device=device)
    detail = predictor.backend.describe()
    source = open_source(source_spec)
    frames: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    try:
        for index, frame in enumerate(source):
            if index >= max_frames:
                break
            prediction = predictor(frame)
            items = prediction.result.as_list()
            counts.update(item["label"] for item in items if "label" in item)
            frames.append({"frame": index, "input_shape": list(prediction.input_shape), "path": prediction.path,
                           "ms": {"pre": round(prediction.times.pre, 2), "infer": round(prediction.times.infer, 2),
                                  "post": round(prediction.times.post, 2)},
                           "results": items})
    finally:
        source.close()
    return {
        "model": handle.display_name,
        "task": str(handle.task),
        "runtime": resolve_runtime(handle, runtime).value,
        # which runtime, execution provider and device really ran (None: the runtime has no providers)
        "execution_provider": detail.get("execution_provider"),
        "device": detail.get("device"),
        "device_name": detail.get("device_name"),
        "runtime_detail": detail,
        "source": str(source_spec),
        "conf": predictor.options.conf,
        "iou": predictor.options.iou,
        "frames": frames,
        "counts_per_class": dict(counts.most_common()),
        "skipped_files": [str(p) for p in getattr(source, "skipped", [])],
    }
