"""Frame → network input, vectorised with OpenCV (one resize, one pad, one blob pass per frame).

The letterbox reproduces Ultralytics' ``LetterBox`` arithmetic exactly (rounding of the resized
size and of the padding), so the studio's detections line up with Ultralytics' own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from studio.model import ImageInput, Resize


@dataclass(frozen=True)
class Geometry:
    """How network-input pixels map back to the original frame: orig = (net - pad) / gain."""

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    gain_xy: tuple[float, float]
    pad_xy: tuple[float, float]


def letterbox_geometry(orig_hw: tuple[int, int], target_hw: tuple[int, int], stride: int, rect: bool) -> Geometry:
    """Size and padding of the letterboxed frame (``rect``: pad only to a multiple of ``stride``)."""
    height, width = orig_hw
    ratio = min(target_hw[0] / height, target_hw[1] / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_w, pad_h = target_hw[1] - new_w, target_hw[0] - new_h
    if rect:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    left, top = round(pad_w / 2 - 0.1), round(pad_h / 2 - 0.1)
    right, bottom = round(pad_w / 2 + 0.1), round(pad_h / 2 + 0.1)
    return Geometry(orig_hw, (new_h + top + bottom, new_w + left + right), (new_w / width, new_h / height),
                    (left, top))


def letterbox(frame: np.ndarray, geometry: Geometry, pad_value: int) -> np.ndarray:
    height, width = geometry.orig_hw
    new_w, new_h = round(width * geometry.gain_xy[0]), round(height * geometry.gain_xy[1])
    image = frame if (new_w, new_h) == (width, height) else cv2.resize(frame, (new_w, new_h),
                                                                       interpolation=cv2.INTER_LINEAR)
    left, top = int(geometry.pad_xy[0]), int(geometry.pad_xy[1])
    right, bottom = geometry.input_hw[1] - new_w - left, geometry.input_hw[0] - new_h - top
    if left or top or right or bottom:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(pad_value, pad_value, pad_value))
    return image


def center_crop(frame: np.ndarray, size_hw: tuple[int, int], crop_fraction: float = 0.875
                ) -> tuple[np.ndarray, Geometry]:
    """Shorter side to size / crop_fraction, then the central size crop (the ImageNet evaluation transform)."""
    height, width = frame.shape[:2]
    scale = (min(size_hw) / crop_fraction) / min(height, width)
    new_w, new_h = max(round(width * scale), size_hw[1]), max(round(height * scale), size_hw[0])
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (new_h - size_hw[0]) // 2, (new_w - size_hw[1]) // 2
    crop = resized[top:top + size_hw[0], left:left + size_hw[1]]
    return crop, Geometry((height, width), size_hw, (scale, scale), (-left, -top))


def to_tensor(image: np.ndarray, spec: ImageInput) -> np.ndarray:
    """HWC uint8 BGR → 1×C×H×W float32, (pixel − mean) × scale, RGB when the model wants it."""
    return cv2.dnn.blobFromImage(image, scalefactor=spec.scale, mean=(spec.mean, spec.mean, spec.mean),
                                 swapRB=spec.rgb, crop=False)


def prepare(frame: np.ndarray, spec: ImageInput, target_hw: tuple[int, int], rect: bool) -> tuple[np.ndarray, Geometry]:
    """The whole pre-processing of one BGR frame for ``spec``."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    orig_hw = frame.shape[:2]
    if spec.resize == Resize.LETTERBOX:
        geometry = letterbox_geometry(orig_hw, target_hw, spec.stride, rect)
        image = letterbox(frame, geometry, spec.pad_value)
    elif spec.resize == Resize.CENTER_CROP:
        image, geometry = center_crop(frame, target_hw, spec.crop_fraction)
    else:
        image = cv2.resize(frame, (target_hw[1], target_hw[0]), interpolation=cv2.INTER_LINEAR)
        geometry = Geometry(orig_hw, target_hw, (target_hw[1] / orig_hw[1], target_hw[0] / orig_hw[0]), (0, 0))
    return to_tensor(image, spec), geometry
