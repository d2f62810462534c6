"""The model panel's layer table: every layer with weights, its parameters and its share of the FLOPs.

PyTorch models are counted by ``torch.utils.flop_counter`` per module (FLOPs = 2 × MACs of
convolutions and matrix products); ONNX graphs by onnx-tool's per-node MAC profile. Each table says
which method produced it.
"""

from __future__ import annotations

import copy
from typing import Any

from studio.errors import first_line
from studio.model import ModelHandle, Task
from studio.torch_lock import TORCH_MODULE_LOCK


def _input_shape(handle: ModelHandle) -> tuple[int, ...]:
    if handle.image_input is not None:
        return (1, int(handle.inputs[0].shape[1]) if isinstance(handle.inputs[0].shape[1], int) else 3,
                *handle.image_input.size)
    return tuple(d if isinstance(d, int) else 1 for d in handle.inputs[0].shape)


LM_TOKENS = 32  # a language model is counted on this many tokens of input


def _module_and_input(handle: ModelHandle) -> tuple[Any, Any, str]:
    """(module, its input, how the input is described) for counting FLOPs."""
    import torch

    if handle.task in (Task.GENERATE, Task.EMBED):  # token ids; inference mode does not change the model
        module = handle.torch_module
        if handle.task == Task.EMBED and hasattr(module, "__getitem__"):
            module = module[0].auto_model  # the transformer inside the sentence-transformers pipeline
        return module.eval(), torch.ones((1, LM_TOKENS), dtype=torch.int64), f"{LM_TOKENS} tokens"
    shape = _input_shape(handle)
    return copy.deepcopy(handle.torch_module).float().eval(), torch.zeros(shape), "×".join(map(str, shape))


def torch_layers(handle: ModelHandle) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with TORCH_MODULE_LOCK:  # the counter's hooks are global: no other thread may run a module meanwhile
        module, example, described = _module_and_input(handle)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            module(example)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    total = counts.get("Global", 0) or 1
    root = type(module).__name__
    rows = []
    for name, layer in module.named_modules():
        own = sum(p.numel() for p in layer.parameters(recurse=False))
        if not own:
            continue
        flops = counts.get(f"{root}.{name}", 0)
        rows.append({"name": name, "type": type(layer).__name__, "params": int(own), "flops": int(flops),
                     "flops_share": round(flops / total, 5)})
    return {"rows": rows, "total_flops": int(counts.get("Global", 0)),
            "method": f"torch.utils.flop_counter per module, input {described}, FLOPs = 2×MACs"}


def onnx_layers(handle: ModelHandle) -> dict[str, Any]:
    """onnx-tool's per-node MACs at the shapes ``info`` states for GFLOPs (never a 1×1 stand-in for a dynamic
    input), with each node's weights found wherever the exporter stored them (``studio.onnx_weights``)."""
    import onnx

    from studio.complexity import node_macs, onnx_profile, profile_shapes
    from studio.onnx_weights import count_weights, params_by_node

    image = handle.image_input
    shapes = profile_shapes(handle.inputs, image.size if image else None, "image_input" if image else "")
    if shapes.unknown:
        return {"rows": [], "total_flops": 0, "method": f"unknown: {shapes.unknown}"}
    path = handle.onnx_path
    assert path is not None, "layer_table asks for ONNX layers only when the handle has a graph"
    graph = onnx_profile(path, shapes)
    proto = onnx.load(str(path), load_external_data=False).graph  # names and shapes only
    owned = params_by_node(proto, count_weights(proto))
    rows, total = [], 0
    for name, node in graph.nodemap.items():
        flops = 2 * int(node_macs(node))
        total += flops
        params = owned.get(node.output[0], 0) if node.output else 0
        if params:
            rows.append({"name": name, "type": node.op_type, "params": params, "flops": flops})
    for row in rows:
        row["flops_share"] = round(row["flops"] / (total or 1), 5)
    return {"rows": rows, "total_flops": total,
            "method": f"onnx-tool per-node profile at {shapes.describe()}, FLOPs = 2×MACs"}


def layer_table(handle: ModelHandle) -> dict[str, Any]:
    """Rows of layers with weights, or an empty table with the reason it could not be counted."""
    if handle.metadata.get("lm_runtime") in ("genai", "ort_encoder"):
        return {"rows": [], "total_flops": 0, "method": "unavailable for onnxruntime language-model graphs (their "
                                                       "inputs include the KV cache); open the base model"}
    try:
        if handle.torch_module is not None:
            return _with_rest(torch_layers(handle))
        if handle.onnx_path is not None:
            return _with_rest(onnx_layers(handle))
    except Exception as exc:  # a model that cannot run on zeros still loads; its table is just unknown
        first = first_line(exc, 160)
        return {"rows": [], "total_flops": 0, "method": f"unavailable: {type(exc).__name__}: {first}"}
    return {"rows": [], "total_flops": 0, "method": "unavailable: the model has neither PyTorch nor ONNX form"}


def _with_rest(table: dict[str, Any]) -> dict[str, Any]:
    """Adds the share of FLOPs spent in operations without weights (activations, additions, resizing), so
    that the rows and this rest add up to the whole model."""
    if table["total_flops"]:
        table["other_flops_share"] = round(max(0.0, 1 - sum(row["flops"] for row in table["rows"])
                                               / table["total_flops"]), 5)
    return table
