"""`info`'s figures on ONNX files from other exporters: PaddlePaddle (weights in Constant nodes, every input
dim dynamic, -1 dims), tf2onnx (NHWC, "unk__N" dims), onnxruntime's quantizers (integer weights behind
DequantizeLinear / ConvInteger), torch's dynamo exporter. Each is built small here (onnx.helper), so a
figure can be compared with the same network stored the plain way: initializers, a static 640 input.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.loaders import load_model

# conv 3→8 (3×3, stride 2) + conv 8→16 (3×3, stride 2) + linear 16→10, with biases
TRUE_PARAMS = 8 * 3 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 10 + 10
DYNAMIC = ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "p2o.DynamicDimension.2"]


def _convnet(input_shape: list, *, nhwc: bool = False) -> onnx.ModelProto:
    """A small classifier with its weights in initializers (as torch.onnx.export writes them)."""
    rng = np.random.default_rng(0)
    weights = {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (16, 8, 3, 3), "b2": (16,), "w3": (16, 10), "b3": (10,)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in weights.items()]
    inits.append(numpy_helper.from_array(np.array([-1, 16], np.int64), "flat_shape"))  # not a parameter
    conv = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2])] if nhwc else []
    first = "x_nchw" if nhwc else "x"
    nodes += [
        helper.make_node("Conv", [first, "w1", "b1"], ["c1"], **conv), helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv), helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Reshape", ["gap", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w3"], ["mm"]), helper.make_node("Add", ["mm", "b3"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [input_shape[0], 10])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _paddle_style(model: onnx.ModelProto) -> onnx.ModelProto:
    """paddle2onnx's layout: every initializer becomes a Constant node; no initializers remain."""
    paddle = onnx.ModelProto()
    paddle.CopyFrom(model)
    constants = [helper.make_node("Constant", [], [t.name], value=t) for t in paddle.graph.initializer]
    del paddle.graph.initializer[:]
    nodes = constants + list(paddle.graph.node)
    del paddle.graph.node[:]
    paddle.graph.node.extend(nodes)
    paddle.producer_name = "PaddlePaddle"
    return paddle


def _save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    onnx.checker.check_model(model)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_constant_node_weights_count_like_initializers(tmp_path):
    plain = load_model(_save(_convnet([1, 3, 640, 640]), tmp_path, "plain"))
    paddle = load_model(_save(_paddle_style(_convnet(DYNAMIC)), tmp_path, "paddle"))
    assert paddle.params == plain.params  # was 0: the weights sit in Constant nodes
    assert plain.params == TRUE_PARAMS  # the int64 Reshape target is not a parameter
    assert "Constant nodes" in paddle.params_method and "scales" in paddle.params_method


def test_constant_weights_in_external_data_count_in_size(tmp_path):
    model = _paddle_style(_convnet(DYNAMIC))
    onnx.save(model, str(tmp_path / "external.onnx"), save_as_external_data=True, location="external.data",
              size_threshold=0, convert_attribute=True)  # Constant nodes' tensors move to the data file too
    handle = load_model(tmp_path / "external.onnx")
    data = (tmp_path / "external.data").stat().st_size
    assert data >= 4 * TRUE_PARAMS
    assert handle.size_bytes == (tmp_path / "external.onnx").stat().st_size + data
    assert handle.params == TRUE_PARAMS and handle.gflops > 0.1


def test_dynamic_input_is_profiled_at_a_stated_size_never_1x1(tmp_path):
    static = load_model(_save(_convnet([1, 3, 640, 640]), tmp_path, "static"))
    paddle = load_model(_save(_paddle_style(_convnet(DYNAMIC)), tmp_path, "paddle"))
    assert static.gflops > 0.1
    assert paddle.gflops == pytest.approx(static.gflops, rel=1e-6)  # was 1e-4 of it: a 1×1 image
    assert "x 1×3×640×640" in paddle.gflops_method and "1×1" not in paddle.gflops_method
    assert "640×640 assumed, --imgsz sets them" in paddle.gflops_method and "batch is 1" in paddle.gflops_method

    from studio.complexity import reprofile

    at_320 = load_model(_save(_convnet([1, 3, 320, 320]), tmp_path, "static320"))
    again = reprofile(paddle, (320, 320))
    assert again.gflops == pytest.approx(at_320.gflops, rel=1e-6) and "from --imgsz" in again.gflops_method
    assert "--imgsz not used" in reprofile(static, (320, 320)).gflops_method  # a fixed input keeps its size


def test_info_shows_dynamic_dims_and_takes_imgsz(tmp_path, capsys):
    from studio.cli import main
    from studio.report_text import info_text

    path = _save(_paddle_style(_convnet(DYNAMIC)), tmp_path, "paddle")
    text = info_text(load_model(path).summary())
    assert "input      x ?×3×?×? float32 (dynamic: p2o.DynamicDimension.0" in text
    assert f"params     {TRUE_PARAMS:,}  (" in text
    assert main(["info", str(path), "--imgsz", "48,320", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert "x 1×3×48×320" in info["gflops_method"] and info["params"] == TRUE_PARAMS


def test_minus_one_dims_are_dynamic_not_refused(tmp_path):
    """Older paddle2onnx writes dim_value -1 (ch_ppocr_mobile_v2.0_cls_infer.onnx does); onnxruntime runs it."""
    model = _paddle_style(_convnet([1, 3, "h", "w"]))
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        if dim.HasField("dim_param") or dim.dim_value == 1:
            dim.dim_value = -1
    path = tmp_path / "minus_one.onnx"
    onnx.save(model, str(path))
    handle = load_model(path)
    assert handle.inputs[0].shape == ("?", 3, "?", "?")
    assert "x 1×3×640×640" in handle.gflops_method
    with pytest.raises(Exception, match="negative dimension"):  # any other negative size is still refused
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -2
        onnx.save(model, str(path))
        load_model(path)


def test_layer_table_of_constant_weights_covers_the_whole_model(tmp_path):
    from studio.layers import layer_table

    static = load_model(_save(_convnet([1, 3, 640, 640]), tmp_path, "static"))
    paddle = load_model(_save(_paddle_style(_convnet(DYNAMIC)), tmp_path, "paddle"))
    table = layer_table(paddle)
    assert [row["type"] for row in table["rows"]] == ["Conv", "Conv", "MatMul", "Add"]
    assert sum(row["params"] for row in table["rows"]) == TRUE_PARAMS
    shares = sum(row["flops_share"] for row in table["rows"]) + table["other_flops_share"]
    assert shares == pytest.approx(1.0, abs=1e-3)
    assert table["rows"][0]["flops_share"] > 0.3  # the convolutions carry the work, as at 640 they do
    assert table["total_flops"] / 1e9 == pytest.approx(static.gflops, rel=1e-6)
    assert "1×3×640×640" in table["method"]
    assert layer_table(static)["total_flops"] == table["total_flops"]


def test_tf2onnx_nhwc_input_with_unk_dims(tmp_path):
    nchw = load_model(_save(_convnet([1, 3, 640, 640]), tmp_path, "nchw"))
    tf = load_model(_save(_convnet(["unk__12", "unk__13", "unk__14", 3], nhwc=True), tmp_path, "tf2onnx"))
    assert "x 1×640×640×3" in tf.gflops_method
    assert tf.gflops == pytest.approx(nchw.gflops, rel=0.02)  # plus one Transpose
    assert tf.params == TRUE_PARAMS
    from studio.report_text import info_text

    assert "x ?×?×?×3 float32 (dynamic: unk__12, unk__13, unk__14)" in info_text(tf.summary())


def _calibration(shape: tuple[int, ...]):
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.frames = iter([{"x": rng.random(shape, dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.frames, None)

    return Frames()


def test_quantized_weights_count_once(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    source = _save(_convnet([1, 3, 64, 64]), tmp_path, "float")
    quantize_dynamic(source, tmp_path / "dynamic.onnx", weight_type=QuantType.QInt8)
    quantize_static(source, tmp_path / "qdq.onnx", _calibration((1, 3, 64, 64)), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8)
    for name, op in (("dynamic", "ConvInteger"), ("qdq", "DequantizeLinear")):
        path = tmp_path / f"{name}.onnx"
        assert op in {node.op_type for node in onnx.load(str(path)).graph.node}
        handle = load_model(path)
        assert handle.params == TRUE_PARAMS, name  # int8 weights once; scales and zero points not at all
        assert "integers read as quantized weights" in handle.params_method
    from studio.layers import layer_table

    rows = layer_table(load_model(tmp_path / "qdq.onnx"))["rows"]
    assert {row["type"] for row in rows} == {"Conv", "MatMul", "Add"}  # the weight's user, not its DequantizeLinear
    assert sum(row["params"] for row in rows) == TRUE_PARAMS


def test_token_inputs_get_a_stated_length_and_unknown_dims_say_why(tmp_path):
    table = numpy_helper.from_array(np.ones((100, 8), np.float32), "embedding")
    projection = numpy_helper.from_array(np.ones((8, 4), np.float32), "projection")
    nodes = [helper.make_node("Gather", ["embedding", "input_ids"], ["e"]),
             helper.make_node("MatMul", ["e", "projection"], ["y"])]
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", 4])
    graph = helper.make_graph(nodes, "text", [ids], [out], [table, projection])
    text = load_model(_save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path, "text"))
    assert "input_ids 1×128" in text.gflops_method and "128 tokens" in text.gflops_method
    assert text.gflops == pytest.approx(2 * 128 * 8 * 4 / 1e9, rel=0.2)

    frames = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["batch", "frames", 8])
    graph = helper.make_graph([nodes[1]], "audio", [frames], [out], [projection])
    graph.node[0].input[0] = "input_ids"
    audio = load_model(_save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path, "au"))
    assert audio.gflops is None and "unknown" in audio.gflops_method and "frames" in audio.gflops_method


def _rapidocr_det() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapidocr-onnxruntime==1.4.4 is not installed (make install adds it): no real paddle2onnx file")
    return Path(spec.submodule_search_locations[0]) / "models" / "ch_PP-OCRv4_det_infer.onnx"


def test_real_paddle2onnx_file_against_its_initializer_twin(tmp_path):
    """PP-OCRv4's text detector as paddle2onnx wrote it: 342 Constant nodes, no initializer, x ?×3×?×?."""
    source = _rapidocr_det()
    model = onnx.load(str(source))
    assert not model.graph.initializer
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    keep = [node for node in twin.graph.node if node.op_type != "Constant"]
    twin.graph.initializer.extend(numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
                                  for node in twin.graph.node if node.op_type == "Constant")
    del twin.graph.node[:]
    twin.graph.node.extend(keep)
    paddle, plain = load_model(source), load_model(_save(twin, tmp_path, "twin"))
    assert 1_000_000 < paddle.params == plain.params < 1_300_000  # PP-OCRv4 mobile det: ~1.2M
    assert paddle.gflops == pytest.approx(plain.gflops, rel=1e-6) and paddle.gflops > 5  # 5.68 at 640×640
    assert "x 1×3×640×640" in paddle.gflops_method


def test_torch_dynamo_export(tmp_path):
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript, not installed here")
    import torch

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    sides = {2: torch.export.Dim("height", min=32, max=2048), 3: torch.export.Dim("width", min=32, max=2048)}
    path = tmp_path / "dynamo.onnx"
    torch.onnx.export(module, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=True, dynamic_shapes=(sides,))
    handle = load_model(path)
    assert handle.params == sum(p.numel() for p in module.parameters())
    assert "640×640" in handle.gflops_method and handle.gflops > 0.01
