"""Which stored tensors of an ONNX graph are weights, how many elements they hold, and which node uses them.

Exporters store weights in different places: initializers (PyTorch, tf2onnx, onnxruntime's quantizer),
``Constant`` nodes (paddle2onnx), or integers that reach an operator through ``DequantizeLinear``
(quantized graphs). A parameter is one element of a weight, counted once wherever it is stored:
- every floating-point tensor held in an initializer or a Constant node;
- integer tensors only where an operator reads them as quantized weights (``DequantizeLinear``'s data,
  the weight of ``ConvInteger``/``MatMulInteger``/``QLinearConv``/``QLinearMatMul``/``MatMulNBits``),
  so that an INT8 model counts its weights once, at their logical size;
- never quantization scales and zero points (bookkeeping of the number format, not weights), nor
  integer shape, axis and index constants (``Reshape``'s target shape is not a parameter).
Only the graph's structure is read: no weight data is decoded, external data need not be loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# (inputs that are quantized weights, inputs that are scales or zero points) per quantized operator.
_QUANT_ROLES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "DequantizeLinear": ((0,), (1, 2)),
    "QuantizeLinear": ((), (1, 2)),
    "DynamicQuantizeLinear": ((), ()),
    "ConvInteger": ((0, 1), (2, 3)),
    "MatMulInteger": ((0, 1), (2, 3)),
    "QLinearConv": ((3, 8), (1, 2, 4, 5, 6, 7)),
    "QLinearMatMul": ((0, 3), (1, 2, 4, 5, 6, 7)),
    "MatMulNBits": ((1,), (2, 3, 4)),
}
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16 (TensorProto data types)


@dataclass(frozen=True)
class WeightCount:
    """Elements per weight tensor, and where they were found (for the method line)."""

    elements: dict[str, int]  # tensor name -> parameters it holds
    initializers: int  # how many of the weights are initializers
    constants: int  # how many are Constant nodes
    quantized: int  # how many are integer tensors read as quantized weights

    @property
    def total(self) -> int:
        return sum(self.elements.values())

    def method(self) -> str:
        where = f"{self.initializers} initializers and {self.constants} Constant nodes"
        quantized = f", {self.quantized} of them integers read as quantized weights" if self.quantized else ""
        return (f"elements of the weight tensors in {where}{quantized}, each counted once; quantization scales "
                "and zero points and integer shape/index constants are not parameters")


def stored_tensors(graph: Any) -> Iterator[tuple[str, Any, bool]]:
    """(name, TensorProto, is_constant_node) of every tensor the graph stores: initializers, Constant values."""
    for tensor in graph.initializer:
        yield tensor.name, tensor, False
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    yield node.output[0], attribute.t, True
                elif attribute.name == "sparse_value":  # the stored values, not the dense shape
                    yield node.output[0], attribute.sparse_tensor.values, True


def _constant_lists(graph: Any) -> dict[str, int]:
    """Constant nodes holding a float list or a single float (``value_floats``/``value_float``)."""
    found = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value_floats":
                    found[node.output[0]] = len(attribute.floats)
                elif attribute.name == "value_float":
                    found[node.output[0]] = 1
    return found


def _quant_roles(graph: Any) -> tuple[dict[str, int], set[str]]:
    """Tensors read as quantized weights (with their logical element count when packed), and scale/zero tensors."""
    weights: dict[str, int] = {}
    bookkeeping: set[str] = set()
    for node in graph.node:
        roles = _QUANT_ROLES.get(node.op_type)
        if roles is None:
            continue
        for index in roles[0]:
            if index < len(node.input) and node.input[index]:
                weights[node.input[index]] = _packed_elements(node)
        bookkeeping.update(node.input[i] for i in roles[1] if i < len(node.input) and node.input[i])
    # onnxruntime's dynamic quantizer rescales each integer product by (input scale × weight scale): a Mul
    # of a DynamicQuantizeLinear's scale output multiplies scales, so its other operand is a weight's scale.
    runtime_scales = {node.output[1] for node in graph.node
                      if node.op_type == "DynamicQuantizeLinear" and len(node.output) > 1}
    for node in graph.node:
        if node.op_type == "Mul" and runtime_scales.intersection(node.input):
            bookkeeping.update(node.input)
    return weights, bookkeeping


def _packed_elements(node: Any) -> int:
    """MatMulNBits packs several 2-8 bit weights per byte: its K × N attributes give the true count (0: use dims)."""
    if node.op_type != "MatMulNBits":
        return 0
    sizes = {a.name: a.i for a in node.attribute if a.name in ("K", "N")}
    return sizes.get("K", 0) * sizes.get("N", 0)


def count_weights(graph: Any) -> WeightCount:
    """The parameters of ``graph`` (a GraphProto), by the rules in this module's docstring."""
    import math

    quantized, bookkeeping = _quant_roles(graph)
    elements: dict[str, int] = {}
    kinds = {"initializers": 0, "constants": 0, "quantized": 0}
    for name, tensor, is_constant in stored_tensors(graph):
        if name in bookkeeping or name in elements:
            continue
        if name in quantized:
            kinds["quantized"] += 1
        elif tensor.data_type not in _FLOAT_TYPES:
            continue
        elements[name] = quantized.get(name) or math.prod(tensor.dims)
        kinds["constants" if is_constant else "initializers"] += 1
    for name, count in _constant_lists(graph).items():
        if name not in bookkeeping and name not in elements:
            elements[name] = count
            kinds["constants"] += 1
    return WeightCount(elements, **kinds)


def params_by_node(graph: Any, weights: WeightCount) -> dict[str, int]:
    """Parameters per computing node, keyed by the node's first output.

    A weight may reach its operator through nodes that only reshape, cast or dequantize it
    (``Identity``, ``DequantizeLinear``, ``Transpose`` of a Constant…): those run on stored tensors
    alone, so the weight belongs to the first node that also reads the graph's data. Each weight is
    given to one node only (the first in graph order), so the rows add up to the model's count.
    """
    producer = {out: node for node in graph.node for out in node.output}
    static = {name for name, _, _ in stored_tensors(graph)} | set(_constant_lists(graph))
    for node in graph.node:  # ONNX orders nodes topologically: one pass finds every weight-only result
        if all(not name or name in static for name in node.input):
            static.update(node.output)
    claimed: set[str] = set()
    counts: dict[str, int] = {}
    for node in graph.node:
        if not node.output or all(not name or name in static for name in node.input):
            continue
        found = 0
        for name in node.input:
            if name in static:
                found += _claim(name, producer, weights.elements, claimed)
        if found:
            counts[node.output[0]] = found
    return counts


def _claim(name: str, producer: dict[str, Any], elements: dict[str, int], claimed: set[str]) -> int:
    """Elements of the unclaimed weights ``name`` is computed from (itself included), marking them claimed."""
    total, stack = 0, [name]
    while stack:
        current = stack.pop()
        if current in claimed:
            continue
        claimed.add(current)
        total += elements.get(current, 0)
        node = producer.get(current)
        if node is not None and node.op_type != "Constant":
            stack.extend(i for i in node.input if i)
    return total
