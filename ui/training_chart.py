"""Live recovery training: loss per step and held-out fidelity per evaluation (x = step), the best marked.

The trainer (studio.train) publishes one figure per step through ``ctx.metric``, which reaches the GUI
as ``Job.metric``. A fast GPU makes hundreds a second, so figures only go into arrays and the plots
redraw from them at most 5 times a second (``setData`` on curves made once, as in ui.charts).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

REDRAW_MS = 200  # 5 Hz, like the live charts
ETA = re.compile(r"(about [^,]+ left)")  # studio.train's progress text: "…, about 3 min left"
STOPPED_BY_USER = "stopped by the user"


class _Series:
    """x/y pairs in arrays that double when full: appending is O(1), drawing takes views, not copies."""

    def __init__(self, capacity: int = 256):
        self.data = np.empty((2, capacity))
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == self.data.shape[1]:
            self.data = np.concatenate([self.data, np.empty_like(self.data)], axis=1)
        self.data[:, self.n] = x, y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    @property
    def x(self) -> np.ndarray:
        return self.data[0, :self.n]

    @property
    def y(self) -> np.ndarray:
        return self.data[1, :self.n]


def recovery_reports(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every recovery a variant's optimize report holds (one per pruning step that trained)."""
    found = []
    for step in (report or {}).get("steps", []):
        for details in step.get("details") or []:
            if isinstance(details, dict) and isinstance(details.get("recovery"), dict):
                found.append(details["recovery"])
    return found


def recovery_summary(recovery: dict[str, Any]) -> str:
    """One line from the trainer's report: why it ended, where, and which weights were kept."""
    device = (recovery.get("device") or {}).get("name", "?")
    return (f"{recovery.get('stopped', 'ended')} at step {recovery.get('steps')} of "
            f"{recovery.get('planned_steps')}; kept step {recovery.get('best_step')} (held-out fidelity "
            f"{recovery.get('fidelity_best')}); trained on {device} for {recovery.get('minutes', 0):.1f} min")


class TrainingChart(QWidget):
    """Two plots and a column of numbers; ``reset`` at a new training job, ``add`` per figure."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="#1c1c1e", foreground="#d1d1d6")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.loss_plot = self._plot("Training loss (per step)")
        self.fidelity_plot = self._plot("Held-out fidelity (per evaluation)")
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.fidelity_plot, 3)
        self.numbers = QLabel()
        self.numbers.setWordWrap(True)
        self.numbers.setMinimumWidth(260)
        self.numbers.setMaximumWidth(360)
        self.numbers.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.numbers, 2)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#0a84ff", width=1))
        self.fidelity_curve = self.fidelity_plot.plot(pen=pg.mkPen("#34c759", width=2), symbol="o", symbolSize=7,
                                                      symbolBrush="#34c759", symbolPen=None)
        self.best_marker = pg.ScatterPlotItem(symbol="star", size=18, brush=pg.mkBrush("#ffd60a"),
                                              pen=pg.mkPen("#1c1c1e"))
        self.fidelity_plot.addItem(self.best_marker)
        self.loss, self.fidelity = _Series(), _Series()
        self.redraw_timer = QTimer(self, interval=REDRAW_MS, singleShot=True, timeout=self.redraw)
        self.redraws = 0
        self.reset()
        self.numbers.setText("No training yet. A pruning run with recovery steps shows its training loss and "
                             "held-out fidelity here while it trains.")

    @staticmethod
    def _plot(title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setMinimumHeight(120)
        plot.setLabel("bottom", "step")
        plot.showGrid(x=True, y=True, alpha=0.2)
        return plot

    def reset(self, device: str = "") -> None:
        """Empty curves for a new training run on ``device`` (words, e.g. "CUDA: NVIDIA H100")."""
        self.loss.clear()
        self.fidelity.clear()
        self.device, self.steps, self.step = device, None, 0
        self.last_loss: float | None = None
        self.best: tuple[float, float] | None = None  # (step, fidelity): the first highest, as the trainer keeps
        self.eta, self.outcome = "", ""
        self.redraw()

    def add(self, fields: dict[str, Any]) -> None:
        """One figure from the trainer: ``{"step", "steps", "loss"}`` or ``{"step", "steps", "fidelity", "best"}``."""
        step = fields.get("step")
        if not isinstance(step, (int, float)):
            return
        if fields.get("steps") and fields["steps"] != self.steps:
            for plot in (self.loss_plot, self.fidelity_plot):  # the whole plan: how far along it is shows
                plot.setXRange(0, fields["steps"], padding=0.02)
        self.step, self.steps = step, fields.get("steps", self.steps)
        if isinstance(fields.get("loss"), (int, float)):
            self.loss.append(step, fields["loss"])
            self.last_loss = float(fields["loss"])
        if isinstance(fields.get("fidelity"), (int, float)):
            value = float(fields["fidelity"])
            self.fidelity.append(step, value)
            if self.best is None or value > self.best[1]:
                self.best = (float(step), value)
        if not self.redraw_timer.isActive():
            self.redraw_timer.start()

    def set_progress_text(self, text: str) -> None:
        """The job's progress text; its ETA ("about 3 min left") is shown while training."""
        match = ETA.search(text or "")
        if match:
            self.eta = match.group(1)
        elif self.step and text and "recovery step" not in text:
            self.eta = f"training over; {text}"  # measuring, exporting…: the curves are final
        self._show_numbers()

    def finish(self, outcome: str) -> None:
        """The job ended: how (the trainer's own words when it published)."""
        self.outcome = outcome
        self.eta = ""
        self.redraw()

    def redraw(self) -> None:
        self.redraws += 1
        self.loss_curve.setData(self.loss.x, self.loss.y)
        self.fidelity_curve.setData(self.fidelity.x, self.fidelity.y)
        self.best_marker.setData(*([[self.best[0]], [self.best[1]]] if self.best else [[], []]))
        self._show_numbers()

    def _show_numbers(self) -> None:
        lines = [f"<b>Recovery training</b>{f' on {self.device}' if self.device else ''}"]
        if self.steps:
            lines.append(f"step {self.step:g} of {self.steps}"
                         + (f" · loss {self.last_loss:.4f}" if self.last_loss is not None else ""))
        if self.fidelity.n:
            lines.append(f"held-out fidelity {self.fidelity.y[-1]:.3f} at step {self.fidelity.x[-1]:g}")
        if self.best is not None:
            lines.append(f"<span style='color:#ffd60a'>★ best {self.best[1]:.3f} at step {self.best[0]:g}</span>"
                         " (the weights kept)")
        if self.eta:
            lines.append(self.eta)
        if self.outcome:
            lines.append(self.outcome)
        self.numbers.setText("<br>".join(lines))
