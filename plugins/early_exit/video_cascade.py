"""Early exit for detectors on video: reuse, then low resolution, then full resolution when unsure.

The variant is the same graph run by ``studio.runtime.cascade.CascadePredictor``. With a threshold set
to "auto", the first part of the measured video chooses it (``cascade_choice``: the fastest thresholds
whose mAP50 against the full model reaches ``target_map50``); the report then measures the cascade on
the rest of the video, which chose nothing, against the full model on every frame: the share of frames
per path, mean latency of both, and fidelity (mAP50 of the cascade's detections against the full
model's, with its interval and evidence).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, SettingsError, auto_or_number, option
from studio.runtime.choice import RuntimeMode, runtime_mode
from studio.sources import take_frames
from studio.tasks import TaskContext


@dataclass
class VideoCascadeSettings:
    low_imgsz: int = option(320, label="Low-resolution size", min=96, max=1280,
                            help="Long side of the cheap pass; a multiple of the model's stride")
    escalate_below: str = option("auto", label="Escalate when the best score is below",
                                 help="auto: chosen for the fidelity target; or a score 0–1 (above 1: always)")
    reuse_below: str = option("auto", label="Reuse the last result when the frame changed less than",
                              help="auto: chosen for the fidelity target; or the mean absolute difference of "
                                   "64×36 grey thumbnails (0–255; 0: never reuse)")
    target_map50: float = option(0.9, label="Target mAP50 against the full model (auto thresholds)",
                                 help="the task's own mAP50: mask IoU for segmentation, OKS for pose, "
                                      "probiou for oriented boxes, box IoU otherwise", min=0.1, max=1.0)
    max_reuse: int = option(4, label="Reuse at most this many frames in a row", min=0, max=100)
    evaluation_video: Path | None = option(None, label="Video to measure on", help="Empty uses bikes.mp4")
    evaluation_frames: int = option(120, label="Frames to measure", min=10, max=10000)


class VideoCascade:
    id = "early_exit.video_cascade"
    title = "Video cascade (reuse → low res → full res)"
    kind = Kind.EARLY_EXIT
    Settings = VideoCascadeSettings
    settings_version = 2

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 had fixed thresholds (0.5 and 2.0 by default): a replayed recipe keeps them.
        if version < 2:
            data = {**data, "escalate_below": str(data.get("escalate_below", 0.5)),
                    "reuse_below": str(data.get("reuse_below", 2.0))}
        return data

    def check(self, model: ModelHandle) -> list[str]:
        reasons = []
        if model.task not in (Task.DETECT, Task.SEGMENT, Task.POSE):
            reasons.append("the cascade is for detectors")
        if model.image_input is None or not model.image_input.dynamic:
            reasons.append("the low-resolution pass needs a graph that accepts several input sizes")
        mode = runtime_mode(model)
        if mode is not RuntimeMode.PLAIN:
            reasons.append(f"it already runs as a {mode} variant")
        return reasons

    def apply(self, model: ModelHandle, settings: VideoCascadeSettings, ctx: TaskContext) -> ModelHandle:
        from studio.runtime.cascade import CascadeSettings

        stride = model.required_image_input().stride  # check refused models without a dynamic image input
        if settings.low_imgsz % stride:
            raise SettingsError(f"{self.id}: low_imgsz {settings.low_imgsz} is not a multiple of the stride "
                                f"{stride}", fix=f"use {settings.low_imgsz // stride * stride or stride}")
        escalate = auto_or_number(settings.escalate_below, "escalate_below", 0.0, 2.0)
        reuse = auto_or_number(settings.reuse_below, "reuse_below", 0.0, 255.0)
        video = settings.evaluation_video or _bundled()
        frames = take_frames(video, settings.evaluation_frames)
        choice: dict[str, Any] = {}
        if escalate is None or reuse is None:
            escalate, reuse, choice, frames = _choose(model, frames, settings, escalate, reuse, ctx.sub(0.0, 0.5))
        cascade = CascadeSettings(settings.low_imgsz, escalate, reuse, settings.max_reuse)
        variant = model.replace(name=f"{model.name}-cascade", metadata={
            **model.metadata, "runtime_mode": RuntimeMode.CASCADE.value,
            "runtime_settings": json.dumps(cascade.as_dict())})
        report = measure_cascade(model, variant, frames, str(video), ctx.sub(0.5 if choice else 0.0, 1.0))
        ctx.add_report(report | {"escalate_below": escalate, "reuse_below": reuse} | choice)
        ctx.progress(1.0, "done")
        return variant


def _bundled() -> Path:
    from studio.media import bundled_video

    return bundled_video("bikes.mp4")


def _choose(model, frames, settings, escalate, reuse, ctx) -> tuple[float, float, dict[str, Any], list]:
    """(escalate_below, reuse_below, the choice for the report, the frames left to report on)."""
    from plugins.early_exit import cascade_choice

    choosing, reporting = cascade_choice.split(frames)
    if len(choosing) < 2 or len(reporting) < 2:
        raise SettingsError(f"{len(frames)} evaluation frames are too few to choose thresholds on some and "
                            "report on others", fix="raise evaluation_frames (e.g. 120), or fix both thresholds")
    records = cascade_choice.record(model, choosing, settings.low_imgsz, ctx, threads=2)
    chosen, candidates = cascade_choice.choose(records, settings.target_map50, settings.max_reuse, escalate, reuse)
    choice: dict[str, Any] = {"choice": {
        "target_map50": settings.target_map50, "frames": len(choosing), "candidates": candidates,
        "on": f"the first {len(choosing)} frames; the report uses the frames after a "
              f"{cascade_choice.GAP_FRAMES}-frame gap"}}
    if chosen is None:
        # Fidelity first: no pair reached the target, so every computed frame escalates and none is reused.
        from studio.evaluate.evidence import METRIC_LABELS

        metric = next((label for key, label in METRIC_LABELS.items() if key in candidates[0]), "mAP50")
        choice["warnings"] = [f"no thresholds reached {metric} {settings.target_map50} on the {len(choosing)} "
                              "choosing frames: the cascade always runs the full model (no speed-up); lower "
                              "target_map50 or raise low_imgsz"]
        chosen = (1.01, 0.0)
    return chosen[0], chosen[1], choice, reporting


def measure_cascade(model: ModelHandle, variant: ModelHandle, frames: list, video: str, ctx: TaskContext,
                    threads: int = 2) -> dict:
    from studio.evaluate.fidelity import TARGET_CONF, detection_fidelity
    from studio.runtime.predictor import make_predictor

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
    return {"video": video, "frames": len(frames), "path_share": shares,
            "mean_ms_full": round(sum(full_ms) / len(full_ms), 2),
            "mean_ms_cascade": round(sum(cascade_ms) / len(cascade_ms), 2),
            "speedup_mean": round(sum(full_ms) / max(sum(cascade_ms), 1e-9), 3),
            "fidelity": fidelity | {"note": "cascade detections (conf ≥ 0.25, as shown to the user) against the "
                                            "full model's on every frame"},
            "method": f"onnxruntime, {threads} threads, full model and cascade alternating on the same frames"}
