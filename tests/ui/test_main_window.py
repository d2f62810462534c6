"""The real window, offscreen: drop a model, run a plugin, preview, A/B, export, bad files, persistence."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from studio.zoo import entry
from tests.ui.window_helpers import LOAD_TIMEOUT_MS, drop, open_and_wait
from ui.main_window import MainWindow


def test_dropped_model_fills_the_model_panel_and_the_preview_runs(qtbot, window):
    weights = entry("yolov8s-fall").path()
    drop(window, weights)
    qtbot.waitUntil(lambda: window.session is not None and window.preview is not None, timeout=LOAD_TIMEOUT_MS)
    panel = window.model_panel
    assert panel.values["task"].text() == "detect" and "Normal" in panel.values["labels"].text()
    assert panel.values["params"].text() == f"{window.session.baseline.params:,}"
    qtbot.waitUntil(lambda: panel.layers.rowCount() > 50, timeout=60_000)  # the layer table, counted off-thread
    # Preview on the bundled video: frames drawn, rings and charts filling.
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 5, timeout=60_000)
    lane = window.preview.lanes[0]
    qtbot.waitUntil(lambda: lane.timings.written >= 5 and window.charts.refreshes >= 3, timeout=30_000)
    assert "fps" in window.views[0].caption and "total p50" in window.charts.numbers.text()
    assert len(window.preview.memory) >= 1
    assert window.settings.value("recent_models")[0] == str(weights)


def test_a_bad_file_shows_a_message_and_keeps_the_model(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a checkpoint")
    drop(window, bad)
    qtbot.waitUntil(lambda: "Cannot open the model" in window.status_text.text(), timeout=60_000)
    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "job_error" and w.isVisible()]
    assert boxes and "broken.pt" in boxes[0].text()
    assert window.session.spec == "zoo:efficientnet-lite0" and window.preview is not None  # still usable
    frames = window.views[0].frames_shown
    qtbot.waitUntil(lambda: window.views[0].frames_shown > frames, timeout=30_000)  # still previewing


def test_a_plugin_run_adds_a_variant_row_and_ab_shows_both(qtbot, window):
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    box = window.optimize_panel.boxes["quantize.fp16"]
    qtbot.waitUntil(box.run.isEnabled, timeout=60_000)  # check() answered in the background
    keep = box.form.widgets.get("keep_io_fp32") or next(iter(box.form.widgets.values()))
    assert keep is not None
    table = window.variants_panel.table
    assert table.rowCount() == 1
    box.run.click()
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=LOAD_TIMEOUT_MS)
    v1 = window.session.get("v1")
    assert v1.recipe.steps[0].plugin == "quantize.fp16"
    assert window.variants_panel.rows[1]["size_mb"] < 0.6 * window.variants_panel.rows[0]["size_mb"]
    window.variants_panel.preview_b.emit("v1")
    qtbot.waitUntil(lambda: (window.preview is not None and len(window.preview.lanes) == 2)
                    or "preparing" in window.status_text.text(), timeout=60_000)
    assert len(window.preview.lanes) == 2, window.status_text.text()
    qtbot.waitUntil(lambda: window.views[1].frames_shown >= 3, timeout=60_000)
    assert window.views[1].isVisible() and "disagreements" in window.views[1].caption


def test_export_from_the_dialog_writes_a_verified_file(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    dialog = window.open_export_dialog()
    for name, box in dialog.format_boxes.items():
        box.setChecked(name == "onnx")
    dialog.folder.setText(str(tmp_path / "exports"))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.last_report is not None or "failed" in dialog.status.text(), timeout=180_000)
    assert dialog.last_report is not None, dialog.status.text()
    assert (tmp_path / "exports" / "efficientnet-lite0.onnx").is_file()
    assert "top1_agreement" in dialog.report.toPlainText()
    assert window.export_again_action.isEnabled()  # the toolbar repeats the choice in one click
    dialog.close()


def test_layout_and_recent_models_persist(qtbot, settings):
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.state.remember_recent("zoo:efficientnet-lite0")
    first.show()
    first.resize(first.minimumSizeHint().width() + 10, 560)  # the offscreen screen is 800×600
    saved = first.size()
    first.close()
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    again.show()
    assert again.state.recent == ["zoo:efficientnet-lite0"]
    assert [a.text() for a in again.recent_menu.actions()] == ["zoo:efficientnet-lite0"]
    assert again.size() == saved and settings.value("window_state") is not None


def test_the_window_module_does_not_import_heavy_libraries():
    code = ("import sys, ui.main_window; "
            "print(sorted(m for m in ('torch', 'ultralytics', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_cancel_stops_a_plugin_run_and_keeps_nothing(qtbot, window):
    open_and_wait(qtbot, window, "zoo:efficientnet-lite0")
    box = window.optimize_panel.boxes["prune.channels"]
    qtbot.waitUntil(box.run.isEnabled, timeout=60_000)
    box.form.set_values({"recovery_steps": 2000})  # long enough to be cancelled mid-way
    before = set(window.session.folder.glob("*"))
    box.run.click()
    qtbot.waitUntil(lambda: window.job is not None and window.job_progress.value() > 0, timeout=120_000)
    assert window.cancel_button.isVisible() and not window.optimize_panel.progress.isHidden()
    clicked = time.monotonic()
    window.cancel_button.click()
    qtbot.waitUntil(lambda: "Cancelled" in window.status_text.text(), timeout=120_000)
    # The run is a child process: Cancel kills it instead of waiting for the fine-tune to look up.
    assert time.monotonic() - clicked < 2.0
    assert window.variants_panel.table.rowCount() == 1 and len(window.session.variants) == 1
    assert set(window.session.folder.glob("*")) == before  # nothing published, no staging left
    qtbot.waitUntil(lambda: window.preview is not None, timeout=60_000)  # the paused preview resumes


class _Payload:
    """Unpickling this runs a shell command that creates the canary file."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.canary}",))


def _trust_box(window: MainWindow) -> QMessageBox | None:
    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "trust_question" and w.isVisible()]
    return boxes[-1] if boxes else None


def test_a_pickle_needing_trust_asks_and_runs_nothing_until_trusted(qtbot, window, tmp_path):
    import torch

    from studio.trust import is_trusted

    canary = tmp_path / "canary"
    evil = tmp_path / "stranger.pt"
    torch.save({"model": _Payload(canary)}, evil)
    drop(window, evil)
    qtbot.waitUntil(lambda: _trust_box(window) is not None, timeout=60_000)
    box = _trust_box(window)
    assert "stranger.pt" in box.text() and box.defaultButton() is box.button(QMessageBox.StandardButton.No)
    assert not canary.exists() and not is_trusted(evil)
    box.button(QMessageBox.StandardButton.No).click()
    assert not canary.exists() and not is_trusted(evil) and window.session is None
    # Asked again; this time trusted: the decision is stored by hash and the file's code runs.
    qtbot.waitUntil(lambda: not window.job.running, timeout=10_000)
    drop(window, evil)
    qtbot.waitUntil(lambda: _trust_box(window) is not None, timeout=60_000)
    box = _trust_box(window)
    next(b for b in box.buttons() if b.text() == "Trust and open").click()
    qtbot.waitUntil(canary.exists, timeout=60_000)
    assert is_trusted(evil)
    # It is not a model after all: an error, and the window stays usable.
    qtbot.waitUntil(lambda: "Cannot open the model" in window.status_text.text(), timeout=60_000)
