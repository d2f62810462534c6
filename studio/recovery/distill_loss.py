"""What a compressed student should match of its teacher, per model family.

A plain MSE over raw detector maps is dominated by thousands of background cells whose class logits
sit around -10: the student spends its steps moving -10 to -9 while the few cells that carry
detections barely move (measured: 400 steps recovered 0.06 mAP50 of a 30 % pruned YOLOv8s). So:

- Ultralytics detectors: class scores by binary cross-entropy against the teacher's probabilities
  (the gradient σ(s) − σ(t) vanishes where both agree on background), box distributions (DFL bins)
  by KL divergence weighted by the teacher's confidence in each anchor, both normalised by the
  total confidence, as Ultralytics normalises its own loss.
- Darknet YOLO maps: objectness and classes by cross-entropy against the teacher's probabilities,
  box offsets by MSE weighted by the teacher's objectness.
  The maps entering the (never pruned) head — the neck's outputs as the head's first convolutions
  see them, where student and teacher have the same channels — are matched by channel-wise
  distillation (Shu et al., ICCV 2021; the YOLOv8 structured-pruning paper's choice): each channel
  becomes a distribution over its positions and the student matches it by KL divergence, so a channel
  learns *where* to respond rather than its raw scale (``features="mse"``: the earlier variance-scaled MSE).
- Classifiers: KL divergence between temperature-softened distributions (Hinton et al.).
- Anything else: MSE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from studio.model import ModelHandle

TEMPERATURE = 2.0
CWD_TEMPERATURE = 4.0  # the CWD paper's value for dense prediction


def _bce(student: Any, teacher: Any) -> Any:
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher), reduction="none")


def feature_loss(student: list, teacher: list) -> Any:
    """MSE of intermediate maps, each scaled by the teacher map's variance (so every tap counts alike)."""
    import torch

    return sum(torch.nn.functional.mse_loss(s, t) / t.var().clamp(min=1e-6)
               for s, t in zip(student, teacher, strict=True)) / max(len(teacher), 1)


def channel_wise_loss(student: list, teacher: list, temperature: float = CWD_TEMPERATURE) -> Any:
    """Channel-wise distillation: KL between per-channel spatial softmaxes, × T², averaged over channels."""
    import torch

    total = 0.0
    for s_map, t_map in zip(student, teacher, strict=True):
        batch, channels = t_map.shape[:2]
        t_log = torch.log_softmax(t_map.reshape(batch * channels, -1).float() / temperature, dim=1)
        s_log = torch.log_softmax(s_map.reshape(batch * channels, -1).float() / temperature, dim=1)
        total = total + (t_log.exp() * (t_log - s_log)).sum() * temperature ** 2 / (batch * channels)
    return total / max(len(teacher), 1)


def ultralytics_detection_loss(student: dict, teacher: dict, reg_max: int, features: str = "cwd") -> Any:
    import torch

    weight = torch.sigmoid(teacher["scores"]).amax(dim=1)  # (batch, anchors): the teacher's confidence
    norm = weight.sum().clamp(min=1.0)
    classes = _bce(student["scores"], teacher["scores"]).sum() / norm
    batch, _, anchors = teacher["boxes"].shape
    t_log = torch.log_softmax(teacher["boxes"].view(batch, 4, reg_max, anchors), dim=2)
    s_log = torch.log_softmax(student["boxes"].view(batch, 4, reg_max, anchors), dim=2)
    boxes = (t_log.exp() * (t_log - s_log)).sum(dim=2).sum(dim=1)  # KL per anchor over the four sides
    maps = 0.0
    if "head_features" in teacher and features != "off":
        match = channel_wise_loss if features == "cwd" else feature_loss
        maps = match(student["head_features"], teacher["head_features"])
    return classes + (boxes * weight).sum() / norm + maps


def darknet_loss(student: list, teacher: list, classes: int) -> Any:
    import torch

    total = 0.0
    for s_map, t_map in zip(student, teacher, strict=True):
        batch, channels, height, width = t_map.shape
        s = s_map.view(batch, channels // (5 + classes), 5 + classes, height, width)
        t = t_map.view(batch, channels // (5 + classes), 5 + classes, height, width)
        objectness = torch.sigmoid(t[:, :, 4])
        norm = objectness.sum().clamp(min=1.0)
        scores = _bce(s[:, :, 4:], t[:, :, 4:]).sum() / norm
        offsets = ((s[:, :, :4] - t[:, :, :4]) ** 2).sum(dim=2)
        total = total + scores + (offsets * objectness).sum() / norm
    return total


def logits_loss(student: Any, teacher: Any) -> Any:
    import torch

    soft_teacher = torch.log_softmax(teacher / TEMPERATURE, dim=-1)
    soft_student = torch.log_softmax(student / TEMPERATURE, dim=-1)
    return (soft_teacher.exp() * (soft_teacher - soft_student)).sum(dim=-1).mean() * TEMPERATURE ** 2


def mse_loss(student: list | dict, teacher: list | dict) -> Any:
    import torch

    if isinstance(student, dict) and isinstance(teacher, dict):  # one family: both are dicts or neither
        student, teacher = ([v for v in d.values() if isinstance(v, torch.Tensor)] for d in (student, teacher))
    return sum(torch.nn.functional.mse_loss(s, t) for s, t in zip(student, teacher, strict=True))


def _ultralytics(reg_max: int, features: str) -> Callable[[Any, Any], Any]:
    def loss(student: Any, teacher: Any) -> Any:
        if isinstance(teacher, dict) and {"boxes", "scores"} <= teacher.keys():
            return ultralytics_detection_loss(student, teacher, reg_max, features)
        return mse_loss(student, teacher)  # older Ultralytics heads: one raw map per stride
    return loss


FEATURE_METHODS = {"cwd": f"channel-wise distillation of the head's input maps (T={CWD_TEMPERATURE})",
                   "mse": "variance-scaled MSE of the head's input maps", "off": "no feature term"}


def loss_for(handle: ModelHandle, module: Any, features: str = "cwd") -> tuple[Callable[[Any, Any], Any], str]:
    """The loss between a student's and a teacher's ``distillation_targets`` and how it is computed."""
    family = handle.metadata.get("family")
    head = module.model[-1] if family == "ultralytics" and hasattr(module, "model") else None
    if head is not None and hasattr(head, "reg_max") and handle.task.value == "detect":
        return (_ultralytics(int(head.reg_max), features),
                "class BCE against the teacher's probabilities + DFL KL weighted by the teacher's confidence + "
                + FEATURE_METHODS[features])
    if family == "darknet":
        classes = int(module.num_classes)
        return (lambda s, t: darknet_loss(s, t, classes),
                "objectness/class BCE against the teacher's probabilities + box MSE weighted by objectness")
    if handle.task.value == "classify":
        return (lambda s, t: logits_loss(s[0], t[0]),
                f"KL divergence of softened class distributions (T={TEMPERATURE})")
    return mse_loss, "MSE between raw outputs"
