"""Per-family knowledge torch-pruning needs: how to make a model traceable, and what to leave whole.

What must stay intact is what defines the outputs: a detector's head (its channel layout *is* the
output format), a classifier's last Linear, and attention blocks (heads × head size must stay
consistent). Everything else is left to torch-pruning's dependency graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from studio.model import ModelHandle, Task


@dataclass
class PruneTarget:
    module: Any  # a private copy of the torch module, made traceable
    ignored: list[Any]  # modules torch-pruning must leave whole
    example_shape: tuple[int, ...]


def _ultralytics(module: Any) -> tuple[Any, list[Any]]:
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.modules.block import C2PSA, PSA, Attention

    from studio.nets.split_blocks import split_c2f_blocks

    split_c2f_blocks(module)
    keep = (Detect, C2PSA, PSA, Attention)
    return module, [m for m in module.modules() if isinstance(m, keep)]


def _darknet(module: Any) -> tuple[Any, list[Any]]:
    """The convolution feeding each [yolo] layer carries anchors × (5 + classes) channels: keep it."""
    from torch import nn

    ignored = []
    for index, kind in enumerate(module.kinds):
        if kind == "yolo" and index > 0 and isinstance(module.layers[index - 1], nn.Sequential):
            ignored.append(module.layers[index - 1][0])
    return module, ignored


def _generic(module: Any) -> tuple[Any, list[Any]]:
    """Keep the last Linear or Conv (the output layer) of any other network."""
    from torch import nn

    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return module, layers[-1:]


FAMILIES = {"ultralytics": _ultralytics, "darknet": _darknet}


def prune_target(handle: ModelHandle) -> PruneTarget:
    module = copy.deepcopy(handle.torch_module).eval()
    module, ignored = FAMILIES.get(handle.metadata.get("family", ""), _generic)(module)
    for param in module.parameters():
        param.requires_grad_(True)
    channels = int(handle.inputs[0].shape[1])
    height, width = handle.image_input.size if handle.image_input else (224, 224)
    return PruneTarget(module, ignored, (1, channels, int(height), int(width)))


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


def outputs_for_distillation(output: Any) -> list[Any] | dict[str, Any]:
    """What a student should match: Ultralytics' raw head outputs, else the first output."""
    import torch

    if isinstance(output, (list, tuple)) and len(output) > 1 and isinstance(output[1], (list, tuple, dict)):
        output = output[1]  # Ultralytics' Detect in eval mode: (decoded boxes in pixels, raw head outputs)
    if isinstance(output, dict):  # Ultralytics 8.4: {"boxes": DFL logits, "scores": class logits, "feats": […]}
        # feats (the maps per stride) stay: Ultralytics' own loss places its anchors by them
        return {k: t for k, t in output.items() if isinstance(t, torch.Tensor)
                or (isinstance(t, (list, tuple)) and t and all(isinstance(x, torch.Tensor) for x in t))}
    if isinstance(output, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in output) and len(output) > 1:
        return list(output)  # older heads: one raw map per stride
    while isinstance(output, (list, tuple)):
        output = output[0]
    return [output]


def distillation_outputs(module: Any, inputs: Any, handle: ModelHandle) -> list[Any] | dict[str, Any]:
    """Run ``module`` and return what a student should imitate.

    Darknet: the raw maps entering each [yolo] layer (before sigmoid/exp), so that confident
    background cells do not dominate the loss. Others: see ``outputs_for_distillation``.
    """
    if handle.metadata.get("family") == "ultralytics":
        return _ultralytics_outputs(module, inputs)
    if handle.metadata.get("family") != "darknet":
        return outputs_for_distillation(module(inputs))
    captured: list[Any] = []
    hooks = [layer.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
             for layer, kind in zip(module.layers, module.kinds, strict=True) if kind == "yolo"]
    try:
        module(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def _ultralytics_outputs(module: Any, inputs: Any) -> list[Any] | dict[str, Any]:
    """Raw head outputs plus the first convolution of every head branch (``head_features``); a classifier's logits.

    The head is never pruned, so its first convolutions have the same channels in student and
    teacher: matching them gives dense, per-pixel supervision on every frame, where the outputs
    alone say little on frames without detections.
    """
    from ultralytics.nn.modules import Classify

    head = module.model[-1]
    if isinstance(head, Classify):  # (probabilities, logits) in eval mode: the logits, as other classifiers give
        output = module(inputs)
        return [output[1] if isinstance(output, (list, tuple)) else output]
    taps = [branch[0] for name in ("cv2", "cv3") for branch in getattr(head, name, [])]
    captured: list[Any] = []
    hooks = [tap.register_forward_hook(lambda _m, _args, out: captured.append(out)) for tap in taps]
    try:
        outputs = outputs_for_distillation(module(inputs))
    finally:
        for hook in hooks:
            hook.remove()
    if isinstance(outputs, dict) and captured:
        outputs["head_features"] = captured
    return outputs
