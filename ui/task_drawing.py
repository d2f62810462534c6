"""Each task's own array drawn over a frame: masks (one overlay image per result), skeletons, oriented polygons.

Coordinates arrive in original-image pixels (``studio.runtime.results.Detections``); a ``Placement`` maps them
to the widget, where the frame is drawn scaled to fit and centred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF

from studio.runtime.decode_tasks import rotated_corners
from studio.runtime.results import Detections

PALETTE = [QColor(c) for c in ("#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a",
                               "#ff375f", "#30d158", "#5e5ce6")]
MASK_ALPHA = 0.45  # the frame stays readable under a mask, and the class colour stays recognisable
VISIBLE = 0.5  # a keypoint below this visibility is not drawn, nor the limbs that end in it
# COCO's limbs, 0-based, in the order Ultralytics' Annotator.kpts draws them (its skeleton is 1-based).
COCO_LIMBS = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
              (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
COCO_KEYPOINTS = 17


def class_color(class_id: int) -> QColor:
    return PALETTE[class_id % len(PALETTE)]


@dataclass(frozen=True)
class Placement:
    """Where the frame lies in the widget: widget = (left, top) + original × scale."""

    left: float
    top: float
    scale: float

    def point(self, x: float, y: float) -> QPointF:
        return QPointF(self.left + x * self.scale, self.top + y * self.scale)


@dataclass(frozen=True)
class MaskOverlay:
    """One premultiplied ARGB image covering ``rect`` (left, top, width, height in original pixels): the box around
    every instance, not the whole frame; ``pixels`` owns the memory the QImage points into."""

    image: QImage
    pixels: np.ndarray
    rect: tuple[int, int, int, int]

    def target(self, where: Placement) -> QRectF:
        """Where the overlay goes in the widget."""
        left, top, width, height = self.rect
        return QRectF(where.left + left * where.scale, where.top + top * where.scale, width * where.scale,
                      height * where.scale)


def _premultiplied_argb(color: QColor, alpha: float) -> int:
    a = round(255 * alpha)
    r, g, b = (round(c * alpha) for c in (color.red(), color.green(), color.blue()))
    return (a << 24) | (r << 16) | (g << 8) | b


def mask_overlay(result: Detections) -> MaskOverlay | None:
    """The masks of ``result`` as one overlay, the most confident instance on top; None without masks.

    Built once per new result (never per paint, never on the inference thread). Each instance is written only
    inside its box: the decoders crop masks to their boxes, as Ultralytics' crop_mask does, so a frame-sized
    pass per instance would read nothing but zeros outside.
    """
    masks = result.masks
    if masks is None or not len(result):
        return None
    height, width = masks.shape[1:]
    spans = []  # each instance's (r0, r1, c0, c1), clipped to the frame
    for x1, y1, x2, y2 in result.boxes:
        spans.append((max(int(np.floor(y1)), 0), min(int(np.ceil(y2)) + 1, height),
                      max(int(np.floor(x1)), 0), min(int(np.ceil(x2)) + 1, width)))
    drawn = [span for span in spans if span[1] > span[0] and span[3] > span[2]]
    if not drawn:
        return None
    # One image over the union of the boxes: a few people in a 4K frame cost their own pixels, not the frame's.
    top, bottom = min(s[0] for s in drawn), max(s[1] for s in drawn)
    left, right = min(s[2] for s in drawn), max(s[3] for s in drawn)
    ids = np.zeros((bottom - top, right - left), np.uint16)
    for index in range(len(result) - 1, -1, -1):  # lower scores first: the best instance is written last
        r0, r1, c0, c1 = spans[index]
        if c1 > c0 and r1 > r0:
            np.putmask(ids[r0 - top:r1 - top, c0 - left:c1 - left], masks[index, r0:r1, c0:c1], index + 1)
    lut = np.zeros(len(result) + 1, np.uint32)
    lut[1:] = [_premultiplied_argb(class_color(int(c)), MASK_ALPHA) for c in result.class_ids]
    # QImage's ARGB32 formats are native-endian 32-bit words, exactly what a uint32 array holds.
    pixels = np.ascontiguousarray(lut[ids])
    image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], 4 * pixels.shape[1],
                   QImage.Format.Format_ARGB32_Premultiplied)
    return MaskOverlay(image, pixels, (left, top, right - left, bottom - top))


def draw_tag(painter: QPainter, x: float, y: float, min_top: float, text: str, color: QColor) -> None:
    """A label in the class colour whose bottom-left sits at (x, y), kept below ``min_top``."""
    metrics = painter.fontMetrics()
    tag = QRectF(x, max(y - metrics.height() - 2, min_top), metrics.horizontalAdvance(text) + 8, metrics.height() + 2)
    painter.fillRect(tag, color)
    painter.setPen(QColor("black"))
    painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)


def draw_rotated(painter: QPainter, result: Detections, where: Placement) -> None:
    """Each oriented box as its polygon, labelled at its highest corner."""
    if result.rotated is None:
        return
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for index, corners in enumerate(rotated_corners(result.rotated)):
        color = class_color(int(result.class_ids[index]))
        painter.setPen(QPen(color, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolygon(QPolygonF([where.point(float(x), float(y)) for x, y in corners]))
        x, y = corners[int(corners[:, 1].argmin())]
        anchor = where.point(float(x), float(y))
        draw_tag(painter, anchor.x(), anchor.y(), where.top,
                 f"{result.label(index)} {float(result.scores[index]):.2f}", color)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def draw_keypoints(painter: QPainter, result: Detections, where: Placement) -> None:
    """COCO's skeleton for 17 keypoints, points alone for any other count; unseen keypoints are left out."""
    if result.keypoints is None:
        return
    keypoints = result.keypoints
    limbs = COCO_LIMBS if keypoints.shape[1] == COCO_KEYPOINTS else ()
    radius = max(3.0, min(5.0, 4.0 * where.scale))
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    dots: list[tuple[QColor, list[QPointF]]] = []
    for index in range(len(result)):
        color = class_color(int(result.class_ids[index]))
        points = [where.point(float(x), float(y)) for x, y in keypoints[index, :, :2]]
        seen = keypoints[index, :, 2] >= VISIBLE
        painter.setPen(QPen(color, 2))
        for first, second in limbs:
            if seen[first] and seen[second]:
                painter.drawLine(points[first], points[second])
        dots.append((color, [point for point, visible in zip(points, seen, strict=True) if visible]))
    # White rims first, every fill after them: a dot stands out from limbs of its own colour, and a neighbour's
    # rim never covers it (face keypoints of a distant person lie closer together than a dot's width).
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("white"))
    for _, points in dots:
        for point in points:
            painter.drawEllipse(point, radius + 1, radius + 1)
    for color, points in dots:
        painter.setBrush(color)
        for point in points:
            painter.drawEllipse(point, radius, radius)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
