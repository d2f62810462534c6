"""Loaders turn each accepted format into one ModelHandle, and say what they cannot do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from studio.loaders import load_model
from studio.model import Task


def test_ultralytics_pt_reads_task_and_labels(fall_handle):
    assert fall_handle.task == Task.DETECT
    assert fall_handle.labels == ("Normal", "Fall")
    assert fall_handle.image_input.size == (640, 640) and fall_handle.image_input.dynamic
    assert not fall_handle.random_weights
    assert "allow-list" in fall_handle.provenance.loader


@pytest.mark.parametrize(("name", "task"), [("yolov8n-seg.yaml", Task.SEGMENT), ("yolo11n-cls.yaml", Task.CLASSIFY),
                                            ("yolo11n-pose.yaml", Task.POSE), ("yolo11n-obb.yaml", Task.OBB)])
def test_ultralytics_yaml_task_and_random_flag(name, task):
    from studio.loaders.ultralytics_yaml import load_bundled

    handle = load_bundled(name)
    assert handle.task == task
    assert handle.random_weights and "RANDOM WEIGHTS" in handle.display_name
    assert handle.summary()["random_weights"] is True


def test_yaml_file_on_disk(tmp_path):
    from studio.loaders.ultralytics_yaml import load_bundled

    source = load_bundled("yolov8n.yaml").provenance.path
    copy = tmp_path / "my-yolov8n.yaml"
    copy.write_text(Path(source).read_text())
    handle = load_model(copy)
    assert handle.format == "ultralytics-yaml" and handle.random_weights


def test_ultralytics_exported_onnx_is_recognised(fall_onnx, fall_handle):
    handle = load_model(fall_onnx)
    assert handle.format == "ultralytics-onnx"
    assert handle.task == Task.DETECT and handle.labels == ("Normal", "Fall")
    assert handle.image_input.dynamic  # exported with dynamic height/width
    assert abs(handle.params - fall_handle.params) / fall_handle.params < 0.01  # BN folded into conv


def test_yolo_onnx_without_metadata_is_recognised_from_its_outputs(tmp_path, fall_handle):
    from studio.zoo import entry

    shipped = entry("yolov8s-fall").path().with_name("best_fp16.onnx")
    model = onnx.load(str(shipped))
    del model.metadata_props[:]
    path = tmp_path / "stripped.onnx"
    onnx.save(model, str(path))
    handle = load_model(path)
    assert handle.task == Task.DETECT and handle.decoder == "yolo"
    assert handle.labels == ("class0", "class1")
    assert "output shape" in handle.provenance.note


def test_generic_onnx_is_a_tensor_model(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    handle = load_model(path)
    assert handle.task == Task.TENSOR and handle.image_input is None
    assert handle.inputs[0].shape == ("batch", 16)
    from studio.bench import BenchSettings, run_bench

    report = run_bench(handle, BenchSettings(runs=3, warmup=1))
    assert report["latency_ms"]["infer"]["p50"] > 0


def test_darknet_loads_cfg_or_weights(darknet_handle):
    assert darknet_handle.labels[:3] == ("person", "bicycle", "car") and len(darknet_handle.labels) == 80
    _cfg, weights = darknet_handle.source_paths
    assert load_model(weights).params == darknet_handle.params


def test_darknet_unknown_layer_is_refused_with_its_line(tmp_path, darknet_handle):
    from studio.errors import StudioError

    cfg, weights = darknet_handle.source_paths
    broken = tmp_path / "net.cfg"
    broken.write_text(cfg.read_text().replace("[maxpool]", "[wormhole]", 1))
    (tmp_path / "net.weights").write_bytes(weights.read_bytes())
    with pytest.raises(StudioError, match=r"\[wormhole\] at line \d+"):
        load_model(broken)


def test_darknet_weights_that_do_not_fit(tmp_path, darknet_handle):
    from studio.errors import StudioError

    cfg, _ = darknet_handle.source_paths
    (tmp_path / "net.cfg").write_text(cfg.read_text())
    (tmp_path / "net.weights").write_bytes(np.zeros(1000, np.float32).tobytes())
    with pytest.raises(StudioError, match="do not fit"):
        load_model(tmp_path / "net.cfg")


def test_efficientnet_classifies_the_bundled_images(effnet_handle, bus_path, zidane_path):
    import cv2

    from studio.runtime.predictor import Predictor, make_backend

    assert effnet_handle.task == Task.CLASSIFY and len(effnet_handle.labels) == 1000
    assert effnet_handle.labels[0] == "tench"
    assert 4_500_000 < effnet_handle.params < 4_800_000
    predictor = Predictor(effnet_handle, make_backend(effnet_handle, "torch", threads=1))
    bus = {item["label"] for item in predictor(cv2.imread(str(bus_path))).result.as_list()}
    zidane = {item["label"] for item in predictor(cv2.imread(str(zidane_path))).result.as_list()}
    # Real weights with the real activations (ReLU6) see a bus and a man in a suit.
    assert bus & {"minibus", "school bus", "trolleybus", "passenger car", "streetcar", "moving van"}, bus
    assert zidane & {"suit", "Windsor tie", "bow tie"}, zidane


def test_source_model_is_never_written(fall_handle, fall_onnx):
    source = Path(fall_handle.provenance.path)
    assert fall_onnx.parent != source.parent
    assert not list(source.parent.glob("best.onnx"))  # the Ultralytics exporter was kept away from the package
