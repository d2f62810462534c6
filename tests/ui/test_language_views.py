"""Language models in the real window, offscreen, real weights: prompt, stream, A/B, Stop, embeddings.

One window serves the whole module so SmolLM loads once (≈ 15 s on two cores); each test opens the
model it needs only when the window does not already show it, so any test also runs alone.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from studio.model import Task
from ui.main_window import MainWindow
from ui.similarity_view import DEFAULT_SENTENCES

LOAD_TIMEOUT_MS = 180_000
GENERATE_TIMEOUT_MS = 120_000
STOP_WITHIN_S = 2.0
LM = "zoo:smollm2-135m"
ENCODER = "zoo:minilm-l6"


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    settings = QSettings(str(tmp_path_factory.mktemp("language") / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.show()
    window.finish_startup()
    yield window
    window.close()


def show_model(qtbot, window: MainWindow, spec: str) -> None:
    if window.session is None or window.session.spec != spec:
        qtbot.waitUntil(lambda: window.job is None or not window.job.running, timeout=LOAD_TIMEOUT_MS)
        assert window.open_model(spec)
        qtbot.waitUntil(lambda: window.session is not None and window.session.spec == spec, timeout=LOAD_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.job.running, timeout=LOAD_TIMEOUT_MS)
    # The Optimize tab checks every plugin against the model in the background (tracing takes seconds):
    # wait for its answer, so it does not share the cores with a timed generation.
    qtbot.waitUntil(lambda: bool(window.optimize_panel.reasons), timeout=LOAD_TIMEOUT_MS)


def generate(qtbot, view, prompt: str, max_new_tokens: int) -> None:
    view.prompt.setPlainText(prompt)
    view.max_tokens.setValue(max_new_tokens)
    qtbot.mouseClick(view.generate_button, Qt.MouseButton.LeftButton)
    assert view.busy
    qtbot.waitUntil(lambda: not view.busy, timeout=GENERATE_TIMEOUT_MS)


def test_a_language_model_opens_in_the_prompt_view_and_streams_a_measured_generation(qtbot, window):
    show_model(qtbot, window, LM)
    view = window.language_views[Task.GENERATE]
    assert window.central.currentWidget() is view and window.chart_stack.currentWidget() is view.charts
    assert window.preview is None and not window.source_combo.isEnabled() and not window.play_action.isEnabled()
    keys = [v.key for v in window.session.variants]
    assert [view.a_combo.itemData(i) for i in range(view.a_combo.count())] == keys
    assert view.a_combo.currentData() == "base"
    pane = view.panes[0]
    seen: list[str] = []
    pane.text.textChanged.connect(lambda: seen.append(pane.text.toPlainText()))
    generate(qtbot, view, "What is the capital of France?", 8)
    assert len(view.results) == 1, pane.caption.text()
    result = view.results[0]
    text = pane.text.toPlainText()
    assert text.strip() and text == result.text
    assert any(0 < len(partial) < len(text) for partial in seen)  # drawn while it streamed, not only at the end
    assert 0 < len(result.new_tokens) <= 8 and result.ttft_ms > 0 and result.decode_tokens_per_s > 0
    caption = pane.caption.text()
    assert f"TTFT {result.ttft_ms:.1f} ms" in caption and f"{result.decode_tokens_per_s:.1f} tokens/s" in caption
    assert "PyTorch" in caption and pane.caption.toolTip() == result.method
    assert [r["ttft_ms"] for r in view.charts.records] == [result.ttft_ms]
    ttft_x, ttft_y = view.charts.curves["A", "base"][0].getData()
    tps_x, tps_y = view.charts.curves["A", "base"][1].getData()
    assert list(ttft_x) == list(tps_x) == [1]  # run 1
    assert list(ttft_y) == [result.ttft_ms] and list(tps_y) == [result.decode_tokens_per_s]
    qtbot.waitUntil(lambda: len(view.charts.memory) >= 2, timeout=5_000)  # RSS sampled while shown
    assert all(mb > 0 for _, mb in view.charts.memory)
    assert view.generate_button.isEnabled() and not view.stop_button.isEnabled()


def test_ab_runs_both_sides_on_the_same_prompt(qtbot, window):
    show_model(qtbot, window, LM)
    view = window.language_views[Task.GENERATE]
    view.choose(a="base", b="base")  # the lead's LM variants may or may not exist: base vs base always does
    assert view.ab_box.isChecked() and view.panes[1].isVisible()
    before = len(view.results)
    generate(qtbot, view, "Name three colours.", 8)
    assert len(view.results) == before + 2
    a, b = view.results[-2:]
    texts = [pane.text.toPlainText() for pane in view.panes]
    assert texts == [a.text, b.text] and texts[0].strip()
    assert a.text == b.text  # greedy decoding of one model on one prompt: the same tokens both times
    for pane, result in zip(view.panes, (a, b), strict=True):
        assert f"TTFT {result.ttft_ms:.1f} ms" in pane.caption.text()
    run = view.charts.records[-1]["run"]
    assert [(r["run"], r["side"]) for r in view.charts.records[-2:]] == [(run, "A"), (run, "B")]
    b_x, b_y = view.charts.curves["B", "base"][0].getData()  # B is its own series, even of the same variant
    assert list(b_x) == [run] and list(b_y) == [b.ttft_ms]
    view.ab_box.setChecked(False)
    assert not view.panes[1].isVisible()


def test_stop_aborts_a_long_generation_and_the_view_stays_usable(qtbot, window):
    show_model(qtbot, window, LM)
    view = window.language_views[Task.GENERATE]
    view.ab_box.setChecked(False)
    before = len(view.results)
    view.prompt.setPlainText("Write a long story about a lighthouse keeper and the sea.")
    view.max_tokens.setValue(200)
    qtbot.mouseClick(view.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(view.panes[0].text.toPlainText()) > 0, timeout=GENERATE_TIMEOUT_MS)
    assert view.stop_button.isEnabled()
    started = time.monotonic()
    qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy, timeout=10_000)
    assert time.monotonic() - started < STOP_WITHIN_S
    assert "stopped after" in view.panes[0].caption.text() and len(view.results) == before  # nothing measured
    assert view.generate_button.isEnabled() and "stopped" in window.status_text.text().lower()
    generate(qtbot, view, "Say hello.", 4)
    assert len(view.results) == before + 1 and view.panes[0].text.toPlainText().strip()


def test_a_failing_generation_shows_one_line_and_keeps_the_window(qtbot, window):
    show_model(qtbot, window, LM)
    view = window.language_views[Task.GENERATE]
    before = len(view.results)
    generate(qtbot, view, "Hello", view.max_tokens.maximum())  # the prompt plus the whole context: too long
    qtbot.waitUntil(lambda: "Generation failed" in window.status_text.text(), timeout=10_000)
    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "job_error" and w.isVisible()]
    assert boxes and "context" in boxes[-1].text() and "\n" not in boxes[-1].text()
    for box in boxes:
        box.close()
    assert len(view.results) == before and view.generate_button.isEnabled()


def test_an_embedding_model_shows_a_similarity_matrix(qtbot, window):
    show_model(qtbot, window, ENCODER)
    view = window.language_views[Task.EMBED]
    assert window.central.currentWidget() is view and window.chart_stack.currentWidget() is window.embed_charts_note
    assert [view.sentences.toPlainText().splitlines()] == [list(DEFAULT_SENTENCES)]
    qtbot.mouseClick(view.embed_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy, timeout=GENERATE_TIMEOUT_MS)
    assert len(view.embeddings) == 1, window.status_text.text()
    matrix = view.embeddings[0].matrix
    assert matrix.shape == (5, 5) and np.allclose(np.diag(matrix), 1.0, atol=1e-3)
    # Sentences 0/1 (guitar) and 2/3 (stock market) are paraphrases; across the pairs they are unrelated.
    assert matrix[0, 1] > matrix[0, 2] + 0.2 and matrix[2, 3] > matrix[1, 3] + 0.2
    table = view.tables[0]
    assert table.rowCount() == 5 and table.item(0, 1).text() == f"{matrix[0, 1]:.3f}"
    assert f"{view.embeddings[0].encode_ms:.1f} ms" in view.summary.text()
    view.choose(a="base", b="base")
    qtbot.mouseClick(view.embed_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy, timeout=GENERATE_TIMEOUT_MS)
    assert len(view.embeddings) == 2 and view.tables[1].isVisible()
    assert "Largest |A − B|" in view.summary.text()
    assert np.abs(view.embeddings[0].matrix - view.embeddings[1].matrix).max() < 1e-4  # same model twice


def test_a_vision_model_brings_the_frame_preview_back(qtbot, window):
    show_model(qtbot, window, ENCODER)
    show_model(qtbot, window, "zoo:efficientnet-lite0")
    qtbot.waitUntil(lambda: window.preview is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.central.currentWidget() is window.splitter and window.chart_stack.currentWidget() is window.charts
    assert window.source_combo.isEnabled() and window.ab_box.isEnabled() and window.play_action.isEnabled()
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 2, timeout=60_000)
