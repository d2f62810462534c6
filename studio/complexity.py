"""Parameter and FLOP counts, each with the method that produced it (the UI and CLI show both)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

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
        return None, f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    shape = "×".join(str(d) for d in input_shape)
    return counter.get_total_flops() / 1e9, f"torch.utils.flop_counter, input {shape}, FLOPs = 2×MACs"


def onnx_params(model: Any) -> int:
    """Number of weight elements stored as initializers (external data included)."""
    total = 0
    for init in model.graph.initializer:
        total += int(np.prod(init.dims)) if init.dims else 1
    return total


def onnx_gflops(path: Path, feeds: dict[str, tuple[int, ...]], dtypes: dict[str, Any]) -> tuple[float | None, str]:
    """GFLOPs from onnx-tool's shape inference and per-node MAC profile (FLOPs = 2 × MACs)."""
    try:
        import onnx_tool

        model = onnx_tool.Model(str(path), {"verbose": False})
        model.graph.shape_infer({name: np.zeros(shape, dtypes[name]) for name, shape in feeds.items()})
        model.graph.profile()
        macs = model.graph.macs[0] if isinstance(model.graph.macs, (list, tuple)) else model.graph.macs
    except Exception as exc:  # onnx-tool does not know every operator; the count is then unknown
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        return None, f"unavailable: onnx-tool: {type(exc).__name__}: {detail}"
    shapes = ", ".join(f"{n} {'×'.join(map(str, s))}" for n, s in feeds.items())
    return 2 * float(macs) / 1e9, f"onnx-tool profile, {shapes}, FLOPs = 2×MACs (all ops)"
