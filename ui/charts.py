"""Live charts: per-stage latency, fps and memory over the last minute, with p50/p95 beside them.

Refreshed by the window's timer (5 Hz) from the preview's ring buffers with ``setData`` on curves
created once; nothing is emitted per frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.preview import LivePreview

WINDOW_S = 60.0
STAGE_COLORS = {"pre": "#ff9f0a", "infer": "#0a84ff", "post": "#34c759", "total": "#e5e5ea"}
LANE_STYLES = [dict(width=2), dict(width=2, style=pg.QtCore.Qt.PenStyle.DashLine)]


def fps_series(stamps: np.ndarray, window: float = WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
    """Frames per second in 1-second bins over the last ``window`` seconds (stamps are ≤ 0)."""
    edges = np.arange(-window, 1.0, 1.0)
    counts, _ = np.histogram(stamps, bins=edges)
    return edges[1:], counts.astype(float)


class ChartsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="#1c1c1e", foreground="#d1d1d6")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.latency_plot = self._plot("Latency per stage (ms)")
        self.fps_plot = self._plot("Frames per second")
        self.memory_plot = self._plot("Process memory, RSS (MB)")
        for plot in (self.latency_plot, self.fps_plot, self.memory_plot):
            layout.addWidget(plot, 3)
        self.numbers = QLabel("No preview running.")
        self.numbers.setWordWrap(True)
        self.numbers.setMinimumWidth(260)
        column = QVBoxLayout()
        column.addWidget(self.numbers)
        column.addStretch(1)
        layout.addLayout(column, 2)
        self.latency_plot.addLegend(offset=(4, 4))
        # Legend for the stages; B's curves are the same colours, dashed (said in the numbers column).
        self.stage_curves = [{stage: self.latency_plot.plot(pen=pg.mkPen(STAGE_COLORS[stage], **LANE_STYLES[lane]),
                                                            name=stage if lane == 0 else None)
                              for stage in ("pre", "infer", "post")} for lane in range(2)]
        self.fps_curves = [self.fps_plot.plot(pen=pg.mkPen("#e5e5ea", **LANE_STYLES[lane]), stepMode="right")
                           for lane in range(2)]
        self.memory_curve = self.memory_plot.plot(pen=pg.mkPen("#bf5af2", width=2))
        self.refreshes = 0

    @staticmethod
    def _plot(title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setMinimumHeight(120)
        plot.setXRange(-WINDOW_S, 0, padding=0)
        plot.setLabel("bottom", "seconds")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setMouseEnabled(x=False, y=False)
        return plot

    def refresh(self, preview: LivePreview | None, names: list[str], model_mb: list[float | None]) -> None:
        self.refreshes += 1
        if preview is None:
            return
        lines = []
        for lane_index in range(2):
            lane = preview.lanes[lane_index] if lane_index < len(preview.lanes) else None
            rows = lane.timings.last(WINDOW_S) if lane is not None else None
            for stage, curve in self.stage_curves[lane_index].items():
                curve.setData(rows["t"], rows[stage]) if rows is not None else curve.setData([], [])
            if rows is not None:
                x, y = fps_series(rows["t"])
                self.fps_curves[lane_index].setData(np.append(x - 1.0, x[-1]), np.append(y, y[-1]))
            else:
                self.fps_curves[lane_index].setData([], [])
            if lane is not None and len(rows["total"]):
                p50, p95 = np.percentile(rows["total"], [50, 95])
                i50, i95 = np.percentile(rows["infer"], [50, 95])
                fps = lane.fps()
                memory = model_mb[lane_index] if lane_index < len(model_mb) else None
                lines.append(f"<b>{'AB'[lane_index]} · {names[lane_index]}</b><br>"
                             f"total p50 {p50:.1f} ms · p95 {p95:.1f} ms<br>"
                             f"inference p50 {i50:.1f} ms · p95 {i95:.1f} ms<br>"
                             f"{'–' if fps is None else f'{fps:.1f}'} fps (last 5 s) · {len(rows['total'])} frames"
                             + (f"<br>model memory +{memory:.0f} MB RSS at load" if memory is not None else ""))
        memory = preview.memory.last(WINDOW_S)
        self.memory_curve.setData(memory["t"], memory["rss_mb"])
        if len(memory["rss_mb"]):
            lines.append(f"process RSS {memory['rss_mb'][-1]:.0f} MB (psutil, every 0.25 s)")
        lines.append(f"dropped {preview.dropped} of {preview.source_frames} source frames (model busy)")
        if len(preview.lanes) > 1:
            lines.append("B is drawn dashed.")
            lines.append(f"A/B disagreements: {preview.disagreement_total} boxes/classes in {preview.processed} frames")
        lines.append("<span style='color:#8e8e93'>Per frame, last 60 s, NumPy percentiles; each side's runtime "
                     "and device beside its name</span>")
        self.numbers.setText("<br>".join(lines))
