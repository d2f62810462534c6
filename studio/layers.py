"""The model panel's layer table: every layer with weights, its parameters and its share of the FLOPs.

PyTorch models are counted by ``torch.utils.flop_counter`` per module (FLOPs = 2 × MACs of
convolutions and matrix products); ONNX graphs by onnx-tool's per-node MAC profile. Each table says
which method produced it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

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
    import onnx_tool

    shape = _input_shape(handle)
    model = onnx_tool.Model(str(handle.onnx_path), {"verbose": False})
    model.graph.shape_infer({handle.inputs[0].name: np.zeros(shape, np.float32)})
    model.graph.profile()
    rows, total = [], 0
    for name, node in model.graph.nodemap.items():
        macs = node.macs[0] if isinstance(node.macs, (list, tuple)) else node.macs
        params = sum(int(np.prod(model.graph.tensormap[i].shape)) for i in node.input
                     if i in model.graph.initials and i in model.graph.tensormap)
        total += 2 * int(macs)
        if params:
            rows.append({"name": name, "type": node.op_type, "params": params, "flops": 2 * int(macs)})
    for row in rows:
        row["flops_share"] = round(row["flops"] / (total or 1), 5)
    return {"rows": rows, "total_flops": total,
            "method": f"onnx-tool per-node profile, input {'×'.join(map(str, shape))}, FLOPs = 2×MACs"}


def layer_table(handle: ModelHandle) -> dict[str, Any]:
    """Rows of layers with weights, or an empty table with the reason it could not be counted."""
    if handle.metadata.get("lm_runtime") in ("genai", "ort_encoder"):
        return {"rows": [], "total_flops": 0, "method": "unavailable for onnxruntime language-model graphs (their "
                                                       "inputs include the KV cache); open the base model"}
    try:
        if handle.torch_module is not None:
            return torch_layers(handle)
        if handle.onnx_path is not None:
            return onnx_layers(handle)
    except Exception as exc:  # a model that cannot run on zeros still loads; its table is just unknown
        first = (str(exc).splitlines() or [""])[0][:160]
        return {"rows": [], "total_flops": 0, "method": f"unavailable: {type(exc).__name__}: {first}"}
    return {"rows": [], "total_flops": 0, "method": "unavailable: the model has neither PyTorch nor ONNX form"}
