"""One preview pane: the newest frame with the model's answer drawn over it.

Boxes, masks, skeletons and oriented polygons for detectors (``ui.task_drawing``), the top-k for classifiers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.runtime.results import Classification, Detections
from ui.task_drawing import MaskOverlay, Placement, class_color, draw_keypoints, draw_rotated, draw_tag, mask_overlay


class FrameView(QWidget):
    """Paints a BGR frame scaled to fit, its predictions, and a caption (variant, fps, disagreements)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._frame: np.ndarray | None = None  # keeps the buffer the QImage points into alive
        self._result: object | None = None
        self._overlay: MaskOverlay | None = None
        self.caption = ""
        self.placeholder = "Drop a model file here, or open one from the File menu"
        self.frames_shown = 0

    def show_frame(self, frame: np.ndarray, result: object | None, caption: str) -> None:
        self._frame = np.ascontiguousarray(frame)
        height, width = self._frame.shape[:2]
        self._image = QImage(self._frame.data, width, height, 3 * width, QImage.Format.Format_BGR888)
        if result is not self._result:  # the same answer shown again keeps its overlay
            self._overlay = mask_overlay(result) if isinstance(result, Detections) else None
        self._result, self.caption = result, caption
        self.frames_shown += 1
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._image, self._frame, self._result, self._overlay = None, None, None, None
        if placeholder is not None:
            self.placeholder = placeholder
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1c1c1e"))
        if self._image is None:
            painter.setPen(QColor("#8e8e93"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        scale = min(self.width() / self._image.width(), self.height() / self._image.height())
        width, height = self._image.width() * scale, self._image.height() * scale
        left, top = (self.width() - width) / 2, (self.height() - height) / 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(left, top, width, height), self._image)
        if self._overlay is not None:
            painter.drawImage(self._overlay.target(Placement(left, top, scale)), self._overlay.image)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # it slows antialiased lines
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, 9.0 * min(scale * 1.5, 1.2)))
        painter.setFont(font)
        if isinstance(self._result, Detections):
            where = Placement(left, top, scale)
            self._draw_boxes(painter, self._result, where)
            draw_rotated(painter, self._result, where)
            draw_keypoints(painter, self._result, where)
        elif isinstance(self._result, Classification):
            self._draw_topk(painter, self._result, left, top)
        if self.caption:
            metrics = painter.fontMetrics()
            box = QRectF(left, top + height - metrics.height() - 8, width, metrics.height() + 8)
            painter.fillRect(box, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(box.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, self.caption)

    @staticmethod
    def _draw_boxes(painter: QPainter, result: Detections, where: Placement) -> None:
        if result.rotated is not None:  # oriented boxes draw their polygons instead of the upright box around them
            return
        for index in range(len(result)):
            x1, y1, x2, y2 = (float(v) for v in result.boxes[index])
            color = class_color(int(result.class_ids[index]))
            rect = QRectF(where.point(x1, y1), where.point(x2, y2))
            painter.setPen(QPen(color, 2))
            painter.drawRect(rect)
            draw_tag(painter, rect.left(), rect.top(), where.top,
                     f"{result.label(index)} {float(result.scores[index]):.2f}", color)

    @staticmethod
    def _draw_topk(painter: QPainter, result: Classification, left: float, top: float) -> None:
        metrics = painter.fontMetrics()
        lines = [f"{item['label']}  {item['score']:.3f}" for item in result.as_list()[:5]]
        box = QRectF(left + 8, top + 8, max(metrics.horizontalAdvance(t) for t in lines) + 16,
                     metrics.height() * len(lines) + 12) if lines else None
        if box is None:
            return
        painter.fillRect(box, QColor(0, 0, 0, 170))
        painter.setPen(QColor("white"))
        for row, line in enumerate(lines):
            painter.drawText(int(box.left() + 8), int(box.top() + 6 + metrics.ascent() + row * metrics.height()), line)
