"""Every CLI command answers, in JSON, with the fields the README promises."""

from __future__ import annotations

import pytest

from tests.engine.cli_helpers import run_cli, run_json

LATENCY_FIELDS = {"p50", "p95", "p99"}
BENCH_FIELDS = {"model", "runtime", "imgsz", "threads", "runs", "latency_ms", "fps", "peak_rss_mb", "model_size_mb",
                "params", "gflops", "method"}


def test_zoo_lists_the_packaged_models():
    rows = {row["name"]: row for row in run_json("zoo")}
    for name in ("yolov8s-fall", "yolov3-tiny-coco", "efficientnet-lite0"):
        assert rows[name]["available"] and rows[name]["loads"], name
    for name in ("smollm2-135m", "minilm-l6"):
        assert rows[name]["available"] and rows[name]["loads"], name  # weights installed with the project
    assert all(row["licence"] for row in rows.values())


def test_a_language_model_is_not_fed_images():
    done = run_cli("predict", "zoo:minilm-l6", "bus.jpg")
    assert done.returncode == 2 and "is a language model (embed): it takes text" in done.stderr


def test_info_fields(fall_handle):
    info = run_json("info", "zoo:yolov8s-fall")
    assert info["format"] == "ultralytics-pt"
    assert info["task"] == "detect"
    assert info["labels"] == ["Normal", "Fall"]
    assert 11_000_000 < info["params"] < 11_300_000  # YOLOv8s: 11.1M
    assert 27 < info["gflops"] < 30  # Ultralytics reports 28.6 for YOLOv8s at 640
    assert info["inputs"][0]["name"] == "images"
    assert len(info["provenance"]["sha256"]) == 64
    assert info["provenance"]["zoo_name"] == "yolov8s-fall"
    assert info["size_mb"] > 20


def test_predict_reports_boxes_with_class_names(bus_path):
    report = run_json("predict", "zoo:yolov3-tiny-coco", bus_path)
    boxes = report["frames"][0]["results"]
    assert boxes and {"label", "score", "box_xyxy", "class_id"} <= boxes[0].keys()
    assert report["counts_per_class"]["person"] >= 3
    x1, y1, x2, y2 = boxes[0]["box_xyxy"]
    assert 0 <= x1 < x2 <= 810 and 0 <= y1 < y2 <= 1080  # original-image pixels of bus.jpg


def test_predict_classifier_reports_top5(bus_path):
    report = run_json("predict", "zoo:efficientnet-lite0", bus_path)
    top = report["frames"][0]["results"]
    assert len(top) == 5
    assert top[0]["score"] >= top[-1]["score"]


@pytest.mark.parametrize("runtime", ["ort", "torch", "ultralytics"])
def test_bench_fields(runtime):
    report = run_json("bench", "zoo:yolov8s-fall", "--runtime", runtime, "--runs", "4", "--warmup", "1",
                      "--imgsz", "320")
    assert report.keys() >= BENCH_FIELDS
    assert report["runtime"] == runtime and report["threads"] == 1 and report["runs"] == 4
    for stage in ("pre", "infer", "post", "total"):
        assert report["latency_ms"][stage].keys() >= LATENCY_FIELDS
        assert report["latency_ms"][stage]["p50"] >= 0
    assert report["latency_ms"]["infer"]["p50"] > 0
    assert report["latency_ms"]["total"]["p50"] >= report["latency_ms"]["infer"]["p50"]
    assert report["fps"] > 0 and report["peak_rss_mb"] > 100 and report["model_size_mb"] > 1
    assert report["method"]["summary"] and report["method"]["runtime"]


def test_bench_times_a_bare_session_loop_beside_the_pipeline():
    """``--check-bare`` reports a bare InferenceSession.run beside the pipeline's "infer", and their ratio.
    How close they are is a measurement (README, "bench"), not a timed assertion on a shared machine."""
    report = run_json("bench", "zoo:yolov3-tiny-coco", "--runs", "6", "--warmup", "1", "--check-bare")
    check = report["check"]
    assert check["bare_session_run_p50_ms"] > 0 and "same input tensor" in check["method"]
    infer_p50 = report["latency_ms"]["infer"]["p50"]
    assert check["infer_p50_over_bare_p50"] == pytest.approx(infer_p50 / check["bare_session_run_p50_ms"], rel=2e-3)


def test_bench_random_weights_are_flagged():
    report = run_json("bench", "zoo:yolo11n-random", "--runs", "2", "--warmup", "1", "--imgsz", "320")
    assert report["random_weights"] is True
    assert "RANDOM WEIGHTS" in report["model"]


def test_demo_prints_the_stage_table_and_classes():
    done = run_cli("demo", "--frames", "12")
    assert done.returncode == 0, done.stderr
    for word in ("infer", "total", "p50", "Normal", "Fall", "onnxruntime"):
        assert word in done.stdout
