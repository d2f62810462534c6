"""Each preview side picks its runtime and device; the caption and the charts say what ran; a refusal is one
status line and the running lane stays."""

from __future__ import annotations

from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait


def _pick(combo, data: str) -> None:
    """What a user's click does: the item becomes current, then ``activated`` (programmatic changes do not emit it)."""
    index = combo.findData(data)
    assert index >= 0, [combo.itemData(i) for i in range(combo.count())]
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_side_a_runs_on_torch_and_a_missing_device_keeps_the_lane(qtbot, window):
    open_and_wait(qtbot, window, "zoo:yolov8s-fall")
    pane = window.central.pane
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 2, timeout=60_000)
    assert "onnxruntime · CPUExecutionProvider" in window.views[0].caption
    assert window.state.lane_choices[0] == ("auto", "cpu") and not pane.runtime_combos[1].isEnabled()
    qtbot.waitUntil(lambda: pane.device_table is not None, timeout=60_000)  # listed in a side job

    _pick(pane.runtime_combos[0], "torch")
    qtbot.waitUntil(lambda: window.state.lane_choices[0] == ("torch", "cpu"), timeout=LOAD_TIMEOUT_MS)
    torch_lane = window.preview.lanes[0]
    assert torch_lane.runtime_info["runtime"].startswith("torch ") and torch_lane.runtime_info["device"] == "cpu"
    assert pane.device_combos[0].count() > 0 and pane.device_combos[0].itemData(0) == "cpu"
    qtbot.waitUntil(lambda: "torch · cpu" in window.views[0].caption, timeout=60_000)
    qtbot.waitUntil(lambda: "torch · cpu" in window.charts.numbers.text(), timeout=30_000)

    # No machine has a tenth CUDA GPU for torch: refused in one status line, the torch lane keeps running.
    pane.choose_lane(0, "torch", "cuda:9")
    qtbot.waitUntil(lambda: "Side A: device 'cuda:9' is not available to torch" in window.status_text.text(),
                    timeout=60_000)
    assert "(still on torch · cpu)" in window.status_text.text()
    assert window.preview.lanes[0] is torch_lane and window.state.lane_choices[0] == ("torch", "cpu")
    assert pane.runtime_combos[0].currentData() == "torch" and pane.device_combos[0].currentData() == "cpu"

    # LiteRT runs .tflite files only: this .pt is refused the same way.
    _pick(pane.runtime_combos[0], "litert")
    qtbot.waitUntil(lambda: "LiteRT runs TFLite files" in window.status_text.text(), timeout=60_000)
    assert window.preview.lanes[0] is torch_lane and pane.runtime_combos[0].currentData() == "torch"
    frames = torch_lane.frames
    qtbot.waitUntil(lambda: torch_lane.frames > frames, timeout=30_000)  # still running
