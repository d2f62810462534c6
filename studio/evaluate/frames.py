"""The fixed frame set fidelity is measured on: the bundled images plus evenly spaced video frames."""

from __future__ import annotations

import cv2
import numpy as np

from studio.media import bundled_image, bundled_video
from studio.sources import take_frames

FRAME_SET_NOTE = "bus.jpg, zidane.jpg and every 10th frame of bikes.mp4 (first {n} frames of that list)"


def fidelity_frames(count: int = 25) -> list[np.ndarray]:
    """``count`` frames (at most 27): bus.jpg, zidane.jpg, then bikes.mp4 frames 0, 10, 20, …"""
    images = [cv2.imread(str(bundled_image(name))) for name in ("bus.jpg", "zidane.jpg")]
    video = take_frames(bundled_video("bikes.mp4"), 250)[::10]
    return (images + video)[:count]
