"""``.tflite`` as an input: the studio's own export re-opened by path, a foreign MediaPipe model, broken files.

Everything goes through the real ``deploy-studio`` console script; the files are real exports (made in-process,
shared with the INT8 search's tests) and the
TFLite models inside mediapipe's wheel (installed without dependencies, for these tests only).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, detection_fidelity
from studio.media import bundled_image, bundled_video
from studio.runtime.results import Detections
from tests.engine.cli_helpers import run_cli, run_json


def _mediapipe_model(relative: str) -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mediapipe (installed --no-deps for its wheel's TFLite models) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "modules" / relative
    if not path.is_file():
        pytest.skip(f"mediapipe's wheel has no {relative}")
    return path


@pytest.fixture(scope="module")
def exports(fall_tflite) -> dict[str, Path]:
    """The studio's fp32 TFLite and ONNX exports of the real detector, and its INT8 TFLite (int8 I/O), made once
    per run for this module and the INT8 search's (tests/conftest.py)."""
    return {name: fall_tflite[name] for name in ("tflite", "onnx", "int8")}


def _frames(folder: Path) -> Path:
    """bus.jpg, zidane.jpg and every 25th frame of bikes.mp4, as image files in one folder."""
    import cv2

    folder.mkdir(exist_ok=True)
    for name in ("bus.jpg", "zidane.jpg"):
        (folder / name).write_bytes(bundled_image(name).read_bytes())
    video = cv2.VideoCapture(str(bundled_video("bikes.mp4")))
    index = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        if index % 25 == 0:
            cv2.imwrite(str(folder / f"bikes_{index:03d}.jpg"), frame)
        index += 1
    video.release()
    return folder


def _detections(report: dict, labels: tuple[str, ...]) -> list[Detections]:
    found = []
    for frame in report["frames"]:
        items = frame["results"]
        found.append(Detections(np.array([i["box_xyxy"] for i in items], np.float32).reshape(-1, 4),
                                np.array([i["score"] for i in items], np.float32),
                                np.array([i["class_id"] for i in items], np.int64), labels))
    return found


def _square_onnx_detections(source: Path, frames: Path, conf: float) -> list[Detections]:
    """The ONNX source's detections at the TFLite file's fixed square input: its graph is dynamic and would
    otherwise letterbox to the smallest rectangle, which is a different input, not a runtime difference."""
    import dataclasses

    from studio.loaders import load_model
    from studio.runtime.predictor import make_predictor
    from studio.sources import open_source

    handle = load_model(source)
    image = dataclasses.replace(handle.required_image_input(), dynamic=False)
    predictor = make_predictor(handle.replace(image_input=image), "ort", threads=2, conf=conf)
    stream = open_source(str(frames))
    try:
        return [predictor(frame).result for frame in stream]  # type: ignore[misc]
    finally:
        stream.close()


def _agreement(source: Path, variant: Path, frames: Path) -> dict:
    """mAP50 of the .tflite's detections (through the CLI, in LiteRT) against its ONNX source's, as
    studio.verify judges parity."""
    base = _square_onnx_detections(source, frames, TARGET_CONF)
    other = run_json("predict", variant, frames, "--conf", str(PREDICTION_CONF), "--max-frames", "50")
    assert other["runtime"] == "litert" and {tuple(f["input_shape"]) for f in other["frames"]} == {(1, 3, 640, 640)}
    found = _detections(other, ("Normal", "Fall"))
    assert len(found) == len(base)
    return detection_fidelity(base, found, with_interval=False)


def test_own_export_reopens_with_tensors_quantisation_and_operators(exports):
    info = run_json("info", exports["tflite"])
    assert info["format"] == "tflite" and info["task"] == "detect" and info["labels"] == ["Normal", "Fall"]
    assert info["inputs"][0]["shape"] == [1, 3, 640, 640] and info["inputs"][0]["dtype"] == "float32"
    assert info["outputs"][0]["shape"] == [1, 6, 8400]
    assert info["image_input"]["resize"] == "letterbox" and info["params"] > 1_000_000
    details = info["details"]
    assert any("not quantised" in line for line in details["quantisation"])
    assert any(line.startswith("CONV_2D ×") for line in details["operators"])
    assert {"metadata.json", "deploy_studio.json"} <= set(details["appended files"])
    assert "Deploy Studio" in info["provenance"]["note"]


def test_own_export_predicts_like_its_onnx_source(exports, tmp_path):
    agreement = _agreement(exports["onnx"], exports["tflite"], _frames(tmp_path / "frames"))
    assert agreement["targets"] > 0 and agreement["map50"] >= 0.99, agreement


def test_int8_io_is_quantised_and_dequantised_and_agrees_with_the_float_source(exports, tmp_path):
    info = run_json("info", exports["int8"])
    assert info["inputs"][0]["dtype"] == "int8" and info["outputs"][0]["dtype"] == "int8"
    assert any("scale" in line and "zero point" in line for line in info["details"]["quantisation"])
    agreement = _agreement(exports["onnx"], exports["int8"], _frames(tmp_path / "frames"))
    # INT8 activations may lose a few boxes of the float model, never most of them.
    assert agreement["targets"] > 0 and agreement["map50"] >= 0.9, agreement


def test_litert_runs_without_xnnpack_and_refuses_a_missing_device(exports):
    from studio.errors import UnsupportedError
    from studio.loaders import load_model
    from studio.runtime.litert_backend import LiteRtBackend

    handle = load_model(exports["tflite"])
    with pytest.raises(UnsupportedError, match="available: cpu"):
        LiteRtBackend.for_handle(handle, threads=1, device="gpu")
    tensor = np.random.default_rng(0).random((1, 3, 640, 640), np.float32)
    plain = LiteRtBackend.for_handle(handle, threads=1, xnnpack=False)
    fast = LiteRtBackend.for_handle(handle, threads=1)
    assert plain.describe()["delegate"].startswith("none") and fast.describe()["delegate"] == "XNNPACK"
    assert plain.describe()["runtime"].startswith("ai_edge_litert ")
    assert np.abs(plain.run(tensor)[0] - fast.run(tensor)[0]).max() < 0.05


def test_a_foreign_mediapipe_model_opens_as_a_tensor_model_with_an_image_input():
    path = _mediapipe_model("face_detection/face_detection_short_range.tflite")
    info = run_json("info", path)
    assert info["task"] == "tensor" and info["inputs"][0]["shape"] == [1, 128, 128, 3]
    image = info["image_input"]
    assert image["size"] == [128, 128] and image["resize"] == "stretch"
    # Its TFLITE_METADATA says (pixel - 127.5) / 127.5: read, not assumed.
    assert image["mean"] == 127.5 and abs(image["scale"] - 1 / 127.5) < 1e-9
    assert "Short Range Face Detection" in " ".join(info["details"]["tflite metadata"])
    assert "never drawn" in info["provenance"]["note"]


def test_a_foreign_mediapipe_model_benches_and_predicts_in_litert():
    path = _mediapipe_model("face_detection/face_detection_short_range.tflite")
    bench = run_json("bench", path, "--runs", "5", "--warmup", "1")
    assert bench["runtime"] == "litert" and bench["latency_ms"]["infer"]["p50"] > 0
    assert bench["method"]["runtime"]["runtime"].startswith("ai_edge_litert")
    report = run_json("predict", path, bundled_image("bus.jpg"))
    assert report["runtime"] == "litert"
    assert [r["shape"] for r in report["frames"][0]["results"]] == [[1, 896, 16], [1, 896, 1]]
    assert "nothing is drawn" in report["runtime_detail"]["outputs"]


def test_a_tensor_model_benches_through_run_feed():
    from studio.bench import BenchSettings, run_bench
    from studio.loaders import load_model

    handle = load_model(_mediapipe_model("face_detection/face_detection_short_range.tflite"))
    report = run_bench(handle.replace(image_input=None), BenchSettings(runs=3, warmup=1))
    assert report["runtime"] == "litert" and report["input_shape"] == {"input": [1, 128, 128, 3]}
    assert report["latency_ms"]["infer"]["p50"] > 0


def test_a_custom_operator_is_refused_by_name():
    path = _mediapipe_model("face_landmark/face_landmark_with_attention.tflite")
    done = run_cli("info", path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Landmarks2TransformMatrix" in lines[0] and str(path) in lines[0], done.stderr


@pytest.mark.parametrize("kind", ["truncated", "random"])
def test_a_broken_tflite_is_refused_in_one_line(tmp_path, kind):
    real = _mediapipe_model("face_detection/face_detection_short_range.tflite").read_bytes()
    data = real[: len(real) // 2] if kind == "truncated" else np.random.default_rng(1).bytes(8192)
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(data)
    done = run_cli("info", path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and str(path) in lines[0], done.stderr
