"""The prompt view's charts: time to first token and decode speed per generation, and process memory."""

from __future__ import annotations

import collections
import time
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from studio.lm.generate import Generation, GenerationSettings
from studio.metrics import current_rss_mb
from ui.variant_choice import SIDES, THREADS

MEMORY_INTERVAL_MS = 200  # 5 Hz
MEMORY_WINDOW_S = 60.0
SERIES_COLORS = ("#0a84ff", "#ff9f0a", "#34c759", "#bf5af2", "#ff375f", "#64d2ff")
RECENT_RUNS = 6  # runs listed beside the charts


def decoding_text(settings: GenerationSettings) -> str:
    if settings.sample:
        return f"sampling T={settings.temperature:g}, top-p {settings.top_p:g}, seed {settings.seed}"
    return "greedy"


class GenerationCharts(QWidget):
    """Time to first token and decode speed per generation (one point each), and the process's memory."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="#1c1c1e", foreground="#d1d1d6")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.ttft_plot = self._plot("Time to first token (ms)", "prompt in → first token out", "run")
        self.tps_plot = self._plot("Decode tokens/s", "tokens after the first ÷ their time", "run")
        self.memory_plot = self._plot("Process memory, RSS (MB)", f"psutil every {MEMORY_INTERVAL_MS / 1000:g} s",
                                      "seconds")
        self.memory_plot.setXRange(-MEMORY_WINDOW_S, 0, padding=0)
        for plot in (self.ttft_plot, self.tps_plot):
            plot.addLegend(offset=(4, 4))
        for plot in (self.ttft_plot, self.tps_plot, self.memory_plot):
            layout.addWidget(plot, 3)
        self.numbers = QLabel("No generation yet.")
        self.numbers.setWordWrap(True)
        self.numbers.setMinimumWidth(260)
        self.numbers.setMaximumWidth(340)
        self.numbers.setAlignment(Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.numbers, 2)
        self.memory_curve = self.memory_plot.plot(pen=pg.mkPen("#bf5af2", width=2))
        self.memory: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=int(MEMORY_WINDOW_S * 1000 / MEMORY_INTERVAL_MS))
        self.memory_timer = QTimer(self, interval=MEMORY_INTERVAL_MS, timeout=self.sample_memory)
        self.records: list[dict[str, Any]] = []
        # One series per side and variant ("A · base model"): A/B of one variant stays two series.
        self.curves: dict[tuple[str, str], tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}

    @staticmethod
    def _plot(title: str, method: str, x_label: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=f"{title}<br><span style='font-size:8pt; color:#8e8e93'>{method}</span>")
        plot.setMinimumHeight(120)
        plot.setLabel("bottom", x_label)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setMouseEnabled(x=False, y=False)
        return plot

    # The memory timer runs only while the charts are on screen: a hidden chart costs nothing.
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.sample_memory()
        self.memory_timer.start()

    def hideEvent(self, event) -> None:
        self.memory_timer.stop()
        super().hideEvent(event)

    def sample_memory(self) -> None:
        now = time.monotonic()
        self.memory.append((now, current_rss_mb()))
        self.memory_curve.setData([t - now for t, _ in self.memory], [mb for _, mb in self.memory])

    def clear(self) -> None:
        for ttft_curve, tps_curve in self.curves.values():
            self.ttft_plot.removeItem(ttft_curve)
            self.tps_plot.removeItem(tps_curve)
        self.curves.clear()
        self.records.clear()
        self.ttft_plot.plotItem.legend.clear()
        self.tps_plot.plotItem.legend.clear()
        self.numbers.setText("No generation yet.")

    def add(self, run: Any, side: int, generation: Generation) -> None:
        """One point per chart for one finished generation, x = the run number (A and B of a run share it)."""
        key = (SIDES[side], run.keys[side])
        self.records.append({"run": run.number, "side": SIDES[side], "key": run.keys[side], "label": run.labels[side],
                             "ttft_ms": generation.ttft_ms, "tokens_per_s": generation.decode_tokens_per_s,
                             "new_tokens": len(generation.new_tokens), "decoding": decoding_text(run.settings)})
        if key not in self.curves:
            color = SERIES_COLORS[len(self.curves) % len(SERIES_COLORS)]
            style = dict(pen=pg.mkPen(color, width=1), symbol="o" if side == 0 else "t", symbolSize=8,
                         symbolBrush=color, name=f"{SIDES[side]} · {run.labels[side]}")
            self.curves[key] = (self.ttft_plot.plot(**style), self.tps_plot.plot(**style))
        mine = [r for r in self.records if (r["side"], r["key"]) == key]
        ttft_curve, tps_curve = self.curves[key]
        ttft_curve.setData([r["run"] for r in mine], [r["ttft_ms"] for r in mine])
        speed = [r for r in mine if r["tokens_per_s"] is not None]  # one token has no decode rate
        tps_curve.setData([r["run"] for r in speed], [r["tokens_per_s"] for r in speed])
        self._write_numbers()

    def _write_numbers(self) -> None:
        lines = []
        for record in self.records[-RECENT_RUNS:]:
            tps = record["tokens_per_s"]
            lines.append(f"<b>run {record['run']} · {record['side']} · {record['label']}</b><br>"
                         f"TTFT {record['ttft_ms']:.1f} ms · {'–' if tps is None else f'{tps:.1f}'} tokens/s · "
                         f"{record['new_tokens']} tokens · {record['decoding']}, {THREADS} threads")
        lines.append("<span style='color:#8e8e93'>Each point is one generation, timed with perf_counter per "
                     "streamed token. A/B runs A, then B, never both at once.</span>")
        self.numbers.setText("<br>".join(lines))
