"""The plain-text renderings of the CLI's JSON reports, on hand-written reports."""

from __future__ import annotations

from studio import report_text
from studio.model import describe_tensor
from tests.unit.handles import handle

MACHINE = {"cpu": "Test CPU 9000", "logical_cores": 2, "features": ["avx2", "avx512_vnni"],
           "int8_path": "VNNI INT8 kernels"}
LATENCY = {"pre": {"p50": 1.234, "p95": 2.0, "p99": 3.0}, "infer": {"p50": 10.0, "p95": 11.5, "p99": 12.25},
           "post": {"p50": 0.5, "p95": 0.75, "p99": 1.0}, "total": {"p50": 11.734, "p95": 14.25, "p99": 16.25}}


def _fidelity(value=0.74, count=26, frames=12, unit="baseline boxes"):
    return {"metric": "map50", "value": value, "interval": {"low": 0.52, "high": 0.88},
            "evidence": {"frames": frames, "count": count, "unit": unit, "thin": count < 50,
                         "warning": "thin evidence: give frames of your own"},
            "frame_set": "12 bundled frames"}


def test_a_dynamic_dimension_reads_as_a_question_mark_with_its_name():
    assert describe_tensor({"name": "images", "shape": [1, 3, "height", "width"], "dtype": "float32"}) == \
        "images 1×3×?×? float32 (dynamic: height, width)"
    assert describe_tensor({"name": "x", "shape": ["?", 4], "dtype": "int64"}) == "x ?×4 int64 (dynamic)"
    assert describe_tensor({"name": "s", "shape": [], "dtype": "float32"}) == "s scalar float32"


def test_info_lists_tensors_and_cuts_long_label_lists():
    summary = handle(labels=tuple(f"class{i}" for i in range(10))).summary()
    text = report_text.info_text(summary)
    assert "input      images 1×3×?×? float32 (dynamic: height, width)" in text.splitlines()
    assert "labels     class0, class1, class2, class3, class4, class5, class6, class7 … (10 in all)" in text
    assert "params     3,151,904" in text and "GFLOPs     8.7  (counted on the graph)" in text
    assert "size       12.346 MB" in text
    assert "WARNING" not in text and "note" not in text


def test_info_flags_random_weights_and_unknown_counts():
    summary = handle(random_weights=True, labels=(), params=None, gflops=None, gflops_method="not counted").summary()
    text = report_text.info_text(summary)
    assert text.splitlines()[0] == "model      yolo-net [RANDOM WEIGHTS]"
    assert "labels     (none)" in text and "params     unknown" in text and "GFLOPs     unknown  (not counted)" in text
    assert text.splitlines()[-1].startswith("WARNING    random weights")


def test_stage_table_is_in_pipeline_order_with_two_decimals():
    rows = report_text.stage_table(LATENCY).splitlines()
    assert [row.split()[0] for row in rows] == ["stage", "pre", "infer", "post", "total"]
    assert rows[1].split() == ["pre", "1.23", "2.00", "3.00"]


def test_bench_text_adds_the_bare_session_check_only_when_measured():
    report = {"model": "yolo-net", "runtime": "onnxruntime", "input_shape": [1, 3, 384, 640], "threads": 2,
              "latency_ms": LATENCY, "fps": 85.2, "peak_rss_mb": 300.1, "model_size_mb": 12.3, "params": 3151904,
              "gflops": 8.7, "method": {"summary": "interleaved", "frames": "bikes.mp4", "machine": MACHINE}}
    text = report_text.bench_text(report)
    assert text.splitlines()[0] == "yolo-net on onnxruntime, input [1, 3, 384, 640], 2 thread(s)"
    assert "measured on: Test CPU 9000 (2 logical cores; avx2 avx512_vnni) — VNNI INT8 kernels" in text
    assert "check:" not in text
    report["check"] = {"bare_session_run_p50_ms": 9.5, "infer_p50_over_bare_p50": 1.05}
    assert report_text.bench_text(report).splitlines()[-1] == \
        "check: bare InferenceSession.run p50 9.5 ms, pipeline infer / bare = 1.05"


def test_predict_text_shows_ten_frames_and_counts_the_rest():
    frames = [{"frame": i, "results": [{"label": "person", "score": 0.912}] if i % 2 else []} for i in range(12)]
    report = {"model": "yolo-net", "task": "detect", "source": "bus.jpg", "runtime": "ort", "frames": frames,
              "counts_per_class": {"person": 6}}
    lines = report_text.predict_text(report).splitlines()
    assert lines[1] == "frame   0: nothing" and lines[2] == "frame   1: person 0.91"
    assert lines[-2] == "… 2 more frame(s)"
    assert lines[-1] == "per class over 12 frame(s): person 6"
    report.update(frames=frames[:1], counts_per_class={})
    assert report_text.predict_text(report).splitlines()[-1] == "per class over 1 frame(s): none"


def _optimize_report():
    return {"model": "yolo-net",
            "recipe": {"steps": [{"plugin": "prune.channels"}, {"plugin": "quantize.static_int8"}]},
            "baseline": {"size_mb": 12.3, "latency_ms": {"p50": 20.0, "p95": 25.0}},
            "variant": {"size_mb": 3.1, "latency_ms": {"p50": 8.0, "p95": 9.5}},
            "speedup_p50": 2.5, "size_ratio": 0.25, "fidelity": _fidelity(), "output": "/out/v1",
            "warnings": ["calibrated on 8 frames"], "machine": MACHINE}


def test_optimize_text_names_the_steps_figures_and_warnings():
    text = report_text.optimize_text(_optimize_report())
    lines = text.splitlines()
    assert lines[0] == "yolo-net: prune.channels → quantize.static_int8"
    assert lines[2].split() == ["baseline", "12.30", "20.00", "25.00"]
    assert lines[3].split() == ["variant", "3.10", "8.00", "9.50"]
    assert lines[4] == ("speed-up 2.5×, size ×0.25, fidelity map50 0.74 [0.52–0.88] on 26 baseline boxes in 12 "
                        "frames (thin evidence)")
    assert "judged on: 12 bundled frames" in lines and "written: /out/v1" in lines
    assert lines[-1] == "warning: calibrated on 8 frames"
    assert "true mAP50" not in text and "perplexity" not in text


def test_optimize_text_of_a_language_model_reports_its_own_measurements():
    report = _optimize_report()
    report["baseline"].update(decode_tokens_per_s=40.0, ttft_ms=30)
    report["variant"].update(decode_tokens_per_s=60.0, ttft_ms=20, layers_used=18.5)
    report["perplexity"] = {"baseline": 12.1, "variant": 12.9, "method": "wikitext sample"}
    report["method"] = {"latency": "median of 5 generations"}
    report["accuracy"] = {"baseline": {"labels": "coco8", "map50": 0.61}, "variant": {"map50": 0.58}}
    lines = report_text.optimize_text(report).splitlines()
    assert "decode tokens/s: baseline 40.0, variant 60.0; first token ms: 30 → 20" in lines
    assert "early exit: 18.5 decoder layers per token on average" in lines
    assert "perplexity: baseline 12.1, variant 12.9 (wikitext sample)" in lines
    assert "latency = median of 5 generations" in lines
    assert "true mAP50 on coco8: baseline 0.61, variant 0.58" in lines


def test_machine_lines_describe_the_users_own_frames():
    frames = {"source": "/data/cams", "fingerprint": "abcd", "judging": {"frames": 40, "files": 4},
              "calibration": {"frames": 60, "files": 6}, "split": "whole files by hash"}
    lines = report_text.machine_lines({"frames": frames})
    assert lines == ["model's frames: /data/cams (fingerprint abcd): judging side 40 frames in 4 file(s), "
                     "calibration side 60 in 6; whole files by hash"]
    assert report_text.machine_lines({"frames": {"source": "bundled media"}}) == []


def test_accuracy_text_gives_the_interval_and_a_thin_warning():
    result = {"map50": 0.5, "map50_95": 0.3, "precision": 0.6, "recall": 0.55, "targets": 20, "frames": 4,
              "interval": {"low": 0.4, "high": 0.6}, "evidence": {"thin": True, "warning": "only 20 boxes"}}
    text = report_text.accuracy_text(result)
    assert text.startswith("mAP50 0.5  mAP50-95 0.3  precision 0.6  recall 0.55  (20 labelled boxes in 4 images)")
    assert "; mAP50 95 % interval 0.4–0.6" in text and text.endswith("\nwarning: only 20 boxes")
    result.update(interval=None, evidence={"thin": False})
    assert "\n" not in report_text.accuracy_text(result) and "interval" not in report_text.accuracy_text(result)


def test_evaluation_text_covers_both_sides_and_fidelity():
    side = {"labels": "coco8", "map50": 0.5, "map50_95": 0.3, "precision": 0.6, "recall": 0.55, "targets": 80,
            "frames": 8}
    report = {"model": "yolo-net", "variant": "v1", "accuracy": {"baseline": side, "variant": side},
              "fidelity": _fidelity()}
    lines = report_text.evaluation_text(report).splitlines()
    assert lines[0] == "yolo-net → v1"
    assert [line.split(" on ")[0] for line in lines[1:3]] == ["true accuracy (baseline)", "true accuracy (variant)"]
    assert lines[3].startswith("fidelity map50 0.74 [0.52–0.88]")
    assert lines[-1] == "warning: thin evidence: give frames of your own"


def test_export_text_says_how_each_format_was_checked():
    agreement = {"metric": "map50", "value": 0.98, "evidence": {"frames": 12, "count": 30, "unit": "boxes",
                                                                "thin": True, "warning": "thin: 30 boxes"}}
    report = {"model": "yolo-net", "precision": "fp16", "exports": [
        {"format": "onnx", "size_mb": 6.2, "export_seconds": 3.04, "path": "/out/yolo-net.onnx",
         "parity": {"max_abs_diff": 0.0000123, "agreement": agreement, "frame_set": "12 bundled frames"}},
        {"format": "tflite", "size_mb": 6.0, "export_seconds": 20.0, "path": "/out/lm.tflite",
         "parity": {"metric": "argmax agreement", "argmax_agreement": 0.97, "threshold": 0.9}},
        {"format": "coreml", "size_mb": 6.1, "export_seconds": 9.0, "path": "/out/yolo-net.mlpackage"},
        {"format": "onnx", "size_mb": 500.0, "export_seconds": 60.0, "path": "/out/lm-onnx",
         "verified": {"runtime": "onnxruntime-genai", "method": "m", "tokens": 8, "agreement": 1.0}}]}
    lines = report_text.export_text(report).splitlines()
    assert lines[0] == "yolo-net exported (fp16)"
    assert "max |Δ| 1.23e-05  map50 0.98 on 30 boxes in 12 frames (thin evidence)" in lines[1]
    assert "argmax agreement 0.97 (threshold 0.9)" in lines[2]
    assert "spec validated (running it needs macOS)" in lines[3]
    assert "tokens 8, agreement 1.0  /out/lm-onnx" in lines[4] and "runtime" not in lines[4]
    assert lines[5:] == ["parity judged on: 12 bundled frames", "warning: thin: 30 boxes"]


def test_generation_and_embedding_text():
    generation = {"text": "Paris.", "model": "smollm", "prompt_tokens": 7, "new_token_count": 2, "ttft_ms": 31.6,
                  "decode_tokens_per_s": None, "total_ms": 80.2, "method": "onnxruntime-genai"}
    lines = report_text.generation_text(generation).splitlines()
    assert lines[0] == "Paris." and lines[1] == ""
    assert lines[2] == "smollm: 7 prompt tokens, 2 new tokens, first token 32 ms, decode – tokens/s, total 80 ms"
    generation["decode_tokens_per_s"] = 41.26
    assert "decode 41.3 tokens/s" in report_text.generation_text(generation)
    embedding = {"model": "minilm", "sentences": ["a" * 70, "b"], "dimensions": 384, "cosine": [[1, 0.25], [0.25, 1]]}
    lines = report_text.embedding_text(embedding).splitlines()
    assert lines[0] == "minilm: 2 sentences, 384-d, cosine similarity:"
    assert lines[1] == "  [0] +1.000  +0.250  " + "a" * 60


def test_what_ran_is_named_with_its_provider_delegate_and_device():
    from studio.report_text import runs_on_text

    assert runs_on_text({"runtime": "onnxruntime 1.32.0", "execution_provider": "CPUExecutionProvider",
                         "device": "cpu", "device_name": "AMD EPYC"}) == \
        "onnxruntime 1.32.0 · CPUExecutionProvider · cpu (AMD EPYC)"
    assert runs_on_text({"runtime": "ai_edge_litert 2.3.0", "delegate": "XNNPACK", "device": "cpu"}) == \
        "ai_edge_litert 2.3.0 · XNNPACK · cpu"
    assert runs_on_text({}) == "unknown"
