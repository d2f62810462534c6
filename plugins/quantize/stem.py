"""The stem: the layers that read the image, kept float in an INT8 graph, and the pool order that lets it run fast.

Why float. onnxruntime's ``QLinearConv`` on a 3-channel image is slower than its float convolution (the
INT8 GEMM's inner dimension is only 3 × k × k): on an AVX-512 VNNI CPU, one thread, the stem of
yolov3-tiny pruned 50 % took 2.9 ms as INT8 and 1.5 ms as float (onnxruntime's profiler), and keeping the
stem float made the whole INT8 graph of each of four zoo models faster, by 7 % (yolo11n-pose) to 37 %
(yolov3-tiny) (``bench/int8_stem.py``; README, "The stem stays float"). It is also the layer whose
quantization the image's own rounding hurts most, which is why quantization toolkits commonly leave the
first layer in higher precision.

Why the reorder. A float stem ending in ``activation → MaxPool`` hands onnxruntime a MaxPool whose output
is quantized; its QDQ propagation moves that quantization above the pool, which then runs on onnxruntime's
generic uint8 MaxPool (3.7 ms against 0.4 ms in float, same graph). A monotone non-decreasing activation
commutes exactly with a max (f(max(a, b)) = max(f(a), f(b))), so pooling first and activating the pooled
tensor gives the same numbers, keeps the pool float, and activates a quarter of the elements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.quantize.sensitivity import SKIPPED_OPS, WEIGHT_OPS

# Elementwise activations that never decrease: max and f commute exactly for these.
MONOTONE_ACTIVATIONS = {"Relu", "Sigmoid", "Tanh", "HardSigmoid", "Clip", "Softplus", "Elu", "Selu"}


def _monotone(node: Any) -> bool:
    if node.op_type not in MONOTONE_ACTIVATIONS | {"LeakyRelu"}:
        return False
    # LeakyRelu, HardSigmoid, Elu and Selu stay non-decreasing only while their slopes are non-negative
    return all(a.f >= 0 for a in node.attribute if a.name in ("alpha", "gamma"))


def pool_before_activation(graph: Any) -> int:
    """Rewrite every ``activation → MaxPool`` (the activation's output read by the pool alone, and not a graph
    output) as ``MaxPool → activation``, in place; how many were rewritten. The graph computes the same."""
    nodes = list(graph.node)
    readers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    moved = []
    for act in nodes:
        if not _monotone(act) or len(act.output) != 1 or act.output[0] in outputs:
            continue
        pools = readers.get(act.output[0], [])
        if len(pools) != 1 or pools[0].op_type != "MaxPool" or len(pools[0].output) != 1:
            continue  # a MaxPool with an Indices output would change meaning; a second reader needs the unpooled
        pool = pools[0]
        unpooled, pooled = act.output[0], pool.output[0]
        # the pool reads what the activation read and writes a new tensor; the activation writes the pool's
        # old output, so its readers and its recorded shape stay right; the activation's old tensor is gone
        pool.input[0] = act.input[0]
        pool.output[0] = act.input[0] = f"{pooled}_before_{act.op_type}"
        act.output[0] = pooled
        moved.append((act, pool, unpooled))
    if not moved:
        return 0
    order = [n for n in nodes if all(n is not act for act, _, _ in moved)]
    for act, pool, _ in moved:  # the activation now reads the pool: list it right after (topological order)
        order.insert(next(i for i, n in enumerate(order) if n is pool) + 1, act)
    gone = {unpooled for _, _, unpooled in moved}
    kept_info = [info for info in graph.value_info if info.name not in gone]
    # copies first: clearing a repeated field releases the messages it held
    order, kept_info = [_copy(n) for n in order], [_copy(i) for i in kept_info]
    graph.ClearField("node")
    graph.node.extend(order)
    graph.ClearField("value_info")
    graph.value_info.extend(kept_info)
    return len(moved)


def _copy(message: Any) -> Any:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def stem_nodes(graph: Any) -> list[str]:
    """The weight layers that read the image, and the non-weight ops after them up to the next weight layers.

    An op joins only when every tensor it reads comes from the stem, the image or a constant, so a branch that
    merges other layers (a Concat, a residual Add) is never pulled in. Names, in graph order; empty for a
    graph without named nodes or whose input no weight layer reads first.
    """
    initializers = {init.name for init in graph.initializer}
    # every real input (older graphs list their weights as inputs too): a detector exported with its image size
    # or scale as extra inputs (PaddleDetection) has its image among them
    inputs = {i.name for i in graph.input} - initializers
    constants = initializers | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    produced: set[str] = set(inputs)
    region: list[str] = []
    stem_started = False
    for node in graph.node:  # graph order is topological: one pass sees every producer first
        if node.op_type == "Constant":
            continue
        data = [name for name in node.input if name and name not in constants]
        if not data or not all(name in produced for name in data):
            continue
        if node.op_type in WEIGHT_OPS:
            if stem_started and not inputs & set(data):
                continue  # the next weight layer: the stem ends before it
            stem_started = True
        if not node.name:
            return []  # onnxruntime's exclusion works by node name
        if node.op_type not in SKIPPED_OPS:  # shape arithmetic on the image is never quantized anyway
            region.append(node.name)
        produced.update(node.output)
    return region if stem_started else []


def keep_stem_float(float_graph: Path) -> dict[str, Any]:
    """Prepare ``float_graph`` (in place) for a float stem: pools before their activations; the stem's node names.

    The report part: ``nodes`` to exclude from quantization, ``pools_moved`` by the rewrite, and why.
    """
    import onnx

    proto = onnx.load(str(float_graph))
    moved = pool_before_activation(proto.graph)
    if moved:
        onnx.save(proto, str(float_graph))
    return {"nodes": stem_nodes(proto.graph), "pools_moved": moved,
            "why": "the layers that read the image stay float: onnxruntime's INT8 convolution is slower than float "
                   "on 3 input channels, and the first layer is the one quantization hurts most"}
