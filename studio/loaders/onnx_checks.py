"""Structural checks of an ONNX graph before anything reads its weights or builds a session.

A file from a stranger may declare a cycle, read tensors nothing produces, declare 10^12-element
tensors, or point its external data at ``/etc/passwd``. onnx's own checker refuses things onnxruntime
runs happily (outputs without a shape), so these checks are the studio's own and refuse only what
cannot be a working model, each with a message that says which tensor or node is wrong.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from studio.errors import BadInputError

# More elements than this in one declared input is not a model a device runs (2^31: 8 GB of float32).
MAX_INPUT_ELEMENTS = 1 << 31
# Operator domains onnxruntime implements besides the default one (and the model's own functions).
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc",
                 "ai.onnx.training", "ai.onnx.preview.training", "com.microsoft.experimental"}
_FIX = "re-export the model from its framework; the file is damaged or was not written by an exporter"


def check_onnx(model: Any, path: Path) -> None:
    graph = model.graph
    if not graph.output:
        raise BadInputError("the ONNX graph declares no outputs", path=path, fix=_FIX)
    _check_opsets(model, path)
    _check_operators(model, path)
    _check_order(graph, path)
    _check_input_sizes(graph, path)
    for tensor in graph.initializer:
        _check_initializer(tensor, path)


def _check_opsets(model: Any, path: Path) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise BadInputError(f"the graph asks for ONNX opset {opset.version}; the newest this studio knows is "
                                f"{newest}", path=path, fix="export with an older opset (opset=17 is widely run)")


def _check_operators(model: Any, path: Path) -> None:
    import onnx

    functions = {(f.domain, f.name) for f in model.functions}
    unknown: set[str] = set()
    for node in model.graph.node:
        if (node.domain, node.op_type) in functions:
            continue
        if node.domain in ("", "ai.onnx"):
            if not onnx.defs.has(node.op_type):
                unknown.add(node.op_type)
        elif node.domain not in KNOWN_DOMAINS:
            unknown.add(f"{node.domain}.{node.op_type}")
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise BadInputError(f"the graph uses operators onnxruntime does not implement ({shown})", path=path,
                            fix="export with standard operators, or register the custom-op library it needs")


def _check_order(graph: Any, path: Path) -> None:
    """Every node input is produced by a graph input, an initializer or another node, without a cycle."""
    available = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            producer[name] = index
    waiting_on: dict[int, int] = {}
    consumers: dict[int, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.node):
        needed = set()
        for name in node.input:
            if name in available:
                continue
            if name not in producer:
                raise BadInputError(f"node '{node.name or node.op_type}' reads '{name}', which no input, weight or "
                                    "node provides (a dangling graph)", path=path, fix=_FIX)
            needed.add(producer[name])
        waiting_on[index] = len(needed)
        for source in needed:
            consumers[source].append(index)
    ready = deque(index for index, count in waiting_on.items() if count == 0)
    done = 0
    while ready:
        index = ready.popleft()
        done += 1
        for consumer in consumers[index]:
            waiting_on[consumer] -= 1
            if waiting_on[consumer] == 0:
                ready.append(consumer)
    if done != len(graph.node):
        stuck = next(graph.node[i] for i, count in waiting_on.items() if count > 0)
        raise BadInputError(f"the graph has a cycle (node '{stuck.name or stuck.op_type}' depends on its own output)",
                            path=path, fix=_FIX)
    produced = available | set(producer)
    for value in graph.output:
        if value.name not in produced:
            raise BadInputError(f"output '{value.name}' is produced by no node", path=path, fix=_FIX)


def _check_input_sizes(graph: Any, path: Path) -> None:
    for value in graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if any(d < -1 for d in dims):
            raise BadInputError(f"input '{value.name}' declares a negative dimension", path=path, fix=_FIX)
        dims = [d for d in dims if d != -1]  # paddle2onnx's and older exporters' "any size", as onnxruntime reads it
        elements = math.prod(dims) if dims else 0
        if elements > MAX_INPUT_ELEMENTS:
            raise BadInputError(f"input '{value.name}' declares {elements:.3g} elements (shape {dims}); no device "
                                "runs that", path=path, fix="export with the input size the model was trained at")


def _itemsize(data_type: int) -> int | None:
    import onnx

    if data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, ValueError, TypeError):
        return None  # 4-bit and float8 types: sizes not checked here


def _check_initializer(tensor: Any, path: Path) -> None:
    import onnx

    if any(d < 0 for d in tensor.dims):
        raise BadInputError(f"weight '{tensor.name}' declares a negative dimension", path=path, fix=_FIX)
    expected = math.prod(tensor.dims)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        _check_external(tensor, expected, path)
        return
    itemsize = _itemsize(tensor.data_type)
    if itemsize is None:
        return
    if tensor.raw_data:
        held = len(tensor.raw_data) // itemsize
    else:
        held = max(len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data), len(tensor.double_data),
                   len(tensor.uint64_data))
        if tensor.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
            held //= 2
    if held != expected:
        raise BadInputError(f"weight '{tensor.name}' declares {expected:,} values (shape {list(tensor.dims)}) but "
                            f"holds {held:,}", path=path, fix=_FIX)


def _check_external(tensor: Any, expected: int, path: Path) -> None:
    """External data must be a file inside the model's folder, long enough for the tensor."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    folder = path.resolve().parent
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
        raise BadInputError(f"weight '{tensor.name}' points at '{location}', outside the model's folder; the studio "
                            "reads external data only from beside the model", path=path,
                            fix="keep the .onnx and its data file together in one folder")
    if not target.is_file():
        raise BadInputError(f"the external data file '{location}' of weight '{tensor.name}' is missing", path=path,
                            fix="copy the data file that came with the model beside it")
    try:
        offset, length = int(entries.get("offset", 0)), int(entries.get("length", -1))
    except ValueError:
        raise BadInputError(f"weight '{tensor.name}' has an unreadable external-data offset or length",
                            path=path, fix=_FIX) from None
    size = target.stat().st_size
    itemsize = _itemsize(tensor.data_type)
    needed = length if length >= 0 else (expected * itemsize if itemsize else 0)
    if offset < 0 or offset + needed > size:
        raise BadInputError(f"weight '{tensor.name}' needs bytes {offset}..{offset + needed} of '{location}', "
                            f"which holds {size}", path=path, fix="the data file is truncated: copy it again")
