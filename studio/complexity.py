"""Parameter and FLOP counts, each with the method that produced it (the UI and CLI show both)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import first_line
from studio.model import ModelHandle
from studio.torch_lock import TORCH_MODULE_LOCK


def torch_params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def torch_gflops(module: Any, input_shape: tuple[int, ...]) -> tuple[float | None, str]:
    """GFLOPs of one forward pass counted by ``torch.utils.flop_counter`` (FLOPs = 2 × MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with TORCH_MODULE_LOCK:  # the counter's hooks are global: no other thread may run a module meanwhile
            probe = copy.deepcopy(module).float().eval()  # outside the counter: a copy under it crawls
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                probe(torch.zeros(*input_shape))
    except Exception as exc:  # a model that cannot run on zeros still loads; the count is just unknown
        return None, f"unavailable: {type(exc).__name__}: {first_line(exc, 120)}"
    shape = "×".join(str(d) for d in input_shape)
    return counter.get_total_flops() / 1e9, f"torch.utils.flop_counter, input {shape}, FLOPs = 2×MACs"


def onnx_params(model: Any) -> int:
    """Parameters of an ONNX model: its weights wherever the exporter stored them (see ``studio.onnx_weights``)."""
    from studio.onnx_weights import count_weights

    return count_weights(model.graph).total


def onnx_params_method(model: Any) -> str:
    from studio.onnx_weights import count_weights

    return count_weights(model.graph).method()


DEFAULT_IMGSZ = 640  # a dynamic image height and width are profiled at this size unless the model or user says
TOKENS = 128  # a dynamic token sequence is profiled at this length (the studio's language exports use it too)
_IMAGE_SOURCES = {"": "assumed, --imgsz sets them", "metadata": "from the model's metadata (imgsz)",
                  "--imgsz": "from --imgsz", "image_input": "the size the studio runs it at"}


def _why(role: str, hw: tuple[int, int], hw_source: str) -> str:
    if role == "image":
        return f"the input's height and width are dynamic: {hw[0]}×{hw[1]} {_IMAGE_SOURCES.get(hw_source, hw_source)}"
    return {"batch": "a dynamic batch is 1", "tokens": f"a dynamic sequence length is {TOKENS} tokens"}[role]


@dataclass(frozen=True)
class ProfileShapes:
    """The input shapes FLOPs are counted at, and what was chosen for the graph's dynamic dimensions."""

    feeds: dict[str, tuple[int, ...]]
    dtypes: dict[str, Any]
    chosen: tuple[str, ...] = ()  # why each dynamic dimension has its size (empty: the graph fixes them all)
    unknown: str = ""  # set when some dynamic dimension has no sensible size: the reason

    def describe(self) -> str:
        shapes = ", ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in self.feeds.items())
        return f"{shapes} ({'; '.join(self.chosen)})" if self.chosen else shapes


def image_axes(shape: tuple[int | str, ...]) -> tuple[int, int] | None:
    """Axes of height and width when ``shape`` looks like an image batch: NCHW, or NHWC (tf2onnx) when only the
    last axis holds 1 or 3 channels. None when it is not 4-D or the channel count itself is dynamic."""
    if len(shape) != 4:
        return None
    if shape[3] in (1, 3) and shape[1] not in (1, 3):
        return 1, 2
    return (2, 3) if isinstance(shape[1], int) and shape[1] > 0 else None


def profile_shapes(inputs: Any, hw: tuple[int, int] | None = None, hw_source: str = "") -> ProfileShapes:
    """Sizes for every input (``TensorSpec``s): the graph's own, else a stated choice per dynamic dimension.

    A dynamic batch is 1; dynamic image height and width are ``hw`` (named by ``hw_source``: "metadata" or
    "--imgsz"), else 640; an integer [batch, sequence] input gets 128 tokens. A dimension with a name gets
    one size wherever it appears (input_ids and attention_mask share their sequence length). Anything else
    dynamic has no size worth guessing: ``unknown`` says which.
    """
    size = hw or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    named: dict[str, int] = {}
    feeds: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, Any] = {}
    roles: list[str] = []
    for spec in inputs:
        dims = _spec_dims(spec, size, named, roles)
        if isinstance(dims, str):
            return ProfileShapes({}, {}, unknown=dims)
        feeds[spec.name] = dims
        try:
            dtypes[spec.name] = np.dtype(spec.dtype)
        except TypeError:
            dtypes[spec.name] = np.dtype(np.float32)
    chosen = [_why(role, size, hw_source if hw else "") for role in dict.fromkeys(roles)]
    if hw_source == "--imgsz" and "image" not in roles:
        chosen.append("--imgsz not used: the graph fixes the input's height and width")
    return ProfileShapes(feeds, dtypes, tuple(chosen))


def _spec_dims(spec: Any, hw: tuple[int, int], named: dict[str, int], roles: list[str]) -> tuple[int, ...] | str:
    """One input's sizes (appending the role of each dynamic dimension to ``roles``), or why there is none."""
    axes = image_axes(spec.shape)
    dims = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
            continue
        if isinstance(dim, str) and dim != "?" and dim in named:
            dims.append(named[dim])
            continue
        if axis == 0:
            size, role = 1, "batch"
        elif axes and axis in axes:
            size, role = hw[axes.index(axis)], "image"
        elif len(spec.shape) == 2 and spec.dtype.startswith(("int", "uint")):
            size, role = TOKENS, "tokens"
        else:
            return (f"input '{spec.name}' has a dynamic dimension ({dim}, axis {axis}) whose size the file does not "
                    "state and the studio cannot guess")
        if isinstance(dim, str) and dim != "?":
            named[dim] = size
        dims.append(size)
        roles.append(role)
    return tuple(dims)


def onnx_profile(path: Path, shapes: ProfileShapes) -> Any:
    """onnx-tool's graph of ``path``, shape-inferred and MAC-profiled at ``shapes`` (raises what onnx-tool raises)."""
    import onnx_tool

    model = onnx_tool.Model(str(path), {"verbose": False})
    model.graph.shape_infer({name: np.zeros(shape, shapes.dtypes[name]) for name, shape in shapes.feeds.items()})
    model.graph.profile()
    return model.graph


def node_macs(item: Any) -> float:
    """MACs of an onnx-tool node or graph (onnx-tool keeps [dense, sparse] pairs)."""
    macs = item.macs
    return float(macs[0] if isinstance(macs, (list, tuple)) else macs)


def onnx_gflops(path: Path, inputs: Any, hw: tuple[int, int] | None = None,
                hw_source: str = "") -> tuple[float | None, str]:
    """GFLOPs from onnx-tool's shape inference and per-node MAC profile (FLOPs = 2 × MACs), at the shapes
    ``profile_shapes`` chooses and states: never at a size made up by replacing dynamic dimensions with 1."""
    shapes = profile_shapes(inputs, hw, hw_source)
    if shapes.unknown:
        return None, f"unknown: {shapes.unknown}"
    try:
        graph = onnx_profile(path, shapes)
    except Exception as exc:  # onnx-tool does not know every operator, or the graph needs another size
        detail = f": {first_line(exc, 120)}" if str(exc).strip() else ""
        return None, f"unavailable at {shapes.describe()}: onnx-tool: {type(exc).__name__}{detail}"
    return 2 * node_macs(graph) / 1e9, f"onnx-tool profile at {shapes.describe()}, FLOPs = 2×MACs (all ops)"


def image_size(text: str) -> tuple[int, int]:
    """``--imgsz`` as typed: "640" (square) or "48,320" / "48x320" (height, width)."""
    parts = [int(part) for part in text.lower().replace("x", ",").replace("×", ",").split(",")]
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(1 <= side <= 8192 for side in parts):
        raise ValueError(text)
    return parts[0], parts[1]


def reprofile(handle: ModelHandle, hw: tuple[int, int]) -> ModelHandle:
    """The handle with GFLOPs counted again at height and width ``hw`` (``info --imgsz``). Only dynamic
    dimensions change: a graph with a fixed input keeps its size and says --imgsz was not used."""
    image = handle.image_input
    if handle.torch_module is None and handle.onnx_path is not None:
        gflops, method = onnx_gflops(handle.onnx_path, handle.inputs, hw, "--imgsz")
    elif handle.torch_module is not None and image is not None and image.dynamic:
        channels = handle.inputs[0].shape[1] if isinstance(handle.inputs[0].shape[1], int) else 3
        gflops, method = torch_gflops(handle.torch_module, (1, channels, *hw))
        method += "; input size from --imgsz"
    else:
        return handle.replace(gflops_method=f"{handle.gflops_method} (--imgsz not used: the input size is fixed)")
    if image is not None and image.dynamic:
        image = dataclasses.replace(image, size=hw)
    return handle.replace(gflops=gflops, gflops_method=method, image_input=image)
