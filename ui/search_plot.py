"""The search's plot: one marker per trial, latency p50 across and fidelity up, redrawn as trials finish.

Every item is made once and refilled with ``setData`` (the plot is redrawn about once a second while a search
runs). Complete trials at or above the target are green, below it orange; pruned trials were judged on the
quick frames only and never timed, so they are hollow, at their quick fidelity, in a "not timed" column right
of the timed ones; failed trials have neither figure and are listed in the table only. The model itself is the
white diamond at fidelity 1 (it is the reference), the front is ringed and joined, the target is a line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

FEASIBLE, BELOW, PRUNED, BASELINE, FRONT, SELECTED = "#34c759", "#ff9f0a", "#8e8e93", "#e5e5ea", "#ffd60a", "#0a84ff"
NOT_TIMED_GAP = 1.15  # the "not timed" column sits this far right of the slowest timed trial


def timed(row: dict[str, Any]) -> bool:
    return row["state"] == "complete" and row.get("latency_p50_ms") is not None and row.get("fidelity") is not None


def points(summary: dict[str, Any] | None) -> dict[str, list[tuple[float, float, int]]]:
    """(x, y, trial number) per marker kind; the model itself is number -1."""
    rows = (summary or {}).get("trials", [])
    base_ms = ((summary or {}).get("baseline") or {}).get("latency_p50_ms")
    done = [r for r in rows if timed(r)]
    slowest = max([r["latency_p50_ms"] for r in done] + ([base_ms] if base_ms else []), default=1.0)
    column = slowest * NOT_TIMED_GAP
    return {
        "feasible": [(r["latency_p50_ms"], r["fidelity"], r["number"]) for r in done if r.get("feasible")],
        "below": [(r["latency_p50_ms"], r["fidelity"], r["number"]) for r in done if not r.get("feasible")],
        "front": sorted((r["latency_p50_ms"], r["fidelity"], r["number"]) for r in done if r.get("on_front")),
        "pruned": [(column, r["fidelity"], r["number"]) for r in rows
                   if r["state"] == "pruned" and r.get("fidelity") is not None],
        "baseline": [(base_ms, 1.0, -1)] if base_ms else [],
        "not_timed_x": [column] if any(r["state"] == "pruned" for r in rows) else [],
    }


class SearchPlot(pg.PlotWidget):
    """``show(summary, spec)`` after each poll; ``select(number)`` rings a trial; ``clicked(number)`` is emitted
    through ``sigPointClicked`` (the trial's number, -1 for the model itself)."""

    sigPointClicked = pg.QtCore.Signal(int)

    def __init__(self, parent: Any = None):
        super().__init__(parent, title="Search: latency vs fidelity, one marker per trial")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.addLegend(offset=(-4, 4))
        self.setLabel("bottom", "p50 latency (ms)")
        self.setLabel("left", "fidelity against the model")
        self.front_line = self.plot([], [], pen=pg.mkPen(FRONT, width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.front_rings = pg.ScatterPlotItem(size=22, brush=None, pen=pg.mkPen(FRONT, width=2), name="on the front")
        self.scatters = {
            "feasible": pg.ScatterPlotItem(size=11, brush=pg.mkBrush(FEASIBLE), pen=None, name="at the target"),
            "below": pg.ScatterPlotItem(size=11, brush=pg.mkBrush(BELOW), pen=None, name="below the target"),
            "pruned": pg.ScatterPlotItem(size=11, brush=None, pen=pg.mkPen(PRUNED, width=2),
                                         name="pruned (quick fidelity, not timed)"),
            "baseline": pg.ScatterPlotItem(size=14, symbol="d", brush=pg.mkBrush(BASELINE), pen=None,
                                           name="the model itself"),
        }
        self.selected_ring = pg.ScatterPlotItem(size=28, brush=None, pen=pg.mkPen(SELECTED, width=3))
        for item in (self.front_rings, *self.scatters.values(), self.selected_ring):
            self.addItem(item)
        for scatter in self.scatters.values():
            scatter.sigClicked.connect(self._clicked)
        self.target_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#ff453a", width=1,
                                                                                style=pg.QtCore.Qt.PenStyle.DashLine),
                                           label="target", labelOpts={"position": 0.05, "color": "#ff453a"})
        self.not_timed_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(PRUNED, width=1,
                                                                                    style=pg.QtCore.Qt.PenStyle.DotLine),
                                              label="not timed", labelOpts={"position": 0.95, "color": PRUNED})
        self.addItem(self.target_line)
        self.addItem(self.not_timed_line)
        self.target_line.hide()
        self.not_timed_line.hide()
        self.where: dict[int, tuple[float, float]] = {}
        self.selected: int | None = None
        self.redraws = 0

    def show_summary(self, summary: dict[str, Any] | None, axis_labels: tuple[str, str] | None = None) -> None:
        self.redraws += 1
        found = points(summary)
        self.where = {}
        for kind, scatter in self.scatters.items():
            scatter.setData(x=[p[0] for p in found[kind]], y=[p[1] for p in found[kind]],
                            data=[p[2] for p in found[kind]])
            self.where.update({p[2]: (p[0], p[1]) for p in found[kind]})
        front = found["front"]
        self.front_rings.setData(x=[p[0] for p in front], y=[p[1] for p in front])
        self.front_line.setData(np.array([p[0] for p in front], float), np.array([p[1] for p in front], float))
        if summary is not None and summary.get("target") is not None:
            self.target_line.setValue(summary["target"])
            self.target_line.label.setFormat(f"target {summary['target']:g}")
            self.target_line.show()
        else:
            self.target_line.hide()
        if found["not_timed_x"]:
            self.not_timed_line.setValue(found["not_timed_x"][0])
            self.not_timed_line.show()
        else:
            self.not_timed_line.hide()
        if axis_labels is not None:
            self.setLabel("bottom", axis_labels[0])
            self.setLabel("left", axis_labels[1])
        self.select(self.selected)

    def select(self, number: int | None) -> None:
        self.selected = number
        spot = self.where.get(number) if number is not None else None
        self.selected_ring.setData(x=[spot[0]] if spot else [], y=[spot[1]] if spot else [])

    def count(self, kind: str) -> int:
        """How many markers of a kind are drawn (feasible, below, pruned, baseline)."""
        return len(self.scatters[kind].data)

    def _clicked(self, _item: Any, clicked: Any, *_args: Any) -> None:
        if len(clicked):
            self.sigPointClicked.emit(int(clicked[0].data()))
