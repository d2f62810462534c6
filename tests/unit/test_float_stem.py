"""The float stem of the INT8 quantizers: which nodes it keeps float, and the exact pool-before-activation rewrite."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from plugins.quantize.stem import pool_before_activation, stem_nodes

RNG = np.random.default_rng(0)


def _weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes: list, initializers: list, outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])
    answers = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["n", "c", "h", "w"]) for o in outputs]
    graph = helper.make_graph(nodes, "g", [image], answers, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})


def _darknet_stem(alpha: float = 0.1, pool_outputs: tuple[str, ...] = ("p",), extra: list | None = None):
    nodes = [helper.make_node("Conv", ["images", "w0"], ["c"], name="/0/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c"], ["a"], name="/0/LeakyRelu", alpha=alpha),
             helper.make_node("MaxPool", ["a"], list(pool_outputs), name="/1/MaxPool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Conv", ["p", "w1"], ["y"], name="/2/Conv"), *(extra or [])]
    return _model(nodes, [_weight("w0", (8, 3, 3, 3)), _weight("w1", (4, 8, 1, 1))],
                  ("y", *(n.output[0] for n in extra or [])))


def test_a_pool_after_a_monotone_activation_runs_first_and_the_graph_computes_exactly_the_same():
    model = _darknet_stem()
    model.graph.value_info.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 8, 16, 16]))
    x = RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)
    before = _run(model, x)
    assert pool_before_activation(model.graph) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "MaxPool", "LeakyRelu", "Conv"]
    assert "a" not in {info.name for info in model.graph.value_info}  # its recorded shape is no longer true
    np.testing.assert_array_equal(_run(model, x)[0], before[0])  # max and a monotone f commute exactly


@pytest.mark.parametrize("case", ["negative slope", "pool indices", "second reader"])
def test_a_pool_stays_after_its_activation_where_moving_it_would_change_the_answers(case):
    if case == "negative slope":  # LeakyRelu with alpha < 0 decreases on negatives: max no longer commutes
        model = _darknet_stem(alpha=-0.5)
    elif case == "pool indices":  # argmax positions of the activated tensor are the graph's answer
        model = _darknet_stem(pool_outputs=("p", "indices"))
    else:  # another node reads the unpooled activation
        model = _darknet_stem(extra=[helper.make_node("Relu", ["a"], ["side"], name="/side/Relu")])
    ops = [n.op_type for n in model.graph.node]
    assert pool_before_activation(model.graph) == 0
    assert [n.op_type for n in model.graph.node] == ops


def test_the_stem_is_the_layer_reading_the_image_and_what_follows_it_up_to_the_next_layer():
    nodes = [helper.make_node("Sub", ["images", "mean"], ["n"], name="/norm/Sub"),
             helper.make_node("Conv", ["n", "w0"], ["c"], name="/0/conv/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"], name="/0/act/Sigmoid"),
             helper.make_node("Mul", ["c", "s"], ["a"], name="/0/act/Mul"),
             helper.make_node("Conv", ["a", "w1"], ["b"], name="/1/conv/Conv"),
             # joins the stem with a later layer: float only if every input came from the stem
             helper.make_node("Concat", ["a", "b"], ["j"], name="/2/Concat", axis=1),
             helper.make_node("Shape", ["images"], ["shape"], name="/head/Shape"),
             helper.make_node("Conv", ["j", "w2"], ["y"], name="/3/conv/Conv")]
    model = _model(nodes, [_weight("mean", (1, 3, 1, 1)), _weight("w0", (8, 3, 3, 3)), _weight("w1", (8, 8, 1, 1)),
                           _weight("w2", (4, 16, 1, 1))])
    onnx.checker.check_model(model)
    assert stem_nodes(model.graph) == ["/norm/Sub", "/0/conv/Conv", "/0/act/Sigmoid", "/0/act/Mul"]


def test_a_graph_whose_image_no_layer_reads_has_no_stem():
    nodes = [helper.make_node("Flatten", ["images"], ["f"], name="/flat"),
             helper.make_node("Relu", ["f"], ["y"], name="/relu")]
    assert stem_nodes(_model(nodes, []).graph) == []


def test_the_stem_is_found_when_the_image_is_not_the_first_input():
    """PaddleDetection exports take (im_shape, image, scale_factor): the image is one input among others."""
    nodes = [helper.make_node("Conv", ["images", "w0"], ["c"], name="/0/Conv"),
             helper.make_node("Relu", ["c"], ["r"], name="/0/Relu"),
             helper.make_node("Conv", ["r", "w1"], ["y"], name="/1/Conv")]
    model = _model(nodes, [_weight("w0", (8, 3, 3, 3)), _weight("w1", (4, 8, 1, 1))])
    model.graph.input.insert(0, helper.make_tensor_value_info("im_shape", TensorProto.FLOAT, [1, 2]))
    onnx.checker.check_model(model)
    assert stem_nodes(model.graph) == ["/0/Conv", "/0/Relu"]
