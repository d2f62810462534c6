"""The window opens ``.tflite`` files by path and previews them in LiteRT: the studio's own export of the real
detector, and a foreign MediaPipe model (a tensor model whose outputs are not drawn)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.engine.cli_helpers import run_json
from tests.ui.window_helpers import open_and_wait


@pytest.fixture(scope="module")
def own_tflite(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tflite_ui")
    run_json("export", "zoo:yolov8s-fall", "--to", "tflite", "-o", out, timeout=900)
    return out / "yolov8s-fall.tflite"


def test_the_window_opens_the_studios_own_tflite_and_previews_it(qtbot, window, own_tflite):
    open_and_wait(qtbot, window, str(own_tflite))
    panel = window.model_panel
    assert panel.values["task"].text() == "detect" and "Normal" in panel.values["labels"].text()
    assert window.session.baseline.format == "tflite"
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 1, timeout=120_000)
    assert window.preview.lanes[0].predictor.backend.name == "litert"


def test_the_window_previews_a_foreign_tensor_model_in_litert(qtbot, window):
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mediapipe (installed --no-deps for its wheel's TFLite models) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "modules/face_detection/face_detection_short_range.tflite"
    open_and_wait(qtbot, window, str(path))
    assert window.session.baseline.task == "tensor"
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 1, timeout=120_000)
    assert window.preview.lanes[0].predictor.backend.name == "litert"
