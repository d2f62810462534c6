"""Language models in the real window, offscreen, real weights: prompt, stream, A/B, Stop, embeddings,
and both zoo LMs compressed from the Optimize tab, previewed against the base model and exported.

One window serves the whole module so SmolLM loads once (≈ 15 s on two cores); each test opens the
model it needs only when the window does not already show it, so any test also runs alone. The tests
are ordered so each model opens once: SmolLM's, then MiniLM's, then the vision model's.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from studio.model import Task
from ui.export_dialog import ExportChoice, ExportDialog
from ui.main_window import MainWindow
from ui.similarity_view import DEFAULT_SENTENCES

LOAD_TIMEOUT_MS = 180_000
GENERATE_TIMEOUT_MS = 120_000
DERIVE_TIMEOUT_MS = 300_000  # build + quick measurement: SmolLM's takes 20–60 s on two busy cores
EXPORT_TIMEOUT_MS = 300_000  # a child process: loads the model, builds (INT4 decoder ≈ 20 s), re-opens, checks
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


def derive(qtbot, window: MainWindow, plugin_id: str, values: dict) -> dict:
    """Run ``plugin_id`` from the Optimize tab as a user does (its page, its form, Run); the new row."""
    window.tabs.setCurrentWidget(window.optimize_panel)
    box = window.optimize_panel.boxes[plugin_id]
    toolbox = window.optimize_panel.toolbox
    toolbox.setCurrentIndex(next(i for i in range(toolbox.count()) if toolbox.widget(i).isAncestorOf(box)))
    qtbot.waitUntil(box.run.isEnabled, timeout=60_000)  # check() answered for the selected variant
    box.form.set_values(values)
    table = window.variants_panel.table
    before = table.rowCount()
    assert box.run.isVisible()
    qtbot.mouseClick(box.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: table.rowCount() == before + 1 or f"{plugin_id} failed" in window.status_text.text(),
                    timeout=DERIVE_TIMEOUT_MS)
    assert table.rowCount() == before + 1, window.status_text.text()
    qtbot.waitUntil(window.job_progress.isHidden, timeout=10_000)  # the job's end reached the window
    qtbot.waitUntil(lambda: bool(window.optimize_panel.reasons), timeout=LOAD_TIMEOUT_MS)  # the re-check is done
    row = window.variants_panel.rows[-1]
    assert window.variants_panel.current_key() == row["key"] and f"{row['key']} ready" in window.status_text.text()
    return row


def open_export(window: MainWindow, key: str) -> ExportDialog:
    window.variants_panel.select(key)
    assert window.variants_panel.current_key() == key
    dialog = window.open_export_dialog()
    assert dialog.windowTitle().startswith(f"Export — {key} (")
    return dialog


def export(qtbot, dialog: ExportDialog, formats: list[str], precision: str, folder) -> dict:
    for name, box in dialog.format_boxes.items():
        box.setChecked(name in formats)
    dialog.precision.setCurrentText(precision)
    assert dialog.choice().formats == formats and dialog.choice().precision == precision
    dialog.folder.setText(str(folder))
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.last_report is not None or "failed" in dialog.status.text(),
                    timeout=EXPORT_TIMEOUT_MS)
    assert dialog.last_report is not None, dialog.status.text()
    return dialog.last_report


def offered(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


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


def test_early_exit_from_the_optimize_tab_is_measured_and_ab_generates_against_the_base(qtbot, window):
    show_model(qtbot, window, LM)
    window.variants_panel.select("base")
    row = derive(qtbot, window, "early_exit.lm_decoding", {"threshold": 0.5, "exit_layers": "15,20"})
    assert row["key"] == "v1" and row["fidelity_metric"] == "token agreement" and 0.0 <= row["fidelity"] <= 1.0
    assert row["speedup"] > 0 and row["p50_ms"] > 0  # measured beside the base model, not copied from it
    report = window.session.get("v1").report
    assert report["variant"]["layers_used"] < 30  # SmolLM2-135M has 30 decoder layers
    view = window.language_views[Task.GENERATE]
    assert [view.b_combo.itemData(i) for i in range(view.b_combo.count())] == ["base", "v1"]
    view.choose(a="base", b="v1")
    qtbot.waitUntil(view.generate_button.isEnabled, timeout=10_000)  # generation waited while v1 was measured
    before = len(view.results)
    generate(qtbot, view, "What is the capital of France?", 8)
    assert len(view.results) == before + 2, view.panes[1].caption.text()
    base, early = view.results[-2:]
    assert all(pane.text.toPlainText().strip() for pane in view.panes)
    assert base.layers_used is None and early.layers_used is not None and early.layers_used < 30
    caption = view.panes[1].caption.text()
    used = re.search(r"([0-9.]+) layers per token", caption)
    assert used and float(used.group(1)) == round(early.layers_used, 1) and float(used.group(1)) < 30, caption
    assert "layers per token" not in view.panes[0].caption.text()
    view.ab_box.setChecked(False)


def test_a_causal_lm_exports_to_an_int4_onnx_folder_from_the_dialog(qtbot, window, tmp_path):
    show_model(qtbot, window, LM)
    dialog = open_export(window, "base")
    assert offered(dialog.precision) == ["fp32", "int8", "int4"]  # no fp16 for a language model on CPU
    openvino = dialog.format_boxes["openvino"]
    assert not openvino.isEnabled() and "language models" in openvino.toolTip()
    dialog.precision.setCurrentText("int4")
    assert not dialog.format_boxes["tflite"].isEnabled() and not dialog.format_boxes["coreml"].isEnabled()
    assert "fp32 only" in dialog.format_boxes["tflite"].toolTip()
    report = export(qtbot, dialog, ["onnx"], "int4", tmp_path / "exports")
    folder = tmp_path / "exports" / "smollm2-135m-onnx"
    assert (folder / "genai_config.json").is_file() and (folder / "model.onnx").is_file()
    verified = report["exports"][0]["verified"]
    assert verified["weights"] == "int4" and verified["kv_cache_inputs"] > 0
    text = dialog.report.toPlainText()
    assert f"kv_cache_inputs {verified['kv_cache_inputs']}" in text and "argmax_agreement_with_pytorch_fp32" in text
    assert "onnx verified with onnxruntime" in text  # how it was checked: plain onnxruntime, not -genai
    assert window.state.last_export.precision == "int4" and window.export_again_action.isEnabled()
    dialog.close()


def test_an_embedding_model_shows_a_similarity_matrix(qtbot, window):
    show_model(qtbot, window, ENCODER)
    view = window.language_views[Task.EMBED]
    assert window.central.currentWidget() is view and window.chart_stack.currentWidget() is view.charts
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


def int8_encoder(qtbot, window: MainWindow) -> str:
    """The key of MiniLM's INT8 variant: the one the test before made, or a new one when run alone."""
    made = [v.key for v in window.session.variants if v.handle.metadata.get("lm_runtime") == "ort_encoder"
            and v.handle.metadata.get("precision") == "int8"]
    if made:
        return made[0]
    window.variants_panel.select("base")
    return derive(qtbot, window, "quantize.lm_weights", {"precision": "int8"})["key"]


def test_an_int8_encoder_from_the_optimize_tab_keeps_the_similarities(qtbot, window):
    show_model(qtbot, window, ENCODER)
    window.variants_panel.select("base")
    row = derive(qtbot, window, "quantize.lm_weights", {"precision": "int8"})
    assert row["key"] == "v1" and row["fidelity_metric"] == "mean cosine" and row["fidelity"] >= 0.97
    assert row["speedup"] > 0 and row["p50_ms"] > 0
    cell = window.variants_panel.table.item(1, 6).text()
    assert cell == f"{row['fidelity']:.3f} mean cosine"
    view = window.language_views[Task.EMBED]
    for combo in (view.a_combo, view.b_combo):
        assert [combo.itemData(i) for i in range(combo.count())] == ["base", "v1"]
    assert view.b_combo.currentData() == "v1"  # the newest variant is offered as B
    view.choose(a="base", b="v1")
    qtbot.waitUntil(view.embed_button.isEnabled, timeout=10_000)  # embedding waited while v1 was measured
    qtbot.mouseClick(view.embed_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy, timeout=GENERATE_TIMEOUT_MS)
    assert len(view.embeddings) == 2, window.status_text.text()
    base, int8 = view.embeddings
    assert (base.key, int8.key) == ("base", "v1") and "int8" in int8.runtime and "PyTorch" in base.runtime
    gap = float(np.abs(base.matrix - int8.matrix).max())
    assert 0.0 < gap < 0.05  # close to the base model's similarities, but computed by the INT8 graph
    assert f"Largest |A − B| over all sentence pairs: {gap:.4f}" in view.summary.text()
    assert view.titles[1].text() == f"B · {int8.label}" and int8.label.startswith("v1")
    table = view.tables[1]
    assert [[table.item(r, c).text() for c in range(5)] for r in range(5)] == \
        [[f"{int8.matrix[r, c]:.3f}" for c in range(5)] for r in range(5)]


def test_an_encoder_exports_to_a_verified_int8_onnx_folder_from_the_dialog(qtbot, window, tmp_path):
    show_model(qtbot, window, ENCODER)
    dialog = open_export(window, "base")
    assert offered(dialog.precision) == ["fp32", "int8", "int4"] and not dialog.format_boxes["openvino"].isEnabled()
    dialog.close()
    dialog = open_export(window, int8_encoder(qtbot, window))  # the variant: exported through its recipe
    assert offered(dialog.precision) == ["int8"]  # its weights are already INT8: exported as they are
    report = export(qtbot, dialog, ["onnx"], "int8", tmp_path / "exports")
    assert report["recipe"]["steps"][0]["plugin"] == "quantize.lm_weights"
    folder = tmp_path / "exports" / "minilm-l6-onnx"
    assert (folder / "model.onnx").is_file() and (folder / "deploy_studio.json").is_file()
    item = report["exports"][0]
    assert item["precision_of_weights"] == "int8" and item["verified"]["min_cosine_vs_pytorch"] >= 0.97
    text = dialog.report.toPlainText()
    assert f"min_cosine_vs_pytorch {item['verified']['min_cosine_vs_pytorch']}" in text
    assert "onnx verified with onnxruntime" in text
    dialog.close()


def test_a_vision_model_brings_the_frame_preview_back(qtbot, window, tmp_path):
    show_model(qtbot, window, ENCODER)
    show_model(qtbot, window, "zoo:efficientnet-lite0")
    qtbot.waitUntil(lambda: window.preview is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.central.currentWidget() is window.splitter and window.chart_stack.currentWidget() is window.charts
    assert window.source_combo.isEnabled() and window.ab_box.isEnabled() and window.play_action.isEnabled()
    qtbot.waitUntil(lambda: window.views[0].frames_shown >= 2, timeout=60_000)
    # The export dialog is the vision one again: fp16 offered, every format available.
    dialog = window.open_export_dialog()
    assert offered(dialog.precision) == ["fp32", "fp16", "int8"]
    assert all(box.isEnabled() for box in dialog.format_boxes.values())
    dialog.close()
    # "Export again" with a language model's choice (INT4) does not run it on this model: the dialog opens.
    window.state.set_last_export(ExportChoice(["onnx"], "int4", str(tmp_path)))
    dialogs = len(window.findChildren(ExportDialog))
    window.export_again()
    assert window.job is None or not window.job.running
    assert len(window.findChildren(ExportDialog)) == dialogs + 1 and "does not apply" in window.status_text.text()
    for dialog in window.findChildren(ExportDialog):
        dialog.close()
