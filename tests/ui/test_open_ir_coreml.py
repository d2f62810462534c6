"""The window opens an OpenVINO IR folder (the studio's own export) and previews frames in OpenVINO."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.window_helpers import open_and_wait


@pytest.fixture(scope="module")
def ir_folder(tmp_path_factory) -> Path:
    from studio.export import run_export

    report = run_export("zoo:yolov8s-fall", ["openvino"], tmp_path_factory.mktemp("ir"))
    return Path(report["exports"][0]["path"])


def test_the_window_opens_an_openvino_ir_and_previews_it(qtbot, window, ir_folder):
    open_and_wait(qtbot, window, str(ir_folder))
    baseline = window.session.baseline
    assert baseline.format == "openvino" and baseline.labels == ("Normal", "Fall")
    panel = window.model_panel
    assert panel.values["task"].text() == "detect" and "Normal" in panel.values["labels"].text()
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 3, timeout=120_000)
    backend = window.preview.lanes[0].predictor.backend
    assert backend.name == "openvino" and backend.describe()["device"] == "CPU"


def test_a_coreml_package_opens_for_inspection_and_says_why_it_does_not_preview(qtbot, window, tmp_path):
    from studio.export import run_export

    package = Path(run_export("zoo:efficientnet-lite0", ["coreml"], tmp_path)["exports"][0]["path"])
    assert window.open_model(str(package))
    qtbot.waitUntil(lambda: window.session is not None and window.session.spec == str(package), timeout=120_000)
    assert window.session.baseline.format == "coreml" and window.model_panel.values["task"].text() == "classify"
    assert window.state.lanes == [] and window.preview is None
    qtbot.waitUntil(lambda: "No preview" in window.status_text.text(), timeout=30_000)
    assert "macOS" in window.status_text.text()
