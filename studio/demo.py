"""The headless demo (`make demo`; `make run` without a display): a real model on a real video, measured."""

from __future__ import annotations

import time
from collections import Counter

from studio.loaders import load_model
from studio.media import bundled_video
from studio.metrics import peak_rss_mb, summarize_ms
from studio.report_text import stage_table
from studio.runtime.predictor import make_predictor
from studio.runtime.results import StageTimes
from studio.sources import open_source


def run_demo(model: str = "zoo:yolov8s-fall", *, source: str | None = None, frames: int = 120,
             threads: int = 2) -> str:
    """Load ``model``, run it on ``source`` (default bikes.mp4) with onnxruntime; return the printed report."""
    started = time.perf_counter()
    handle = load_model(model)
    loaded = time.perf_counter()
    predictor = make_predictor(handle, "ort", threads=threads)
    ready = time.perf_counter()
    video = source or str(bundled_video("bikes.mp4"))
    stream = open_source(video)
    times: list[StageTimes] = []
    per_class: Counter[str] = Counter()
    frames_with: Counter[str] = Counter()
    try:
        for index, frame in enumerate(stream):
            if index >= frames:
                break
            prediction = predictor(frame)
            if index > 0:  # the first frame warms the session up; it is not measured
                times.append(prediction.times)
            labels = [item["label"] for item in prediction.result.as_list() if "label" in item]
            per_class.update(labels)
            frames_with.update(set(labels))
    finally:
        stream.close()
    if not times:
        return f"{video}: too few frames to measure"
    latency = {stage: summarize_ms([getattr(t, stage) for t in times]) for stage in ("pre", "infer", "post")}
    latency["total"] = summarize_ms([t.total for t in times])
    lines = [
        f"Deploy Studio demo — {handle.display_name} ({handle.task}, {handle.params:,} params) on {video}",
        f"load {loaded - started:.1f} s, ONNX session ready {ready - loaded:.1f} s (export cached after the first run)",
        f"onnxruntime, {threads} thread(s), input {list(predictor.last_input.shape)}, "
        f"{len(times)} frames timed after 1 warm-up",
        stage_table(latency),
        f"fps {1000 / latency['total']['mean']:.1f} (1000 / mean total), peak RSS {peak_rss_mb()} MB",
        "detections per class (conf ≥ 0.25):",
    ]
    for label in handle.labels:
        lines.append(f"  {label:<12} {per_class.get(label, 0):>5} boxes in {frames_with.get(label, 0):>4} frames")
    return "\n".join(lines)
