"""The format benchmark: every format exported, re-opened by path and run in its own runtime, on one table."""

from __future__ import annotations

import shutil

import pytest

from studio.format_bench import FormatBenchSettings, run_format_bench, table_text
from tests.engine.cli_helpers import run_cli, run_json

RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "ai_edge_litert"}


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory):
    return tmp_path_factory.mktemp("formats")


@pytest.fixture(scope="module")
def report(bench_out):
    settings = FormatBenchSettings(formats=("onnx", "openvino", "tflite", "coreml"), precisions=("fp32",),
                                   out_dir=bench_out, runs=3, warmup=1, fidelity_frames=4)
    return run_format_bench("zoo:efficientnet-lite0", settings)


def _cell(report, fmt, precision="fp32"):
    return next(c for c in report["cells"] if c["format"] == fmt and c["precision"] == precision)


def test_each_format_runs_in_its_own_runtime_and_keeps_the_answers(report):
    for fmt, runtime in RUNTIME_OF.items():
        cell = _cell(report, fmt)
        assert cell["status"] == "ok", cell
        assert cell["provenance"] == "exported"
        assert cell["runtime"]["runtime"].startswith(runtime), cell["runtime"]
        assert cell["fidelity"]["metric"] == "top1_agreement" and cell["fidelity"]["value"] >= 0.99
        assert 0 < cell["latency_ms"]["p50"] <= cell["latency_ms"]["p95"]
        assert cell["fps"] > 0 and cell["size_mb"] > 1 and cell["memory_mb"] > 0
        assert "high-water mark" in cell["memory"]["method"]
    assert "alternating order" in report["method"]["latency"] and "3 frames" in report["method"]["latency"]


def test_a_format_that_cannot_run_here_says_so_and_the_table_has_no_hole(report):
    coreml = _cell(report, "coreml")
    assert coreml["status"] == "not run here" and coreml["stage"] == "run"
    assert "macOS" in coreml["message"] and coreml["size_mb"] > 1
    text = table_text(report)
    assert text.startswith("| format |") and text.count("\n| ") == len(report["cells"])  # a row per cell
    assert "not run here at run" in text and "macOS" in text


def test_files_already_there_are_taken_and_a_broken_one_fails_at_open(report, bench_out, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(bench_out, out)
    broken = next((out / "fp32" / "tflite").iterdir())
    broken.write_bytes(broken.read_bytes()[:1000])  # truncated, as a copy cut short would be
    again = run_format_bench("zoo:efficientnet-lite0", FormatBenchSettings(
        formats=("onnx", "tflite"), precisions=("fp32",), out_dir=out, runs=2, warmup=1, fidelity_frames=2))
    onnx, tflite = _cell(again, "onnx"), _cell(again, "tflite")
    assert onnx["provenance"] == "taken" and onnx["status"] == "ok"
    assert tflite["provenance"] == "taken" and tflite["status"] == "failed" and tflite["stage"] == "open"
    assert broken.name in tflite["message"] and "\n" not in tflite["message"]


def test_the_cli_prints_the_table_and_refuses_unknown_formats(bench_out):
    done = run_json("bench", "zoo:efficientnet-lite0", "--formats", "onnx", "--out", str(bench_out),
                    "--runs", "2", "--fidelity-frames", "2", timeout=600)
    assert [c["format"] for c in done["cells"]] == ["onnx"] and done["cells"][0]["provenance"] == "taken"
    refused = run_cli("bench", "zoo:efficientnet-lite0", "--formats", "onnx,webgpu")
    assert refused.returncode == 2 and "webgpu" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
