"""Recovery by distillation: a short fine-tune of a compressed model toward the original's outputs.

No labels: the teacher's outputs on unlabelled frames (bundled images and video, or the user's) are
the targets, with light augmentation (flips, crops, brightness and contrast) so the student does not
just memorise a few frames. BatchNorm statistics stay frozen (eval mode): batches are tiny.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from plugins.training import loss_trend, optimise
from studio.calibration import calibration_frames
from studio.model import ModelHandle
from studio.runtime.preprocess import prepare
from studio.tasks import TaskContext


def augment(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    height, width = frame.shape[:2]
    scale = rng.uniform(0.7, 1.0)
    crop_h, crop_w = int(height * scale), int(width * scale)
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    out = frame[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    return cv2.convertScaleAbs(np.ascontiguousarray(out), alpha=gain, beta=bias)


def augmented_batch(frames: list[np.ndarray], handle: ModelHandle, size: tuple[int, int], count: int,
           rng: np.random.Generator) -> Any:
    import torch

    picks = rng.integers(0, len(frames), size=count)
    return torch.from_numpy(np.concatenate(
        [prepare(augment(frames[i], rng), handle.image_input, size, rect=False)[0] for i in picks]))


def recalibrate_batchnorm(module: Any, frames: list[np.ndarray], handle: ModelHandle, size: tuple[int, int],
                          rng: np.random.Generator, ctx: TaskContext, batches: int = 16) -> int:
    """Re-estimate BatchNorm running statistics after pruning (forward passes only, no gradients).

    Removing input channels shifts every layer's activation statistics; the stored means and
    variances then normalise the wrong distribution. This alone recovers much of the loss.
    """
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all recalibration batches
    module.eval()  # dropout and stochastic depth stay off: only the BatchNorms gather statistics
    for norm in norms:
        norm.train()
    with torch.no_grad():
        for index in range(batches):
            ctx.progress(index / batches, "re-estimating BatchNorm statistics")
            module(augmented_batch(frames, handle, size, 4, rng))
    module.eval()
    for norm in norms:
        norm.momentum = 0.1
    return len(norms)


def distill(student: Any, teacher: Any, handle: ModelHandle, *, steps: int, lr: float, batch: int,
            source: Path | None, ctx: TaskContext, imgsz: int | None = None, recalibrate: bool = True,
            seed: int = 0) -> dict[str, Any]:
    """Recalibrate BatchNorm, then fine-tune ``student`` in place for ``steps`` optimiser steps."""
    import torch

    from plugins.prune.adapters import distillation_outputs
    from plugins.prune.distill_loss import loss_for

    frames, info = calibration_frames(source, 64, ctx)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    size = (imgsz, imgsz) if imgsz and handle.image_input.dynamic else handle.image_input.size
    norms = recalibrate_batchnorm(student, frames, handle, size, rng, ctx.sub(0.0, 0.1)) if recalibrate else 0
    ctx = ctx.sub(0.1, 1.0)
    teacher.eval()
    student.eval()  # frozen BatchNorm statistics; gradients still flow
    probe = augmented_batch(frames, handle, size, 4, np.random.default_rng(seed + 1))  # a fixed batch to judge progress
    criterion, method = loss_for(handle, student)

    def probe_loss() -> float:
        with torch.no_grad():
            targets = distillation_outputs(teacher, probe, handle)
            outputs = distillation_outputs(student, probe, handle)
            return float(criterion(outputs, targets))

    probe_before = probe_loss()
    params = [p for p in student.parameters()]
    for param in params:
        param.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        ctx.progress(step / steps, f"distillation step {step + 1}/{steps}")
        inputs = augmented_batch(frames, handle, size, batch, rng)
        with torch.no_grad():
            targets = distillation_outputs(teacher, inputs, handle)
        outputs = distillation_outputs(student, inputs, handle)
        optimise(optimiser, criterion(outputs, targets), losses)
    for param in params:
        param.requires_grad_(False)
    probe_after = probe_loss()
    ctx.progress(1.0, "distillation done")
    head, tail = loss_trend(losses)
    return {"steps": steps, "batch": batch, "lr": lr, "frames": info, "input_size": list(size),
            "batchnorm_recalibrated": norms,
            "probe_loss_before": round(probe_before, 5), "probe_loss_after": round(probe_after, 5),
            "loss_start": head, "loss_end": tail,
            "loss": method,
            "method": "fine-tune toward the teacher's raw outputs on augmented unlabelled frames, AdamW; "
                      + ("BatchNorm statistics re-estimated first, then frozen" if recalibrate
                         else "BatchNorm statistics frozen")}


def torch_fidelity(teacher_handle: ModelHandle, student_module: Any, frames: int = 12,
                   ctx: Any = None) -> dict[str, Any]:
    """Fidelity of a student module against its teacher on the judging frames, both on torch."""
    from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_predictors
    from studio.evaluate.frames import judging_frames
    from studio.runtime.backends import TorchBackend
    from studio.runtime.predictor import Predictor

    fixed = None if teacher_handle.image_input.dynamic else teacher_handle.image_input.size
    teacher = Predictor(teacher_handle, TorchBackend(teacher_handle.torch_module, fixed_hw=fixed), conf=TARGET_CONF)
    student = Predictor(teacher_handle, TorchBackend(student_module, fixed_hw=fixed), conf=PREDICTION_CONF)
    return compare_predictors(teacher, student, judging_frames(frames, ctx)[0])
