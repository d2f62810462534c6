"""The model's own training loss, mixed into recovery when the user's frames carry labels.

Image classifiers (EfficientNet-Lite, Ultralytics ``-cls``…): cross-entropy of the student's logits
against the class of each frame's folder (``studio.train_class_labels``) — the loss they were trained
with (Ultralytics' ``v8ClassificationLoss`` is the same mean cross-entropy).

Ultralytics detectors: Ultralytics' criterion for the model (``v8DetectionLoss``, or ``E2ELoss`` for
end-to-end heads), built through the model class's own ``init_criterion`` with the default
hyper-parameters (box 7.5, cls 0.5, dfl 1.5) — the loss the model was trained with. It is built on a
stand-in object rather than by setting ``module.args``, so the saved variant keeps its own args.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from studio.model import ModelHandle


def _hyperparameters(module: Any) -> Any:
    from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace

    own = module.args if isinstance(getattr(module, "args", None), dict) else vars(getattr(module, "args", {}) or {})
    return IterableSimpleNamespace(**{**DEFAULT_CFG_DICT, **own})


def classification_loss(handle: ModelHandle) -> Callable[[Any, dict], Any]:
    """Cross-entropy of the logits (the first of ``studio.recovery.outputs.distillation_outputs``) against
    ``batch["cls"]``."""
    classes = len(handle.labels)

    def loss(outputs: Any, batch: dict) -> Any:
        import torch

        logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != classes:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise RuntimeError(f"the classifier's output {shape} is not (batch, {classes}) logits")
        return torch.nn.functional.cross_entropy(logits.float(), batch["cls"])

    return loss


def task_loss_for(handle: ModelHandle, module: Any) -> tuple[Callable[[Any, dict], Any] | None, str]:
    """(loss(student outputs, labelled batch) or None, what it is or why there is none)."""
    if handle.task.value == "classify" and handle.labels:
        return classification_loss(handle), "cross-entropy of the logits against the class of each frame's folder"
    head = module.model[-1] if handle.metadata.get("family") == "ultralytics" and hasattr(module, "model") else None
    if head is None or handle.task.value != "detect" or not hasattr(head, "reg_max"):
        return None, ("no task loss for this model (only classifiers and Ultralytics detectors so far; this is a "
                      f"{handle.task.value})")
    criterion: list[Any] = []

    def loss(outputs: Any, batch: dict) -> Any:
        if not isinstance(outputs, dict) or not {"boxes", "scores", "feats"} <= outputs.keys():
            raise RuntimeError("the detector's raw outputs lack boxes/scores/feats: Ultralytics' loss cannot read them")
        if not criterion:  # built on the first batch, on the device training runs on
            stand_in = types.SimpleNamespace(args=_hyperparameters(module), model=module.model,
                                             parameters=module.parameters, class_weights=None)
            criterion.append(type(module).init_criterion(stand_in))
        total, _ = criterion[0]({k: outputs[k] for k in ("boxes", "scores", "feats")}, batch)
        return total.sum() / batch["img"].shape[0]  # Ultralytics multiplies by the batch size

    return loss, "Ultralytics' detection loss (box IoU + class BCE + DFL, default gains) on the labels"
