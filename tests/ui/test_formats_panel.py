"""The Formats tab: a real format benchmark's report in the table and on the Pareto plot; the real window runs one."""

from __future__ import annotations

import pytest

from studio.format_bench import FormatBenchSettings, run_format_bench
from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait
from ui.formats_panel import COLUMNS, FIDELITY_COLUMN, STATUS_COLUMN, FormatsPanel

BENCH_TIMEOUT_MS = 600_000  # an export, a child process that imports torch, timing and a memory probe


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """ONNX runs here; CoreML is exported but cannot run on Linux."""
    out = tmp_path_factory.mktemp("format-bench")
    return run_format_bench("zoo:efficientnet-lite0", FormatBenchSettings(
        formats=("onnx", "coreml"), precisions=("fp32",), out_dir=out, runs=3, fidelity_frames=3))


def test_the_report_fills_rows_markers_tooltips_and_preview(qtbot, report):
    panel = FormatsPanel()
    qtbot.addWidget(panel)
    panel.show_report(report)
    cells = report["cells"]
    assert panel.table.rowCount() == len(cells) == 2
    assert panel.table.columnCount() == len(COLUMNS)
    onnx, coreml = (next(i for i, c in enumerate(cells) if c["format"] == name) for name in ("onnx", "coreml"))
    assert cells[onnx]["status"] == "ok" and cells[coreml]["status"] != "ok"
    assert [panel.table.item(onnx, c).text() for c in (0, 1)] == ["onnx", "fp32"]
    assert panel.table.item(onnx, COLUMNS.index("p50 ms")).text() == f"{cells[onnx]['latency_ms']['p50']:.1f}"
    # One marker per cell that ran, at its p50 and fidelity, labelled as the preview names it.
    markers = panel.markers()
    assert [m.data() for m in markers] == [onnx]
    position = markers[0].pos()
    assert (position.x(), position.y()) == pytest.approx((cells[onnx]["latency_ms"]["p50"],
                                                          cells[onnx]["fidelity"]["value"]))
    assert [item.textItem.toPlainText() for item in panel.labels] == ["onnx fp32"]
    # The cell that did not run says where it stopped and why, in its status tooltip.
    status = panel.table.item(coreml, STATUS_COLUMN)
    assert status.text().startswith(cells[coreml]["status"])
    assert cells[coreml]["stage"] in status.toolTip() and cells[coreml]["message"][:40] in status.toolTip()
    interval = cells[onnx]["fidelity"]["interval"]
    assert f"{interval['low']:.3f}–{interval['high']:.3f}" in panel.table.item(onnx, FIDELITY_COLUMN).toolTip()
    assert "thread" in panel.caption.text() and report["machine"]["cpu"] in panel.caption.text()
    # The plot and the table select together; only a row that ran can be previewed.
    panel.table.selectRow(coreml)
    assert not panel.preview.isEnabled()
    panel.scatter.sigClicked.emit(panel.scatter, markers, None)
    assert panel.current_row() == onnx and panel.preview.isEnabled()
    with qtbot.waitSignal(panel.preview_requested, timeout=1000) as emitted:
        panel.preview.click()
    assert emitted.args == [cells[onnx]["path"], "onnx fp32"]


def test_the_window_measures_formats_and_cancel_keeps_the_table(qtbot, window):
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    tabs = window.tabs
    assert [tabs.tabText(i) for i in range(tabs.count())][-2:] == ["Formats", "Search"]
    panel = window.variant_tabs.formats_panel
    assert tabs.widget(tabs.count() - 2) is panel and panel.measure.isEnabled()
    for name, box in panel.format_boxes.items():
        box.setChecked(name == "onnx")
    for name, box in panel.precision_boxes.items():
        box.setChecked(name == "fp32")
    panel.runs.setValue(3)
    panel.measure.click()
    assert not panel.measure.isEnabled() and panel.cancel.isEnabled()
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=BENCH_TIMEOUT_MS)
    assert panel.report is not None, panel.status.text()
    assert panel.table.rowCount() == 1 and panel.table.item(0, STATUS_COLUMN).text() == "ok"
    assert len(panel.markers()) == 1 and "3 frames" in panel.caption.text()
    first = panel.report
    # "Preview this one": the file runs as side B beside the base model, in its own runtime, under its label.
    panel.table.selectRow(0)
    panel.preview.click()
    qtbot.waitUntil(lambda: window.state.lanes == ["base", "onnx fp32 file"] and window.state.preview is not None,
                    timeout=LOAD_TIMEOUT_MS)
    side_b = window.state.preview.lanes[1]
    assert side_b.predictor.backend.describe()["graph"] == first["cells"][0]["path"]
    assert window.central.pane.lane_title("onnx fp32 file") == "onnx fp32 file"
    qtbot.waitUntil(lambda: window.state.preview.latest() is not None, timeout=LOAD_TIMEOUT_MS)
    # A second run, cancelled while its child process exports again: the table stays as it was.
    panel.force.setChecked(True)
    panel.measure.click()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=LOAD_TIMEOUT_MS)
    panel.cancel.click()
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=60_000)
    assert "Cancelled" in panel.status.text()
    assert panel.report is first and panel.table.rowCount() == 1 and len(panel.markers()) == 1
    assert panel.measure.isEnabled()


def test_a_language_model_disables_the_controls_and_says_why(qtbot, minilm, effnet_handle):
    from studio.session import Session

    panel = FormatsPanel()
    qtbot.addWidget(panel)
    assert not panel.measure.isEnabled()  # no model yet
    panel.set_session(Session("zoo:minilm-l6", minilm))
    assert not panel.controls.isEnabled() and not panel.measure.isEnabled()
    assert "vision models only" in panel.target.text() and "vision models only" in panel.measure.toolTip()
    panel.set_session(Session("zoo:efficientnet-lite0", effnet_handle))
    assert panel.controls.isEnabled() and panel.measure.isEnabled() and panel.chosen() == (["onnx"], ["fp32"])
