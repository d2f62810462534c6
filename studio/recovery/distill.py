"""Recovery by distillation: a compressed model fine-tuned toward the original's outputs.

No labels: the teacher's outputs on the training side of the model's frames (the user's, or the
bundled media) are the targets, augmented so the student does not memorise a few frames. BatchNorm
statistics are re-estimated first (that alone recovers much of a pruned detector), then the engine's
trainer (``studio.train``) fine-tunes with BatchNorm in training mode, judges held-out fidelity every few
steps on choosing frames (whole runs of the training side held out from training) and keeps the best
weights. The judging side chooses nothing: before/after figures reported there are not flattered by the
choice of checkpoint (measured: on 25 judging frames a 30 % pruned detector's curve swung 0.71–0.90
between evaluations, so the best of a dozen picked on the reporting frames reads high). This module
supplies only what is specific to the model families: their outputs and losses (``outputs``,
``distill_loss``, ``task_loss``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from studio.calibration import calibration_frames
from studio.model import ModelHandle
from studio.tasks import TaskContext
from studio.train_data import augmented_batch, choosing_split, spread

TRAINING_FRAMES = 2048  # the training side is read up to this many frames (spread over all of it)
CHOOSING_FRAMES = 40  # held-out fidelity while training: on this many choosing frames (spread over them)
# The training side is cut into 16 contiguous runs and every fourth chooses: choosing frames from all along it,
# so that media given one after another (the bundled street video, then a cartoon) all have a say.
CHOOSING_RUNS, CHOOSING_HELD_OUT = 16, (1, 5, 9, 13)
# Labelled training replaces the frames with the labelled images: worth it only when they are most of the training
# side. Measured: 1 of 921 images sat in a folder that happens to name an ImageNet class ("brass"), and recovery
# then trained 1,500 steps on that one image (EfficientNet-Lite0 pruned 30 %: agreement on the choosing frames 0.00
# throughout; distilled on all of them, 0.05 → 0.30 in 275 steps).
MIN_LABELLED_SHARE = 0.5


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


def make_judge(handle: ModelHandle, frames: int | list[np.ndarray], ctx: Any, *,
               with_interval: bool = False) -> tuple[Any, str]:
    """(judge, where it judges): fidelity of any student module against ``handle``'s own module on
    ``frames`` (a list), or on that many judging frames; the teacher's results are computed once."""
    from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_results
    from studio.evaluate.frames import judging_frames
    from studio.runtime.backends import TorchBackend
    from studio.runtime.predictor import Predictor

    image_input = handle.required_image_input()
    fixed = None if image_input.dynamic else image_input.size
    if isinstance(frames, list):
        images, note = frames, (f"{len(frames)} choosing frames (contiguous runs of the training side held out "
                                "from training; the judging side chooses nothing)")
    else:
        images, note = judging_frames(frames, ctx)
    teacher = Predictor(handle, TorchBackend(handle.torch_module, fixed_hw=fixed), conf=TARGET_CONF)
    reference = [teacher(image).result for image in images]

    def judge(module: Any) -> dict[str, Any]:
        student = Predictor(handle, TorchBackend(module, fixed_hw=fixed), conf=PREDICTION_CONF)
        return compare_results(reference, [student(image).result for image in images], with_interval=with_interval)

    return judge, note


def distill(student: Any, teacher: Any, handle: ModelHandle, *, plan: Any, source: Path | None, ctx: TaskContext,
            imgsz: int | None = None, recalibrate: bool = True, features: str = "cwd", labels: bool = True,
            resume_key: tuple | None = None) -> dict[str, Any]:
    """Recalibrate BatchNorm, then train ``student`` in place (``studio.train``); it keeps its best weights.

    With ``labels`` and a labelled dataset as the model's frames (class folders for a classifier, boxes for
    a detector), the model's own task loss is mixed in (on the labelled training frames only). ``resume_key``
    names the job so that a killed run resumes.
    """
    from studio.evaluate.frames import judging_frames
    from studio.recovery.distill_loss import loss_for
    from studio.recovery.outputs import distillation_outputs
    from studio.train import resume_path, train
    from studio.train_data import plain_batch

    frames, info = calibration_frames(source, TRAINING_FRAMES, ctx)  # the training side: never judged on
    # A few runs of it choose the best checkpoint, so the judging side, which reports, chooses nothing.
    frames, choosing = choosing_split(frames, CHOOSING_RUNS, CHOOSING_HELD_OUT)
    rng = np.random.default_rng(plan.seed)
    image_input = handle.required_image_input()
    size = (imgsz, imgsz) if imgsz and image_input.dynamic else image_input.size
    norms = recalibrate_batchnorm(student, frames, handle, size, rng, ctx.sub(0.0, 0.1)) if recalibrate else 0
    held_out = plain_batch(judging_frames(8, ctx)[0], handle, size)  # the held-out loss: frames never trained on
    criterion, method = loss_for(handle, student, features)
    batches, task_loss, labelled, choosing, plan = _batches(frames, choosing, handle, student, size, plan, source,
                                                            labels, ctx)
    judge, judged_on = make_judge(handle, spread(choosing, CHOOSING_FRAMES), ctx)
    resume = resume_path(*resume_key, list(size), features, labels, "choose on training runs") if resume_key else None
    report = train(student, teacher, batches=batches, held_out=held_out,
                   forward=lambda module, x: distillation_outputs(module, x, handle), criterion=criterion,
                   judge=judge, plan=plan, ctx=ctx.sub(0.1, 1.0), task_loss=task_loss, resume=resume,
                   judged_on=judged_on)
    ctx.progress(1.0, "recovery done")
    info = info | {"training": len(frames), "choosing": len(choosing),
                   "split": f"{CHOOSING_RUNS} contiguous runs of the training side, runs "
                            f"{' and '.join(str(r + 1) for r in CHOOSING_HELD_OUT)} held out to choose the checkpoint"}
    return report | {"frames": info, "judged_on": judged_on, "input_size": list(size),
                     "batchnorm_recalibrated": norms, "loss": method, "labels": labelled}


def _batches(frames: list, choosing: list, handle: ModelHandle, student: Any, size: tuple[int, int], plan: Any,
             source: Path | None, labels: bool, ctx: TaskContext) -> tuple[Any, Any, dict[str, Any], list, Any]:
    """(training batches, the task loss or None, what was labelled, the choosing frames, the plan sized to what
    it trains on): labelled batches when the model's frames are a labelled dataset (class folders for a
    classifier, boxes for a detector) and the model has a task loss here, else the unlabelled frames. Labelled
    items are split into training and choosing runs as the frames are, and then the held-out labelled images
    choose the checkpoint. An epoch budget counts the items trained on: frames, or labelled images."""
    from studio.recovery.task_loss import task_loss_for
    from studio.train import sized_for
    from studio.train_data import Batches

    plain_plan = sized_for(plan, len(frames))
    plain = Batches(frames, handle, size, plain_plan.batch, plain_plan.seed, plain_plan.steps)
    if not labels:
        return plain, None, {"used": False, "note": "labels not used (setting)"}, choosing, plain_plan
    task_loss, how = task_loss_for(handle, student)
    model_frames = getattr(ctx, "frames", None)
    own = model_frames is not None and (source is None or Path(source).expanduser().resolve() == model_frames.path)
    if task_loss is None or not own:
        return plain, None, {"used": False, "note": how if task_loss is None else "the training frames are not "
                             "the model's frames (labels are read from the model's frames only)"}, choosing, plain_plan
    labelled, info, missing, held, labelled_plan = _labelled_batches(model_frames, handle, size, plan, ctx)
    if labelled is None:
        return plain, None, {"used": False, **info, "note": missing}, choosing, plain_plan
    found, images = info.get("labelled_available", info["labelled"]), info["training_images"]
    if found < MIN_LABELLED_SHARE * images:
        return plain, None, {"used": False, **info, "note": (
            f"labels on {found} of {images} training images, fewer than {MIN_LABELLED_SHARE:.0%}: trained on "
            "every frame by distillation, labels not used")}, choosing, plain_plan
    return labelled, task_loss, {"used": True, **info, "loss": how}, held, labelled_plan


def _labelled_batches(model_frames: Any, handle: ModelHandle, size: tuple[int, int], plan: Any,
                      ctx: TaskContext) -> tuple[Any, dict[str, Any], str, list, Any]:
    """(labelled batches or None, what was found, why there are none, the held-out labelled images, the plan
    sized to the labelled training images): only the training side is read."""
    from studio.train import sized_for

    if handle.task.value == "classify":
        from studio.train_class_labels import ClassBatches, class_training_labels

        classes, found = class_training_labels(model_frames, tuple(handle.labels), ctx)
        classes, held_classes = choosing_split(classes, CHOOSING_RUNS, CHOOSING_HELD_OUT)
        plan = sized_for(plan, len(classes))
        by_class = ClassBatches(classes, handle, size, plan.batch, plan.seed, plan.steps) if classes else None
        images = [image for item in spread(held_classes, CHOOSING_FRAMES)
                  if (image := _readable(item.path)) is not None]
        return by_class, found, "no training-side folder is named after a class of the model", images, plan
    from studio.train_labels import LabelledBatches, training_labels

    items, info = training_labels(model_frames, tuple(handle.labels), TRAINING_FRAMES, ctx)
    items, held = choosing_split(items, CHOOSING_RUNS, CHOOSING_HELD_OUT)
    plan = sized_for(plan, len(items))
    batches = LabelledBatches(items, handle, size, plan.batch, plan.seed, plan.steps) if items else None
    return batches, info, "no label files on the training side", [item.image for item in held], plan


def _readable(path: Path) -> np.ndarray | None:
    from studio.errors import BadInputError
    from studio.sources import read_image

    try:
        return read_image(path)
    except BadInputError:  # counted nowhere: the class batches skip it the same way
        return None


def recover(model: ModelHandle, module: Any, settings: Any, plugin_id: str, ctx: TaskContext, *, steps: int,
            round_: int = 0, share: float = 1.0) -> dict[str, Any]:
    """Recovery of a compressed ``module`` toward ``model`` from a plugin's ``recovery_*`` settings,
    resumable after a kill (the job is keyed by model, plugin, settings, round and the frames' fingerprint).
    ``steps`` and ``share`` are this round's part of the budget (of the steps, and of the epochs when set)."""
    import dataclasses

    from studio.train import TrainPlan

    plan = TrainPlan(steps=steps, epochs=settings.recovery_epochs * share, minutes=settings.recovery_minutes,
                     lr=settings.recovery_lr, batch=settings.recovery_batch, batchnorm=settings.recovery_batchnorm,
                     ema=settings.recovery_ema, device=settings.recovery_device)
    frames = getattr(ctx, "frames", None)
    key = (model.provenance.sha256, model.name, plugin_id, dataclasses.asdict(settings), round_,
           frames.training_fingerprint if frames is not None else "bundled media")
    return distill(module, model.torch_module, model, plan=plan, source=settings.recovery_frames,
                   imgsz=settings.recovery_imgsz, recalibrate=settings.recovery_recalibrate,
                   features=settings.recovery_features, labels=settings.recovery_labels, resume_key=key, ctx=ctx)


def torch_fidelity(teacher_handle: ModelHandle, student_module: Any, frames: int = 12,
                   ctx: Any = None) -> dict[str, Any]:
    """Fidelity of a student module against its teacher on the judging frames, both on torch."""
    return torch_fidelity_judge(teacher_handle, frames, ctx)(student_module)


def torch_fidelity_judge(teacher_handle: ModelHandle, frames: int = 12, ctx: Any = None) -> Any:
    """``torch_fidelity`` of any student module: the teacher runs once for all of them (a compression plugin
    judges its module before and after recovery against the same teacher results)."""
    return make_judge(teacher_handle, frames, ctx, with_interval=True)[0]
