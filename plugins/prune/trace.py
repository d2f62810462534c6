"""Whether torch-pruning can build a model's dependency graph: a trial prune of a throw-away copy."""

from __future__ import annotations

from studio.compress_target import prune_target
from studio.model import ModelHandle, Task


def trace_problem(handle: ModelHandle) -> str | None:
    """Why torch-pruning cannot build this model's dependency graph (None when it can)."""
    import torch
    import torch_pruning as tp

    if handle.torch_module is None:
        return "it has no PyTorch module (prune the original .pt, not an ONNX export)"
    if handle.task in (Task.GENERATE, Task.EMBED):
        return "channel pruning is for vision models; for a language model use low-rank or INT8/INT4 weights"
    try:
        target = prune_target(handle)
        small = (*target.example_shape[:2], 64, 64) if handle.image_input else target.example_shape
        # A trial prune of a throw-away copy: some failures (channel splits) surface only when pruning.
        pruner = tp.pruner.MetaPruner(target.module, torch.zeros(small), pruning_ratio=0.1,
                                      importance=tp.importance.MagnitudeImportance(p=1),
                                      ignored_layers=target.ignored)
        pruner.step()
        target.module.eval()(torch.zeros(small))
    except Exception as exc:  # torch-pruning raises many kinds; the message is what the user needs
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return f"torch-pruning cannot trace it ({type(exc).__name__}: {first})"
    return None
