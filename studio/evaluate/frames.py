"""The frames fidelity is judged on: the judging side of the user's own frames when a job has them
(``ctx.frames``, a ``studio.data.FrameSet``), else the bundled images plus evenly spaced video frames."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from studio.media import bundled_image, bundled_video
from studio.sources import take_frames

FRAME_SET_NOTE = "bus.jpg, zidane.jpg and every 10th frame of bikes.mp4 (first {n} frames of that list)"
BUNDLED_MAX = 27


def fidelity_frames(count: int = 25) -> list[np.ndarray]:
    """``count`` bundled frames (at most 27): bus.jpg, zidane.jpg, then bikes.mp4 frames 0, 10, 20, …"""
    images = []
    for name in ("bus.jpg", "zidane.jpg"):
        image = cv2.imread(str(bundled_image(name)))
        assert image is not None, f"the bundled {name} is always readable"
        images.append(image)
    video = take_frames(bundled_video("bikes.mp4"), 250)[::10]
    return (images + video)[:count]


def judging_frames(count: int, ctx: Any = None) -> tuple[list[np.ndarray], str]:
    """(frames, where they came from): up to ``count`` frames nothing was calibrated or trained on."""
    frames_of_model = getattr(ctx, "frames", None)
    if frames_of_model is not None:
        return frames_of_model.judging_frames(count, ctx)
    frames = fidelity_frames(count)
    return frames, "bundled " + FRAME_SET_NOTE.format(n=len(frames))


def choosing_frames(count: int, ctx: Any = None) -> tuple[list[np.ndarray], str]:
    """(frames, where they came from): up to ``count`` frames for a search to choose on. With the user's frames,
    two runs of their calibration side held out of calibration: never a judging frame. The bundled media have
    none to spare: their calibration frames (bikes.mp4's first street frames, then a cartoon) hold none of most
    models' objects, so a trial judged there reads 0 — so the bundled judging frames choose as well, and the
    note says that the figure reported is then the one the choice was made on."""
    frames_of_model = getattr(ctx, "frames", None)
    if frames_of_model is not None:
        return frames_of_model.choosing_frames(count, ctx)
    frames, note = judging_frames(count, ctx)
    return frames, (f"{note} — the bundled media have no frames to spare, so these also choose; give the model's "
                    "own frames (--frames) for a choice made apart from the judging frames")
