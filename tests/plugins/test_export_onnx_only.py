"""A model that exists only as ONNX exports to TFLite and CoreML through a PyTorch module rebuilt from its graph
(onnx2torch), verified as every export is; a graph that route cannot take is refused in one line naming the
operator, before anything is written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.errors import StudioError
from studio.export import run_export
from studio.loaders import load_model


@pytest.fixture(scope="module")
def fall_only_onnx(tmp_path_factory) -> Path:
    """yolov8s-fall as an .onnx file, opened by path from then on: no PyTorch module comes with it."""
    out = tmp_path_factory.mktemp("fall-onnx")
    report = run_export("zoo:yolov8s-fall", ["onnx"], out)
    return Path(report["exports"][0]["path"])


@pytest.fixture(scope="module")
def fall_mobile(fall_only_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("fall-mobile")
    report = run_export(str(fall_only_onnx), ["tflite", "coreml"], out)
    return {item["format"]: item for item in report["exports"]}


def test_onnx_detector_file_has_no_torch_module(fall_only_onnx):
    handle = load_model(str(fall_only_onnx))
    assert handle.torch_module is None and handle.onnx_path is not None and handle.task.value == "detect"


def test_onnx_detector_exports_to_tflite_with_parity_in_pixels(fall_mobile):
    tflite = fall_mobile["tflite"]
    assert Path(tflite["path"]).is_file() and "ai_edge_litert" in tflite["runtime"]
    assert "onnx2torch" in tflite["route"] and tflite["onnx2torch_max_abs_diff"] < 0.05
    parity = tflite["parity"]
    # Boxes stay pixels (0.003 px measured): a 0–1 normalised box would differ by hundreds of pixels.
    assert parity["max_abs_diff"] < 0.05 and parity["agreement"]["map50"] >= 0.99  # 0.995 measured


def test_onnx_detector_exports_to_coreml_with_a_valid_spec(fall_mobile):
    coreml = fall_mobile["coreml"]
    assert Path(coreml["path"]).is_dir() and coreml["parity"] is None and "macOS" in coreml["runtime"]
    spec = coreml["spec"]
    assert spec["problems"] == [] and spec["inputs"][0]["type"] == "imageType"
    assert {"task", "names", "imgsz"} <= set(spec["metadata_keys"])


def test_onnx_classifier_exports_to_tflite_with_the_same_top1(tmp_path):
    onnx_file = Path(run_export("zoo:efficientnet-lite0", ["onnx"], tmp_path / "onnx")["exports"][0]["path"])
    tflite = run_export(str(onnx_file), ["tflite"], tmp_path / "tflite")["exports"][0]
    assert tflite["parity"]["agreement"]["top1_agreement"] >= 0.99


def _rapidocr_det() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapidocr-onnxruntime==1.4.4 is not installed (make install adds it): no real paddle2onnx file")
    return Path(spec.submodule_search_locations[0]) / "models" / "ch_PP-OCRv4_det_infer.onnx"


def test_third_party_paddle2onnx_graph_becomes_a_matching_module():
    """PP-OCRv4's detector as paddle2onnx wrote it (weights in Constant nodes, every dim dynamic): rebuilt in
    PyTorch at 640×640 and checked against onnxruntime on a real frame. Exporting it is refused earlier, for
    another reason: it loads as a tensor model, and exports are verified on images."""
    from plugins.export.onnx_torch_route import route_reasons, torch_module

    handle = load_model(str(_rapidocr_det()))
    assert route_reasons(handle) == []
    module, delta = torch_module(handle)
    assert module is not None and delta < 1e-3  # probabilities 0–1


def _loop_classifier(path: Path) -> Path:
    """A 2-class image classifier whose scores pass through a Loop (onnx2torch has no Loop converter), with the
    Ultralytics metadata that makes the studio read it as a classifier."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.ones((1, 2), np.float32), "one")])
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["start"]),
             helper.make_node("Loop", ["trips", "cond", "start"], ["scores"], body=body)]
    graph = helper.make_graph(
        nodes, "loop-classifier", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.full((3, 2), 0.5, np.float32), "w"),
         numpy_helper.from_array(np.zeros(2, np.float32), "b"),
         numpy_helper.from_array(np.array(2, np.int64), "trips"), numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {"author": "Ultralytics", "task": "classify", "names": "{0: 'a', 1: 'b'}",
                       "imgsz": "[32, 32]", "stride": "32", "batch": "1"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def test_unconvertible_graph_is_refused_naming_the_operator_and_nothing_is_written(tmp_path):
    source = _loop_classifier(tmp_path / "loop.onnx")
    handle = load_model(str(source))
    assert handle.task.value == "classify"  # the refusal must come from the converter route, not the loader
    out = tmp_path / "out"
    for fmt in ("tflite", "coreml"):
        with pytest.raises(StudioError) as refused:
            run_export(str(source), [fmt], out)
        message = str(refused.value)
        assert "Loop" in message and "onnx2torch" in message and "\n" not in message
    assert not out.exists() or list(out.iterdir()) == []


def test_quantized_onnx_is_refused_with_the_float_route_named(tmp_path):
    """An INT8 QDQ graph has no float model left in it: TFLite INT8 is calibrated from the float graph instead."""
    onnx_file = Path(run_export("zoo:efficientnet-lite0", ["onnx"], tmp_path / "int8", precision="int8")
                     ["exports"][0]["path"])
    with pytest.raises(StudioError, match=r"already quantized \(\w+Linear nodes\).*--precision int8"):
        run_export(str(onnx_file), ["tflite"], tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_int8_tflite_of_an_onnx_only_detector_keeps_its_decoding_head_float(fall_only_onnx, tmp_path):
    """The Ultralytics head found by its ONNX node names stays float; quantized with the rest it finds nothing."""
    item = run_export(str(fall_only_onnx), ["tflite"], tmp_path / "out", precision="int8")["exports"][0]
    assert "onnx2torch" in item["route"] and "kept float (/_model/" in item["recipe"]
    assert item["tensor_dtypes"].get("int8", 0) > 100 and item["parity"]["agreement"]["map50"] >= 0.9


def test_int8_tflite_of_an_onnx_only_detector_without_a_known_head_is_refused(tmp_path):
    """A Darknet graph's decoding has no name to find it by: refused in one line before any file is written."""
    onnx_file = Path(run_export("zoo:yolov3-tiny-coco", ["onnx"], tmp_path / "onnx")["exports"][0]["path"])
    with pytest.raises(StudioError, match=r"INT8 TFLite of a detector that exists only as ONNX.*--precision int8"):
        run_export(str(onnx_file), ["tflite"], tmp_path / "out", precision="int8")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_int8_tflite_of_an_onnx_only_classifier_is_calibrated_from_its_float_graph(tmp_path):
    onnx_file = Path(run_export("zoo:efficientnet-lite0", ["onnx"], tmp_path / "onnx")["exports"][0]["path"])
    tflite = run_export(str(onnx_file), ["tflite"], tmp_path / "tflite", precision="int8")["exports"][0]
    assert "onnx2torch" in tflite["route"] and tflite["tensor_dtypes"].get("int8", 0) > 50
    assert tflite["size_mb"] < 8  # 18.6 MB in FP32
    # Min-max INT8 of EfficientNet-Lite0 keeps about 0.6 of the top-1 on the bundled frames from either route
    # (0.58 from the PyTorch model, 0.67 from its ONNX, 12 frames): the route adds no loss of its own.
    assert tflite["parity"]["agreement"]["top1_agreement"] >= 0.4


def test_fp16_onnx_variant_is_widened_and_exports_to_tflite(tmp_path):
    """The studio's FP16 ONNX (float16 weights and activations) computed in float32: same top-1 as the FP16 graph."""
    onnx_file = Path(run_export("zoo:efficientnet-lite0", ["onnx"], tmp_path / "fp16", precision="fp16")
                     ["exports"][0]["path"])
    assert sum(init.data_type == TensorProto.FLOAT16 for init in onnx.load(str(onnx_file)).graph.initializer) > 10
    tflite = run_export(str(onnx_file), ["tflite"], tmp_path / "out")["exports"][0]
    assert tflite["parity"]["agreement"]["top1_agreement"] >= 0.99


def test_a_recipe_that_quantized_the_onnx_reaches_tflite_int8_through_its_float_variant(tmp_path):
    """TFLite cannot take the recipe's QDQ graph: the converter quantizes the float variant itself, re-calibrated."""
    recipe = tmp_path / "int8.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.static_int8"\n')
    item = run_export("zoo:efficientnet-lite0", ["tflite"], tmp_path / "out", recipe_path=recipe)["exports"][0]
    assert item["precision"] == "int8" and "quantize.static_int8" in item["requantized"]
    assert item["tensor_dtypes"].get("int8", 0) > 50 and item["parity"]["kind"] == "vision"
    assert Path(item["path"]).is_file()
