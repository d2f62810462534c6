"""OpenVINO IR, CoreML and TensorFlow graphs opened by path: the studio's own exports re-opened and run in their
own runtime (OpenVINO), inspected where they cannot run (CoreML on Linux), and broken files refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from studio.errors import StudioError, UnsupportedError
from tests.engine.cli_helpers import run_cli, run_json

FALL = "zoo:yolov8s-fall"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    from studio.export import run_export

    out = tmp_path_factory.mktemp("formats")
    report = run_export(FALL, ["onnx", "openvino", "coreml"], out)
    return {item["format"]: Path(item["path"]) for item in report["exports"]}


def _one_line_refusal(*args: str, says: str) -> str:
    done = run_cli(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and says in lines[0], done.stderr
    return lines[0]


# -- OpenVINO IR ----------------------------------------------------------------------------------------------
def test_ir_info_by_folder_and_by_xml_shows_tensors_weights_and_metadata(exports):
    folder = exports["openvino"]
    by_folder, by_xml = run_json("info", folder), run_json("info", folder / "model.xml")
    for info in (by_folder, by_xml):
        assert info["format"] == "openvino" and info["task"] == "detect" and info["labels"] == ["Normal", "Fall"]
        assert info["inputs"] == [{"name": "images", "shape": ["?", 3, "?", "?"], "dtype": "float32"}]
        assert info["outputs"][0]["shape"][:2] == ["?", 6]  # [batch, 4 box + 2 classes, anchors]
        assert info["image_input"]["resize"] == "letterbox" and info["image_input"]["dynamic"] is True
        assert any(line.startswith("f32: ") for line in info["details"]["weights"])
        assert any(line.startswith("deploy_studio.preprocess: ") for line in info["details"]["metadata"])
        assert info["params"] > 10_000_000 and info["size_mb"] > 40  # YOLOv8s: 11.1M weights, 44.5 MB .bin
    assert by_folder["provenance"]["sha256"] == by_xml["provenance"]["sha256"]
    text = run_cli("info", folder)
    assert text.returncode == 0 and "weights    f32:" in text.stdout and "metadata   task: detect" in text.stdout


def _write_frames(folder: Path, frames: list[np.ndarray], images: list[Path]) -> Path:
    import cv2

    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"bikes_{index:02d}.jpg"), frame)
    for image in images:
        shutil.copy(image, folder / image.name)
    return folder


def _boxes(document: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for frame in document["frames"]:
        results = frame["results"]
        out.append((np.array([r["box_xyxy"] for r in results], float).reshape(-1, 4),
                    np.array([r["score"] for r in results], float), np.array([r["class_id"] for r in results])))
    return out


def test_ir_predictions_agree_with_its_onnx_source(exports, tmp_path, bikes_frames, bus_path, zidane_path):
    from studio.evaluate.detection_map import FrameBoxes, mean_average_precision
    from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF

    frames = _write_frames(tmp_path / "frames", bikes_frames, [bus_path, zidane_path])
    source = run_json("predict", exports["onnx"], frames, "--conf", str(TARGET_CONF), "--threads", "2")
    ir = run_json("predict", exports["openvino"] / "model.xml", frames, "--conf", str(PREDICTION_CONF),
                  "--threads", "2")
    assert ir["runtime"] == "openvino" and ir["runtime_detail"]["inference_precision"] == "f32"
    assert len(source["frames"]) == len(ir["frames"]) == len(bikes_frames) + 2
    pairs = [FrameBoxes(pb, ps, pc, tb, tc) for (tb, _, tc), (pb, ps, pc) in zip(_boxes(source), _boxes(ir),
                                                                                  strict=True)]
    targets = sum(len(p.true_classes) for p in pairs)
    assert targets >= 5, targets  # the fall detector's people on these frames (6 on 12 of them when written)
    assert mean_average_precision(pairs)["map50"] >= 0.99, (targets, mean_average_precision(pairs))


def test_bench_on_the_ir_names_the_runtime_and_the_device_that_ran(exports):
    report = run_json("bench", exports["openvino"], "--runtime", "openvino", "--runs", "3", "--threads", "1")
    ran = report["method"]["runtime"]
    assert report["runtime"] == "openvino" and ran["runtime"].startswith("openvino ")
    assert ran["device"] == "CPU" and ran["device_name"] and ran["threads"] == 1
    assert ran["inference_precision"] == "f32" and ran["graph"].endswith("model.xml")
    assert report["latency_ms"]["infer"]["p50"] > 0


def test_a_device_openvino_does_not_have_is_refused_listing_the_available_ones(exports, bus_path):
    import openvino as ov

    from studio.loaders import load_model
    from studio.runtime.predictor import make_backend

    available = list(ov.Core().available_devices)
    if "GPU" in {name.split(".")[0] for name in available}:
        pytest.skip(f"this machine has an OpenVINO GPU ({available})")
    handle = load_model(exports["openvino"])
    with pytest.raises(UnsupportedError) as caught:
        make_backend(handle, "openvino", device="gpu")
    assert "available" in str(caught.value) and "CPU" in str(caught.value) and "\n" not in str(caught.value)
    _one_line_refusal("predict", exports["openvino"] / "model.xml", bus_path, "--device", "gpu", says="CPU")


@pytest.mark.parametrize("spec", ["onnx", FALL])
def test_runtime_openvino_runs_an_onnx_graph_and_a_pytorch_checkpoint(spec, exports, bus_path):
    model = exports["onnx"] if spec == "onnx" else spec
    document = run_json("predict", model, bus_path, "--runtime", "openvino", timeout=600)
    assert document["runtime"] == "openvino" and document["runtime_detail"]["graph"].endswith(".onnx")
    assert document["frames"][0]["results"]  # people in bus.jpg


def test_run_feed_takes_named_inputs(exports):
    from studio.loaders import load_model
    from studio.runtime.openvino_backend import OpenVinoBackend

    backend = OpenVinoBackend.for_handle(load_model(exports["openvino"]), threads=1)
    feed = {"images": np.zeros((1, 3, 320, 320), np.float32)}
    (output,) = backend.run_feed(feed)
    assert output.shape == (1, 6, (40 * 40 + 20 * 20 + 10 * 10)) and output.dtype == np.float32
    assert np.array_equal(output, backend.run(feed["images"])[0])
    with pytest.raises(UnsupportedError, match="images"):
        backend.run_feed({})


def test_an_ultralytics_openvino_folder_opens_from_its_metadata_yaml(tmp_path, fall_handle, bus_path):
    from plugins.export.ultralytics_route import ultralytics_export

    folder = ultralytics_export(fall_handle, "openvino", tmp_path / "best_openvino_model")
    assert (folder / "metadata.yaml").is_file()
    info = run_json("info", folder)
    assert info["format"] == "openvino" and info["labels"] == ["Normal", "Fall"]
    assert info["provenance"]["note"].startswith("Ultralytics ") and info["image_input"]["size"] == [640, 640]
    document = run_json("predict", folder, bus_path)
    assert document["runtime"] == "openvino" and {r["label"] for r in document["frames"][0]["results"]} <= {
        "Normal", "Fall"} and document["frames"][0]["results"]


# -- CoreML ---------------------------------------------------------------------------------------------------
def test_coreml_package_info_works_on_linux(exports):
    info = run_json("info", exports["coreml"])
    assert info["format"] == "coreml" and info["task"] == "detect" and info["labels"] == ["Normal", "Fall"]
    assert info["inputs"][0]["dtype"] == "image RGB" and info["inputs"][0]["shape"] == [1, 3, 640, 640]
    assert info["outputs"][0]["shape"] == [1, 6, 8400]
    details = info["details"]
    assert details["coreml"][0].startswith("mlProgram") and any("float32" in line for line in details["weights"])
    assert "conv" in details["operators"][0] and any(line.startswith("names: ") for line in details["metadata"])


def test_running_a_coreml_package_is_refused_saying_macos(exports, bus_path):
    _one_line_refusal("predict", exports["coreml"], bus_path, says="macOS")


# -- bad input ------------------------------------------------------------------------------------------------
def test_broken_ir_and_coreml_files_are_refused_in_one_line(exports, tmp_path):
    ir = exports["openvino"]
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(ir / "model.xml", lonely / "model.xml")
    _one_line_refusal("info", lonely / "model.xml", says="model.bin is missing")
    _one_line_refusal("info", lonely, says="model.bin is missing")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "model.xml").write_text((ir / "model.xml").read_text()[:4000])
    shutil.copy(ir / "model.bin", cut / "model.bin")
    _one_line_refusal("info", cut / "model.xml", says="OpenVINO cannot read this IR")
    two = tmp_path / "two"
    shutil.copytree(ir, two)
    shutil.copy(ir / "model.xml", two / "other.xml")
    _one_line_refusal("info", two, says="2 .xml files")
    package = tmp_path / "no_weights.mlpackage"
    shutil.copytree(exports["coreml"], package)
    for blob in package.rglob("weight.bin"):
        blob.unlink()
    _one_line_refusal("info", package, says="weights/weight.bin is missing")
    no_manifest = tmp_path / "no_manifest.mlpackage"
    shutil.copytree(exports["coreml"], no_manifest)
    (no_manifest / "Manifest.json").unlink()
    _one_line_refusal("info", no_manifest, says="no Manifest.json")


def test_a_pb_that_is_not_a_graph_is_refused_in_one_line(tmp_path):
    import onnx

    noise = tmp_path / "noise.pb"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _one_line_refusal("info", noise, says="not a TensorFlow frozen graph")
    # A real protobuf of another schema: an ONNX test tensor shipped in onnx's wheel.
    tensor = next((Path(onnx.__file__).parent / "backend" / "test" / "data").rglob("input_0.pb"))
    _one_line_refusal("info", tensor, says="not a TensorFlow frozen graph")


# -- TensorFlow frozen graphs (no TensorFlow here: a GraphDef written field by field) ---------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode())


def _shape(dims: list[int]) -> bytes:  # TensorShapeProto: dim (2) { size (1) }
    return b"".join(_field(2, _int(1, d)) for d in dims)


def _attr(key: str, value: bytes) -> bytes:  # NodeDef.attr (5): map entry { key (1), AttrValue (2) }
    return _field(5, _text(1, key) + _field(2, value))


def _node(name: str, op: str, inputs: tuple[str, ...] = (), attrs: tuple[bytes, ...] = ()) -> bytes:
    return _field(1, _text(1, name) + _text(2, op) + b"".join(_text(3, i) for i in inputs) + b"".join(attrs))


FLOAT = _int(6, 1)  # AttrValue.type (6) = DT_FLOAT (1)


def _const(name: str, array: np.ndarray) -> bytes:
    tensor = _int(1, 1) + _field(2, _shape(list(array.shape))) + _field(4, array.astype("<f4").tobytes())
    return _node(name, "Const", attrs=(_attr("dtype", FLOAT), _attr("value", _field(8, tensor))))


def frozen_graph(input_dims: list[int]) -> bytes:
    """input (Placeholder, NHWC) → Conv2D 3×3 (4 filters, SAME) → BiasAdd → Relu: the smallest real conv net."""
    weights = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) / 100
    conv = (_attr("T", FLOAT), _attr("strides", _field(1, _field(3, _varint(1) * 4))),
            _attr("padding", _text(2, "SAME")), _attr("data_format", _text(2, "NHWC")))
    return b"".join([
        _node("input", "Placeholder", attrs=(_attr("dtype", FLOAT), _attr("shape", _field(7, _shape(input_dims))))),
        _const("w", weights), _const("b", np.array([0.1, -0.2, 0.3, -0.4], np.float32)),
        _node("conv", "Conv2D", ("input", "w"), conv),
        _node("bias", "BiasAdd", ("conv", "b"), (_attr("T", FLOAT),)),
        _node("output", "Relu", ("bias",), (_attr("T", FLOAT),)),
    ])


def test_a_frozen_graph_opens_as_a_tensor_model_and_runs_in_openvino(tmp_path):
    from studio.loaders import load_model
    from studio.runtime.predictor import make_backend

    graph = tmp_path / "tiny.pb"
    graph.write_bytes(frozen_graph([-1, 8, 8, 3]))
    info = run_json("info", graph)
    assert info["format"] == "openvino" and info["task"] == "tensor" and info["provenance"]["loader"] == "tensorflow"
    assert info["inputs"][0]["shape"] == [1, 8, 8, 3] and info["outputs"][0]["shape"] == [1, 8, 8, 4]
    assert "batch dimension set to 1" in info["provenance"]["note"] and info["params"] == 3 * 3 * 3 * 4 + 4
    bench = run_json("bench", graph, "--runs", "3")
    assert bench["runtime"] == "openvino" and bench["method"]["runtime"]["runtime"].startswith("openvino")
    handle = load_model(graph)  # the second open reads the cached IR
    backend = make_backend(handle, "auto")
    x = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    (y,) = backend.run_feed({handle.inputs[0].name: x})
    weights = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) / 100
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    centre = np.einsum("ijc,ijco->o", padded[3:6, 3:6], weights) + np.array([0.1, -0.2, 0.3, -0.4])
    assert np.allclose(y[0, 3, 3], np.maximum(centre, 0), atol=1e-4)  # the graph computes what it says


def test_a_frozen_graph_with_open_image_sizes_is_refused_asking_for_a_shape(tmp_path):
    graph = tmp_path / "open.pb"
    graph.write_bytes(frozen_graph([-1, -1, -1, 3]))
    line = _one_line_refusal("info", graph, says="undefined")
    assert "ovc --input" in line and "fixed input shape" in line


def test_loader_errors_are_studio_errors(tmp_path):
    from studio.loaders import load_model

    empty = tmp_path / "empty_dir.mlpackage"
    empty.mkdir()
    with pytest.raises(StudioError, match=r"Manifest\.json"):
        load_model(empty)
