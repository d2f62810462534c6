"""The latency-vs-fidelity Pareto plot the Variants and Formats tabs share: markers over their intervals."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg


def pareto_plot(title: str, **marker_options) -> tuple[pg.PlotWidget, pg.ScatterPlotItem, pg.ErrorBarItem]:
    """(plot, scatter, error bars): p50 latency (ms) across, fidelity up; each marker's interval drawn behind it."""
    plot = pg.PlotWidget(title=title)
    plot.setLabel("bottom", "p50 latency (ms)")
    plot.setLabel("left", "fidelity")
    plot.showGrid(x=True, y=True, alpha=0.2)
    error_bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=0.0, pen=pg.mkPen("#8e8e93"))
    scatter = pg.ScatterPlotItem(hoverable=True, **marker_options)
    plot.addItem(error_bars)
    plot.addItem(scatter)
    return plot, scatter, error_bars
