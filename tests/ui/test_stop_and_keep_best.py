"""Recovery training from the optimize panel: its curves arrive live in the Training tab, "Stop and keep
best" ends the training early and still publishes a variant (its report says so), Cancel publishes nothing.

The run is a real ``deploy-studio optimize`` child (EfficientNet-Lite0 pruned 30 %), stopped or cancelled
right after its first training figure, so it costs the prune and one or two steps, not the 40 planned.
"""

from __future__ import annotations

import pytest

from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait
from ui.training_chart import recovery_reports
from ui.training_devices import resolve

PLANNED = 40
SETTINGS = {"ratio": 0.3, "recovery_steps": PLANNED, "recovery_batch": 2, "recovery_recalibrate": False}


def _open(qtbot, window) -> set:
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    return set(window.session.folder.glob("*"))


def _start_training(qtbot, window):
    panel = window.optimize_panel
    box = panel.boxes["prune.channels"]
    qtbot.waitUntil(box.run.isEnabled, timeout=60_000)
    box.form.set_values(SETTINGS)
    # The devices torch sees, probed off the GUI thread once a model is loaded.
    qtbot.waitUntil(lambda: panel.probe.devices is not None, timeout=60_000)
    assert panel.devices.text().startswith("Training device: ")
    assert ("CUDA" in panel.devices.text()) == any(kind == "cuda" for kind, _ in panel.probe.devices)
    assert panel.job_row.isHidden()
    box.run.click()
    assert not panel.job_row.isHidden() and not panel.stop.isEnabled()  # nothing to stop before it trains
    qtbot.waitUntil(panel.stop.isEnabled, timeout=LOAD_TIMEOUT_MS)  # the first training figure arrived
    return panel


@pytest.mark.slow
def test_stop_and_keep_best_publishes_a_variant_trained_fewer_steps(qtbot, window):
    _open(qtbot, window)
    panel = _start_training(qtbot, window)
    chart = window.training.chart
    qtbot.waitUntil(lambda: chart.fidelity.n >= 1, timeout=5_000)  # the step-0 evaluation is on the chart
    assert chart.steps == PLANNED and chart.device == resolve("auto", panel.probe.devices)
    panel.stop.click()
    assert not panel.stop.isEnabled() and "Stopping" in panel.stop.text()
    qtbot.waitUntil(lambda: len(window.session.variants) == 2 or not window.job.running, timeout=LOAD_TIMEOUT_MS)
    assert len(window.session.variants) == 2, window.status_text.text()
    (recovery,) = recovery_reports(window.session.get("v1").report)
    assert recovery["stopped"] == "stopped by the user (best weights kept)"
    assert recovery["steps"] < PLANNED and recovery["fidelity_curve"][-1]["step"] < PLANNED
    assert recovery["fidelity_best"] == max(point["fidelity"] for point in recovery["fidelity_curve"])
    # the table follows the session on the next turn of the event loop (it failed once when asserted at once)
    qtbot.waitUntil(lambda: window.variants_panel.table.rowCount() == 2, timeout=10_000)
    qtbot.waitUntil(lambda: "stopped by the user" in chart.numbers.text(), timeout=5_000)
    assert chart.best is not None and chart.fidelity.x[-1] < PLANNED
    assert panel.job_row.isHidden()


@pytest.mark.slow
def test_cancel_during_training_publishes_nothing(qtbot, window):
    before = _open(qtbot, window)
    panel = _start_training(qtbot, window)
    panel.cancel.click()
    qtbot.waitUntil(lambda: "Cancelled" in window.status_text.text(), timeout=30_000)
    assert len(window.session.variants) == 1 and window.variants_panel.table.rowCount() == 1
    assert set(window.session.folder.glob("*")) == before  # nothing published, no staging left
    assert "Cancelled: nothing was kept." in window.training.chart.numbers.text()
