"""What export offers and refuses: precisions per task, formats per model, and where files may go."""

from __future__ import annotations

import os

import pytest

from studio import capabilities, export
from studio.atomic import publish
from studio.errors import StudioError, UnsupportedError
from studio.model import Task
from studio.plugin_api import LANGUAGE, VISION
from studio.recipe import Step
from tests.unit.handles import handle, language_model
from ui import export_dialog
from ui.export_dialog import ExportChoice, choice_fits, formats_for, precisions_for, verification_lines

DEAD_PID = 4_194_303  # the largest pid Linux hands out: no process of this test run has it


@pytest.mark.parametrize(("task", "precision", "plugins"), [
    (Task.DETECT, "int8", ["quantize.mixed_int8"]),  # a plain INT8 YOLO head finds nothing
    (Task.SEGMENT, "int8", ["quantize.mixed_int8"]),
    (Task.POSE, "int8", ["quantize.mixed_int8"]),
    (Task.CLASSIFY, "int8", ["quantize.static_int8"]),
    (Task.DETECT, "fp16", ["quantize.fp16"]),
    (Task.CLASSIFY, "fp32", []),
])
def test_each_precision_is_made_by_its_quantizer(task, precision, plugins):
    from studio.registry import default_registry

    steps = capabilities.precision_steps(handle(task=task), precision)
    current = {plugin: default_registry().get(plugin).settings_version for plugin in plugins}
    assert [step.plugin for step in steps] == plugins and all(s.settings_version == current[s.plugin] for s in steps)


@pytest.mark.parametrize(("precision", "model", "recipe", "steps"), [
    ("int8", language_model(), [], [Step("quantize.lm_weights", {"precision": "int8"}, 2)]),
    ("int4", language_model(), [], [Step("quantize.lm_weights", {"precision": "int4"}, 2)]),
    ("int4", language_model("genai", "int4"), [], []),  # already at that precision, reloaded from its folder
    ("int8", language_model(), [Step("quantize.lm_weights", {}, 2)], []),  # the recipe makes it (int8 default)
    ("int4", language_model(), [Step("quantize.lm_weights", {"precision": "int8"}, 2)],
     [Step("quantize.lm_weights", {"precision": "int4"}, 2)]),
    ("int8", handle(), [Step("quantize.static_int8", {}, 1)], []),
])
def test_a_precision_step_is_added_only_where_nothing_makes_it_yet(precision, model, recipe, steps):
    assert capabilities.precision_steps(model, precision, recipe=recipe) == steps


def test_exporters_are_found_by_format_and_unknown_ones_named():
    assert [e.suffix for e in capabilities.exporters_for(["onnx", "openvino", "tflite", "coreml"])] == \
        [".onnx", "_openvino", ".tflite", ".mlpackage"]
    with pytest.raises(UnsupportedError, match="no exporter for tensorrt, ncnn — available formats: coreml, onnx"):
        capabilities.exporters_for(["onnx", "tensorrt", "ncnn"])


def test_the_table_names_precisions_suffixes_and_refusals():
    onnx, openvino, tflite = capabilities.exporters_for(["onnx", "openvino", "tflite"])
    assert capabilities.precisions() == ("fp32", "fp16", "int8", "int4")
    assert capabilities.precisions(VISION) == ("fp32", "fp16", "int8")
    assert capabilities.precisions(LANGUAGE) == ("fp32", "int8", "int4")
    assert capabilities.suffix(onnx, VISION) == ".onnx" and capabilities.suffix(onnx, LANGUAGE) == "-onnx"
    assert capabilities.refusal(onnx, LANGUAGE, "int4") is None
    assert "ONNX only" in str(capabilities.refusal(tflite, LANGUAGE, "int8"))
    assert "OpenVINO IR export of language models is not available" in str(
        capabilities.refusal(openvino, LANGUAGE, "fp32"))
    assert "language models" in str(capabilities.precision_refusal(VISION, "int4"))
    assert "unknown precision 'int3'" in str(capabilities.precision_refusal(None, "int3"))
    assert capabilities.precision_refusal(None, "int4") is None


def test_nothing_is_written_beside_the_source_model_or_over_a_file_unasked(tmp_path):
    source = tmp_path / "models" / "net.onnx"
    model = handle("net", source_paths=(source,))
    onnx = capabilities.exporters_for(["onnx"])
    with pytest.raises(StudioError, match="refusing to write beside the source model"):
        export._check_destination(tmp_path / "models", model, onnx, force=True)
    out = tmp_path / "out"
    out.mkdir()
    export._check_destination(out, model, onnx, force=False)
    (out / "net.onnx").write_bytes(b"old")
    with pytest.raises(StudioError, match=r"net\.onnx already exist\(s\) — pass --force"):
        export._check_destination(out, model, onnx, force=False)
    export._check_destination(out, model, onnx, force=True)


def test_publishing_replaces_a_file_or_a_folder_whole(tmp_path):
    (tmp_path / "new.onnx").write_text("new")
    (tmp_path / "net.onnx").write_text("old")
    publish(tmp_path / "new.onnx", tmp_path / "net.onnx")
    assert (tmp_path / "net.onnx").read_text() == "new" and not (tmp_path / "new.onnx").exists()
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "a.bin").write_text("1")
    (tmp_path / "net_openvino").mkdir()
    (tmp_path / "net_openvino" / "stale.bin").write_text("0")
    publish(tmp_path / "staged", tmp_path / "net_openvino")
    assert sorted(p.name for p in (tmp_path / "net_openvino").iterdir()) == ["a.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx", "net_openvino"]  # nothing moved aside left


def test_only_staging_of_dead_exports_is_removed(tmp_path):
    for name in (f".export-{DEAD_PID}-abc", f".export-{os.getpid()}-def", ".export-x-ghi", "export-1-kept"):
        (tmp_path / name).mkdir()
    export._remove_stale_staging(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".export-{os.getpid()}-def", ".export-x-ghi",
                                                          "export-1-kept"]


def test_the_dialog_offers_vision_models_every_format_at_three_precisions():
    for model in (None, handle()):
        assert precisions_for(model) == ("fp32", "fp16", "int8")
        assert formats_for(model, "int8") == {}
    assert choice_fits(ExportChoice(["onnx", "openvino"], "fp16"), handle())
    assert not choice_fits(ExportChoice([], "fp32"), handle())
    assert not choice_fits(ExportChoice(["onnx"], "int4"), handle())


def test_the_dialog_offers_language_models_what_the_engine_exports():
    model = language_model()
    assert precisions_for(model) == ("fp32", "int8", "int4")
    assert set(formats_for(model, "fp32")) == {"openvino"}
    assert set(formats_for(model, "int4")) == {"openvino", "tflite", "coreml"}
    assert formats_for(model, "int8")["tflite"].startswith("INT8 language models are exported to ONNX only")
    assert choice_fits(ExportChoice(["onnx", "tflite"], "fp32"), model)
    assert not choice_fits(ExportChoice(["onnx", "tflite"], "int8"), model)
    assert not choice_fits(ExportChoice(["openvino"], "fp32"), model)
    # the engine agrees: what the dialog refuses, run_export refuses before any work, with the same words
    tflite = capabilities.exporters_for(["tflite"])
    refused = export._refusal(model, tflite, "int8", None)
    assert formats_for(model, "int8")["tflite"] == str(refused)
    assert [name for name, _ in export_dialog.format_rows()] == capabilities.formats()


def test_a_variant_already_on_onnxruntime_is_exported_at_its_own_precision():
    assert precisions_for(language_model("genai", "int4")) == ("int4",)
    assert precisions_for(language_model("ort_encoder")) == ("fp32",)
    assert precisions_for(language_model("early_exit")) == ("fp32", "int8", "int4")


def test_verification_lines_name_runtime_and_method():
    report = {"exports": [{"format": "onnx", "verified": {"runtime": "onnxruntime-genai", "method": "8 tokens"}},
                          {"format": "tflite", "verified": {"method": "cosine"}},
                          {"format": "coreml", "parity": {"max_abs_diff": 0.1}}]}
    assert verification_lines(report) == ["onnx verified with onnxruntime-genai; 8 tokens",
                                          "tflite verified with cosine"]


def test_export_settings_on_the_command_line_are_read_by_format():
    import argparse

    from studio.cli import _format_setting, _parser, _settings_by_format

    args = _parser().parse_args(["export", "m.onnx", "--to", "tflite", "-o", "out",
                                      "--set", "tflite.int8_search_units=4", "--set", "tflite.int8_target=0.9"])
    assert _settings_by_format(args.settings) == {"tflite": {"int8_search_units": 4, "int8_target": 0.9}}
    assert _format_setting("coreml.name=plain words") == ("coreml", "name", "plain words")  # not JSON: text
    with pytest.raises(argparse.ArgumentTypeError, match=r"FORMAT\.SETTING=VALUE"):
        _format_setting("int8_search_units=4")  # no format
