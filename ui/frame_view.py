"""One preview pane: the newest frame with the model's boxes (or top-k classes) drawn over it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.runtime.results import Classification, Detections

PALETTE = [QColor(c) for c in ("#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a",
                               "#ff375f", "#30d158", "#5e5ce6")]


class FrameView(QWidget):
    """Paints a BGR frame scaled to fit, its predictions, and a caption (variant, fps, disagreements)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._frame: np.ndarray | None = None  # keeps the buffer the QImage points into alive
        self._result: object | None = None
        self.caption = ""
        self.placeholder = "Drop a model file here, or open one from the File menu"
        self.frames_shown = 0

    def show_frame(self, frame: np.ndarray, result: object | None, caption: str) -> None:
        self._frame = np.ascontiguousarray(frame)
        height, width = self._frame.shape[:2]
        self._image = QImage(self._frame.data, width, height, 3 * width, QImage.Format.Format_BGR888)
        self._result, self.caption = result, caption
        self.frames_shown += 1
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._image, self._frame, self._result = None, None, None
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
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, 9.0 * min(scale * 1.5, 1.2)))
        painter.setFont(font)
        if isinstance(self._result, Detections):
            self._draw_boxes(painter, self._result, left, top, scale)
        elif isinstance(self._result, Classification):
            self._draw_topk(painter, self._result, left, top)
        if self.caption:
            metrics = painter.fontMetrics()
            box = QRectF(left, top + height - metrics.height() - 8, width, metrics.height() + 8)
            painter.fillRect(box, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(box.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, self.caption)

    @staticmethod
    def _draw_boxes(painter: QPainter, result: Detections, left: float, top: float, scale: float) -> None:
        metrics = painter.fontMetrics()
        for index in range(len(result)):
            x1, y1, x2, y2 = (float(v) for v in result.boxes[index])
            color = PALETTE[int(result.class_ids[index]) % len(PALETTE)]
            rect = QRectF(left + x1 * scale, top + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale)
            painter.setPen(QPen(color, 2))
            painter.drawRect(rect)
            text = f"{result.label(index)} {float(result.scores[index]):.2f}"
            tag = QRectF(rect.left(), max(rect.top() - metrics.height() - 2, top), metrics.horizontalAdvance(text) + 8,
                         metrics.height() + 2)
            painter.fillRect(tag, color)
            painter.setPen(QColor("black"))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

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
