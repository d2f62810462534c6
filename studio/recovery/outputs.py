"""What a compressed student should imitate of its teacher, per model family (the distillation targets)."""

from __future__ import annotations

from typing import Any

from studio.model import ModelHandle


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
