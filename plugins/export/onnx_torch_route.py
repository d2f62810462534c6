"""An ONNX-only model as a PyTorch module (onnx2torch), so the PyTorch converters (litert-torch, coremltools)
can take it: third-party ``.onnx`` files and any float graph the studio can run.

The graph is first fixed to one static input shape (dynamic dims take the model's image size) and folded
by onnxslim, so shape arithmetic becomes constants the converters can trace; opset 18's changes (Split's
``num_outputs``, Reduce*'s ``axes`` input, Resize's new attributes) are written back to their opset 17
form, the newest onnx2torch reads (ONNX's own version converter has no 18→17 adapter for Split). The module
is checked against onnxruntime on one real frame before anyone uses it. A graph onnx2torch cannot take is
refused in one line naming the operator. A float16 graph (the studio's FP16 variant) is widened to float32
first; an INT8 QDQ graph is refused (TFLite and CoreML quantize from the float model themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UnsupportedError
from studio.model import ImageInput, ModelHandle
from studio.tasks import TaskContext

OPSET = 17  # onnx2torch's newest converters (LayerNormalization 17); 18 is rewritten to it below
# Largest |torch − onnxruntime| accepted, relative to the output's own scale (pixel boxes reach 640, scores
# 1): converter bugs show up as differences of the output's order of magnitude, float rounding far below.
TOLERANCE = 1e-3
# A float16 graph's activations round in onnxruntime (about 1e-3 of the value each), the module's do not.
TOLERANCE_FLOAT16 = 1e-2
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger",
                           "QLinearMatMul", "DynamicQuantizeLinear", "MatMulNBits"})
_REDUCE_AXES_INPUT_18 = frozenset({"ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2",
                                   "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16

_modules: dict[tuple[str, tuple[int, ...]], tuple[Any, float]] = {}  # (graph sha256, shape) → (module, |Δ|)
_reasons: dict[tuple[str, int, int], list[str]] = {}  # (path, size, mtime) → why the route cannot take it


def input_shape(model: ModelHandle) -> tuple[int, ...]:
    """The one static input shape the module is built for: declared dims, dynamic ones from the image size."""
    declared = model.inputs[0].shape
    if len(declared) == 4 and (model.image_input is not None or not all(isinstance(d, int) for d in declared)):
        height, width = model.image_input.size if model.image_input else (640, 640)
        fill = (1, 3, height, width)
        return tuple(int(d) if isinstance(d, int) and d > 0 else fill[i] for i, d in enumerate(declared))
    return tuple(int(d) if isinstance(d, int) and d > 0 else 1 for d in declared)


def route_reasons(model: ModelHandle) -> list[str]:
    """Why ``model``'s ONNX graph cannot become a PyTorch module (empty when it can), read from the graph's
    operators without converting anything: cheap enough for ``Exporter.check``."""
    path = model.onnx_path
    if path is None:
        return ["it has no ONNX graph"]
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _reasons:
        _reasons[key] = _graph_reasons(path)
    return list(_reasons[key])


def _graph_reasons(path: Path) -> list[str]:
    import onnx
    from onnx2torch.node_converters.registry import get_converter  # type: ignore[import-untyped,unused-ignore]

    graph = onnx.load(str(path), load_external_data=False)
    if len(graph.graph.input) - len({i.name for i in graph.graph.initializer}) > 1:
        return ["it takes more than one input, and the converters are given one image tensor"]
    ops = {node.op_type for node in graph.graph.node}
    quantized = sorted(ops & QUANTIZED_OPS)
    if quantized:
        return [f"it is already quantized ({quantized[0]} nodes), and TFLite/CoreML quantize from the float "
                "model: export the float model with --precision int8 instead"]
    opset = min(_opset(graph), OPSET)
    for node in graph.graph.node:
        try:
            get_converter(node.op_type, opset, node.domain or "")
        except NotImplementedError:
            return [f"onnx2torch has no converter for its {node.op_type} operator "
                    f"({node.domain or 'ai.onnx'} opset {_opset(graph)}, node {node.name or '?'})"]
    return []


def _opset(graph: Any) -> int:
    return max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)


def torch_module(model: ModelHandle, frame: np.ndarray | None = None) -> tuple[Any, float]:
    """(``model``'s ONNX graph as a PyTorch module at ``input_shape(model)``, its max |Δ| against onnxruntime on
    one real frame — a bundled one unless ``frame`` is given); cached per graph and shape in this process."""
    from studio.hashing import sha256_file

    reasons = route_reasons(model)
    if reasons:
        raise UnsupportedError(f"{model.name} cannot become a PyTorch module: {reasons[0]}", path=model.onnx_path)
    assert model.onnx_path is not None  # route_reasons refuses a model without one
    shape = input_shape(model)
    key = (sha256_file(Path(model.onnx_path)), shape)
    if key not in _modules:
        import warnings

        with warnings.catch_warnings():  # onnx2torch's deprecation notes are not the user's concern
            warnings.simplefilter("ignore")
            graph = static_graph(Path(model.onnx_path), shape)
            module = _convert(graph, model)
            _modules[key] = module, check_against_onnxruntime(module, model, shape, frame)
    return _modules[key]


def with_torch_module(model: ModelHandle) -> tuple[ModelHandle, dict[str, Any]]:
    """``model`` with its graph's PyTorch module (its input now the static shape the module was built for),
    and what the report says about the conversion."""
    from importlib.metadata import version

    module, delta = torch_module(model)
    shape = input_shape(model)
    first = model.inputs[0]
    inputs = (first.__class__(first.name, shape, first.dtype), *model.inputs[1:])
    details = {"route": f"ONNX → PyTorch (onnx2torch {version('onnx2torch')}, input fixed to "
                        f"{'×'.join(map(str, shape))}) → converter",
               "onnx2torch_max_abs_diff": round(delta, 6)}
    return model.replace(torch_module=module, inputs=inputs), details


def static_graph(path: Path, shape: tuple[int, ...]) -> Any:
    """The graph at ``path`` with its input fixed to ``shape``, folded, at opset ``OPSET`` at most."""
    import onnx
    import onnxslim

    graph = onnx.load(str(path))
    if is_float16(graph):
        _to_float32(graph)
    initializers = {init.name for init in graph.graph.initializer}
    source = next(i for i in graph.graph.input if i.name not in initializers)
    for dim, size in zip(source.type.tensor_type.shape.dim, shape, strict=True):
        dim.Clear()
        dim.dim_value = size
    del graph.graph.value_info[:]  # shapes inferred for the dynamic input no longer hold
    for output in graph.graph.output:  # recomputed by the folding below
        output.type.tensor_type.ClearField("shape")
    if _opset(graph) > 18:
        from onnx import version_converter

        try:
            graph = version_converter.convert_version(graph, 18)
        except Exception as exc:  # its adapters raise RuntimeError/ValueError with C++ text
            raise UnsupportedError(f"opset {_opset(graph)} could not be brought down to 18 ({_short(exc)})",
                                   path=path, fix="re-export the model at opset 17 or lower") from exc
    graph = onnxslim.slim(graph)
    if _opset(graph) > OPSET:
        _to_opset_17(graph, path)
    return graph


def is_float16(graph: Any) -> bool:
    """Whether most weights are float16 (the studio's FP16 variant, onnxruntime's float16 converter)."""
    weights = graph.graph.initializer
    return bool(weights) and sum(1 for init in weights if init.data_type == _FLOAT16) > len(weights) / 2


def _to_float32(graph: Any) -> None:
    """A float16 graph computed in float32, in place: weights widened (exactly), casts to float16 now to float32.
    The PyTorch converters then start from float32, as they do from any float model."""
    from onnx import TensorProto, numpy_helper

    def widened(tensor: Any) -> Any:
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)

    for index, init in enumerate(graph.graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            graph.graph.initializer[index].CopyFrom(widened(init))
    for node in graph.graph.node:
        for attribute in node.attribute:
            if attribute.type == attribute.TENSOR and attribute.t.data_type == TensorProto.FLOAT16:
                attribute.t.CopyFrom(widened(attribute.t))
            elif node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT16:
                attribute.i = TensorProto.FLOAT
    for value in (*graph.graph.input, *graph.graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT


def _to_opset_17(graph: Any, path: Path) -> None:
    """Opset 18's operator changes written back in their opset 17 form, in place."""
    from onnx import helper, numpy_helper

    constants = {init.name: init for init in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t

    def refuse(node: Any, why: str) -> UnsupportedError:
        return UnsupportedError(f"its {node.op_type} operator (node {node.name or '?'}) {why}, which has no "
                                f"opset {OPSET} form for onnx2torch", path=path,
                                fix="re-export the model at opset 17 or lower")

    for node in graph.graph.node:
        attributes = {a.name: a for a in node.attribute}
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Split" and "num_outputs" in attributes:
            # Opset 13 splits evenly into as many parts as the node has outputs: the same when they divide.
            node.attribute.remove(attributes["num_outputs"])
        elif node.op_type in _REDUCE_AXES_INPUT_18:
            noop = attributes.get("noop_with_empty_axes")
            if noop is not None:
                if noop.i and (len(node.input) < 2 or not node.input[1]):
                    raise refuse(node, "is a no-op with empty axes")
                node.attribute.remove(noop)
            if len(node.input) >= 2 and node.input[1]:
                if node.input[1] not in constants:
                    raise refuse(node, "takes its axes from a computed tensor")
                axes = [int(a) for a in numpy_helper.to_array(constants[node.input[1]]).ravel()]
                del node.input[1:]
                node.attribute.append(helper.make_attribute("axes", axes))
        elif node.op_type == "Resize":
            if "antialias" in attributes and attributes["antialias"].i:
                raise refuse(node, "antialiases")
            if "axes" in attributes:
                raise refuse(node, "resizes only some axes")
            policy = attributes.get("keep_aspect_ratio_policy")
            if policy is not None and policy.s not in (b"", b"stretch"):
                raise refuse(node, "keeps the aspect ratio")
            for name in ("antialias", "axes", "keep_aspect_ratio_policy"):
                if name in attributes:
                    node.attribute.remove(attributes[name])
        elif node.op_type == "Pad" and len(node.input) >= 4 and node.input[3]:
            raise refuse(node, "pads only some axes")
    for opset in graph.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = OPSET


def _convert(graph: Any, model: ModelHandle) -> Any:
    """onnx2torch's module for ``graph``; a converter that fails names its operator."""
    from onnx2torch import convert  # type: ignore[import-untyped,unused-ignore]

    try:
        module = convert(graph).eval()
    except (NotImplementedError, KeyError, ValueError, TypeError, AttributeError) as exc:
        node = _failing_node(graph)
        where = f"its {node.op_type} operator (node {node.name or '?'})" if node is not None else "the graph"
        raise UnsupportedError(f"onnx2torch cannot convert {where}: {_short(exc)}", path=model.onnx_path,
                               fix="export TFLite/CoreML from the PyTorch model, or re-export the ONNX without "
                                   "that operator") from exc
    return _bake_constants(module)


# onnx2torch modules that read an input with ``.tolist()``/``.item()`` (sizes, axes, pads): given a stored
# tensor, torch.export sees data-dependent values and stops. Their constant inputs become Python values.
_READ_AS_VALUES = {"OnnxResize": ("roi", "scales", "sizes"), "OnnxSplit13": ("split",),
                   "OnnxPadDynamic": ("pads", "constant_value"),
                   "OnnxCumSum": ("axis",)}


class _Values:
    """A constant input as the few tensor methods those modules call on it, answered in Python."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def tolist(self) -> Any:
        return self.values.tolist()

    def nelement(self) -> int:
        return int(self.values.size)

    numel = nelement

    def item(self) -> Any:
        return self.values.item()


def _stored(module: Any, target: str) -> np.ndarray:
    """The value of the buffer an fx ``get_attr`` node reads."""
    owner, _, name = target.rpartition(".")
    return (module.get_submodule(owner) if owner else module).get_buffer(name).detach().numpy()


def _bake_constants(module: Any) -> Any:
    """``module`` (an fx.GraphModule) with the constant inputs of ``_READ_AS_VALUES`` modules bound as values."""
    import inspect

    import torch
    from torch import fx

    class WithValues(torch.nn.Module):
        def __init__(self, inner: Any, values: dict[str, Any], order: list[str]):
            super().__init__()
            self.inner, self.values, self.order = inner, values, order

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(self.order, tensors, strict=True)), **self.values)

    class Reshape(torch.nn.Module):  # ONNX's 0 keeps the input's dim; every other size is now a Python int
        def __init__(self, shape: list[int]):
            super().__init__()
            self.shape = shape

        def forward(self, input_tensor: Any) -> Any:
            return input_tensor.reshape([input_tensor.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])

    class Slice(torch.nn.Module):  # onnx2torch's own slicing, its bounds computed once from the constants
        def __init__(self, *bounds: Any):
            from onnx2torch.node_converters.slice import _get_slices  # type: ignore[import-untyped,unused-ignore]

            super().__init__()
            starts, ends, axes, steps = bounds
            self.flip, self.positive, self.negative = _get_slices(
                starts, ends, None if axes is None else torch.from_numpy(axes),
                None if steps is None else torch.from_numpy(steps))

        def forward(self, input_tensor: Any) -> Any:
            if self.flip:
                input_tensor = torch.flip(input_tensor, dims=self.flip)
            if self.positive:
                input_tensor = input_tensor[tuple(self.positive)]
            if self.negative:
                input_tensor = input_tensor[tuple(self.negative)]
            return input_tensor

    class Gather(torch.nn.Module):  # numpy.take with constant indices: a scalar index selects, an array indexes
        def __init__(self, axis: int, indices: np.ndarray):
            super().__init__()
            self.axis, self.indices = axis, indices

        def forward(self, input_tensor: Any) -> Any:
            axis = self.axis % input_tensor.dim()
            size = input_tensor.shape[axis]
            if self.indices.ndim == 0:
                return input_tensor.select(axis, int(self.indices) % size)
            flat = torch.tensor([int(i) % size for i in self.indices.ravel()], dtype=torch.long)
            taken = input_tensor.index_select(axis, flat)
            return taken.reshape((*input_tensor.shape[:axis], *self.indices.shape, *input_tensor.shape[axis + 1:]))

    def constant(value: Any) -> bool:
        return isinstance(value, fx.Node) and value.op == "get_attr"

    changed = False
    for node in list(module.graph.nodes):
        if node.op != "call_module":
            continue
        inner = module.get_submodule(node.target)
        kind = type(inner).__name__
        if kind == "OnnxReshape" and len(node.args) == 2 and constant(node.args[1]) and not node.kwargs:
            module.add_submodule(node.target, Reshape([int(d) for d in _stored(module, str(node.args[1].target))]))
            node.args = node.args[:1]
            changed = True
            continue
        if kind == "OnnxSlice" and not node.kwargs and 3 <= len(node.args) <= 5 and all(map(constant, node.args[1:])):
            bounds = [_stored(module, str(arg.target)) for arg in node.args[1:]]
            module.add_submodule(node.target, Slice(*bounds, *[None] * (5 - len(node.args))))
            node.args = node.args[:1]
            changed = True
            continue
        if kind in ("OnnxGather", "OnnxUnsqueezeDynamicAxes") and len(node.args) == 2 and constant(node.args[1]) \
                and not node.kwargs:
            from onnx2torch.node_converters.unsqueeze import (  # type: ignore[import-untyped,unused-ignore]
                OnnxUnsqueezeStaticAxes,
            )

            stored = _stored(module, str(node.args[1].target))
            module.add_submodule(node.target, Gather(inner._axis, stored) if kind == "OnnxGather"
                                 else OnnxUnsqueezeStaticAxes([int(a) for a in stored.ravel()]))
            node.args = node.args[:1]
            changed = True
            continue
        names = _READ_AS_VALUES.get(kind)
        if not names:
            continue
        bound = inspect.signature(inner.forward).bind(*node.args, **node.kwargs).arguments
        values: dict[str, Any] = {}
        for name in names:
            source = bound.get(name)
            if isinstance(source, fx.Node) and source.op == "get_attr":
                array = _stored(module, str(source.target))
                values[name] = float(array.item()) if name == "constant_value" else _Values(array)
        if not values:
            continue
        order = [name for name in bound if name not in values]
        module.add_submodule(node.target, WithValues(inner, values, order))
        node.args, node.kwargs = tuple(bound[name] for name in order), {}
        changed = True
    if changed:
        module.graph.eliminate_dead_code()
        module.recompile()
    return module


def _failing_node(graph: Any) -> Any:
    """The first node whose converter raises on its own (onnx2torch's errors rarely name the node)."""
    from onnx2torch.node_converters.registry import get_converter  # type: ignore[import-untyped,unused-ignore]
    from onnx2torch.onnx_graph import OnnxGraph  # type: ignore[import-untyped,unused-ignore]

    wrapped = OnnxGraph(graph.graph)
    for proto, node in zip(graph.graph.node, wrapped.nodes.values(), strict=True):
        try:
            get_converter(node.operation_type, _opset(graph), node.domain)(node, wrapped)
        except Exception:  # any failure of one converter is the answer sought
            return proto
    return None


def check_against_onnxruntime(module: Any, model: ModelHandle, shape: tuple[int, ...],
                              frame: np.ndarray | None = None) -> float:
    """The largest |torch − onnxruntime| of the outputs on one real frame, relative to each output's scale;
    refused above ``TOLERANCE`` (``TOLERANCE_FLOAT16`` for a float16 graph) with the measured difference."""
    import onnx
    import onnxruntime as ort
    import torch

    tolerance = TOLERANCE_FLOAT16 if is_float16(onnx.load(str(model.onnx_path), load_external_data=False)) \
        else TOLERANCE

    tensor = _frame_tensor(model, shape, frame)
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    try:
        expected = session.run(None, {session.get_inputs()[0].name: tensor})
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
        raise UnsupportedError(f"onnxruntime cannot run the graph at input {'×'.join(map(str, shape))} "
                               f"({_short(exc)})", path=model.onnx_path,
                               fix="give the input's size in the graph (a fixed shape), or export from the "
                                   "PyTorch model") from exc
    with torch.no_grad():
        got = module(torch.from_numpy(tensor))
    got = [got] if isinstance(got, torch.Tensor) else list(got)
    worst, worst_abs = 0.0, 0.0
    for index, (a, b) in enumerate(zip(expected, got, strict=False)):
        b = b.detach().numpy()
        if a.shape != b.shape:
            raise UnsupportedError(f"the PyTorch module's output {index} has shape {b.shape}, onnxruntime's "
                                   f"{a.shape}", path=model.onnx_path, fix="export from the PyTorch model")
        if a.size == 0 or not np.issubdtype(a.dtype, np.floating):
            continue
        delta = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
        scale = max(1.0, float(np.abs(a).max()))
        worst, worst_abs = max(worst, delta / scale), max(worst_abs, delta)
    if worst > tolerance:
        raise UnsupportedError(f"the PyTorch module rebuilt from the ONNX graph differs from onnxruntime by "
                               f"max |Δ| {worst_abs:.3g} on one frame ({worst:.2g} of the output's scale, more than "
                               f"{tolerance:g})", path=model.onnx_path, fix="export from the PyTorch model")
    return worst_abs


def _frame_tensor(model: ModelHandle, shape: tuple[int, ...], frame: np.ndarray | None) -> np.ndarray:
    """One bundled frame pre-processed as the model wants (a plain 0–1 letterbox for a tensor model)."""
    from studio.evaluate.frames import judging_frames
    from studio.runtime.preprocess import prepare

    if frame is None:
        frame = judging_frames(1)[0][0]
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise UnsupportedError(f"its input {shape} is not an image, and the check runs one real frame",
                               fix="export from the PyTorch model")
    spec = model.image_input or ImageInput(size=(shape[2], shape[3]))
    tensor = prepare(frame, spec, (shape[2], shape[3]), rect=False)[0]
    if shape[1] == 1:
        tensor = tensor.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(tensor, dtype=np.float32)


def _short(exc: BaseException) -> str:
    from studio.errors import first_line

    return first_line(exc, 160)


def convertible_torch(model: ModelHandle, ctx: TaskContext) -> tuple[ModelHandle, dict[str, Any]]:
    """The model a PyTorch converter (litert-torch, coremltools) starts from: the model itself when it has a
    PyTorch module, else its ONNX graph rebuilt as one (with what the rebuild measured)."""
    if model.torch_module is not None:
        return model, {}
    ctx.progress(0.02, "rebuilding the ONNX graph as a PyTorch module (onnx2torch)")
    return with_torch_module(model)
