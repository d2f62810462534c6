"""Early exit for detectors on video: reuse, then low resolution, then full resolution when unsure.

The variant is the same graph run by ``studio.runtime.cascade.CascadePredictor``. Applying the plugin
measures it on a video against the full model on every frame: the share of frames per path, mean
latency of both, and fidelity (mAP50 of the cascade's detections against the full model's).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, option
from studio.tasks import TaskContext


@dataclass
class VideoCascadeSettings:
    low_imgsz: int = option(320, label="Low-resolution size", min=96, max=1280,
                            help="Long side of the cheap pass; a multiple of the model's stride")
    escalate_below: float = option(0.5, label="Escalate when the best score is below", min=0.0, max=1.0)
    reuse_below: float = option(2.0, label="Reuse the last result when the frame changed less than",
                                min=0.0, max=255.0, help="Mean absolute difference of 64×36 grey thumbnails")
    max_reuse: int = option(4, label="Reuse at most this many frames in a row", min=0, max=100)
    evaluation_video: Path | None = option(None, label="Video to measure on", help="Empty uses bikes.mp4")
    evaluation_frames: int = option(120, label="Frames to measure", min=10, max=10000)


class VideoCascade:
    id = "early_exit.video_cascade"
    title = "Video cascade (reuse → low res → full res)"
    kind = Kind.EARLY_EXIT
    Settings = VideoCascadeSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        reasons = []
        if model.task not in (Task.DETECT, Task.SEGMENT, Task.POSE):
            reasons.append("the cascade is for detectors")
        if model.image_input is None or not model.image_input.dynamic:
            reasons.append("the low-resolution pass needs a graph that accepts several input sizes")
        if model.metadata.get("runtime_mode"):
            reasons.append(f"it already runs as a {model.metadata['runtime_mode']} variant")
        return reasons

    def apply(self, model: ModelHandle, settings: VideoCascadeSettings, ctx: TaskContext) -> ModelHandle:
        from studio.runtime.cascade import CascadeSettings

        stride = model.image_input.stride
        if settings.low_imgsz % stride:
            from studio.plugin_api import SettingsError

            raise SettingsError(f"{self.id}: low_imgsz {settings.low_imgsz} is not a multiple of the stride "
                                f"{stride}", fix=f"use {settings.low_imgsz // stride * stride or stride}")
        cascade = CascadeSettings(settings.low_imgsz, settings.escalate_below, settings.reuse_below,
                                  settings.max_reuse)
        variant = model.replace(name=f"{model.name}-cascade", metadata={
            **model.metadata, "runtime_mode": "cascade", "runtime_settings": json.dumps(cascade.as_dict())})
        ctx.add_report(measure_cascade(model, variant, settings, ctx))
        ctx.progress(1.0, "done")
        return variant


def measure_cascade(model: ModelHandle, variant: ModelHandle, settings: VideoCascadeSettings,
                    ctx: TaskContext, threads: int = 2) -> dict:
    from studio.evaluate.fidelity import TARGET_CONF, detection_fidelity
    from studio.media import bundled_video
    from studio.runtime.predictor import make_predictor
    from studio.sources import take_frames

    video = settings.evaluation_video or bundled_video("bikes.mp4")
    frames = take_frames(video, settings.evaluation_frames)
    full = make_predictor(model, threads=threads, conf=TARGET_CONF)
    cascade = make_predictor(variant, threads=threads, conf=TARGET_CONF)
    reference, produced, full_ms, cascade_ms = [], [], [], []
    for index, frame in enumerate(frames):
        ctx.progress(index / len(frames), f"measuring the cascade on frame {index + 1}/{len(frames)}")
        start = time.perf_counter()
        reference.append(full(frame).result)
        full_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        produced.append(cascade(frame).result)
        cascade_ms.append((time.perf_counter() - start) * 1e3)
    fidelity = detection_fidelity(reference, produced)
    shares = {path: round(count / len(frames), 4) for path, count in sorted(cascade.paths.items())}
    return {"video": str(video), "frames": len(frames), "path_share": shares,
            "mean_ms_full": round(sum(full_ms) / len(full_ms), 2),
            "mean_ms_cascade": round(sum(cascade_ms) / len(cascade_ms), 2),
            "speedup_mean": round(sum(full_ms) / max(sum(cascade_ms), 1e-9), 3),
            "fidelity": fidelity | {"note": "cascade detections (conf ≥ 0.25, as shown to the user) against the "
                                            "full model's on every frame"},
            "method": f"onnxruntime, {threads} threads, full model and cascade alternating on the same frames"}
