"""Exit heads trained by the engine's trainer (``studio.train``): the backbone frozen, the heads learn the
final head's softened answers (self-distillation) on the training side of the model's frames.

The training side is split in two before anything is trained: most of it trains the heads, and a few
contiguous runs of it (``choosing_split``) are held out to pick the best checkpoint and, later, the
exit threshold. The judging side is then never used to choose anything, so the figures reported on it
are not flattered by a choice made on the same frames.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext
from studio.train_data import CHOOSING_HELD_OUT, CHOOSING_RUNS, choosing_split, spread

TRAINING_FRAMES = 2048  # the training side is read up to this many frames (spread over all of it)
HELD_OUT_LOSS_FRAMES = 8
WARM_FRAMES = 1024  # the warm start reads the training side up to this many frames (spread over all of it)
WARM_STEPS = 400  # full-batch Adam steps per head on the cached features (seconds on a CPU)


def head_parameters(net: Any) -> list[Any]:
    """What the trainer trains: the exit heads only (the backbone and final head stay the original model)."""
    return [p for segment in net.segments if segment.head is not None for p in segment.head.parameters()]


class OnePass:
    """``forward`` for the trainer that runs the frozen backbone once per batch for teacher and student.

    The backbone is frozen and identical in both, so the final head's answer (the teacher's) and the
    features the exit heads read (the student's) come from the same pass: the first call on a batch
    computes them without gradients, the second reuses them (in either order). Only the heads, applied
    to the cached features, carry gradients. This halves a CPU training step.
    """

    def __init__(self, net: Any):
        self.net = net
        self._x: Any = None  # the batch the cached pass ran on
        self._features: list[Any] = []  # the exit heads' inputs for that batch
        self._final: Any = None  # the final head's answer for that batch

    def _pass(self, x: Any) -> None:
        import torch

        if self._x is x:
            return
        features = []
        with torch.no_grad():
            y = x
            for segment in self.net.segments[:-1]:
                for part in segment.parts:
                    y = part(y)
                features.append(y)
            self._final = self.net.segments[-1](y)
        self._x, self._features = x, features

    def __call__(self, module: Any, x: Any) -> Any:
        self._pass(x)
        if not hasattr(module, "segments"):  # the teacher: the original model, whose answer is the final head's
            return self._final
        return [segment.head(f) for segment, f in zip(module.segments[:-1], self._features, strict=True)]


def distillation_criterion(temperature: float):
    """KL divergence of each exit's softened answer to the final head's (×T², so gradients keep their scale)."""
    from torch.nn import functional as F

    def criterion(exits: list[Any], final: Any) -> Any:
        target = F.softmax(final.float() / temperature, 1)
        return sum(F.kl_div(F.log_softmax(logits.float() / temperature, 1), target, reduction="batchmean")
                   for logits in exits) * temperature**2

    return criterion


class AgreementJudge:
    """Mean top-1 agreement of the exits with the final head on fixed frames: rises as the heads get better.

    The backbone is frozen, so each exit's features and the final answer are computed once; a judgement
    then only runs the heads (milliseconds instead of a forward pass per evaluation).
    """

    def __init__(self, net: Any, inputs: Any):
        import torch

        with torch.no_grad():
            self.features, x = [], inputs
            for segment in net.segments[:-1]:
                for part in segment.parts:
                    x = part(x)
                self.features.append(x)
            self.final = net.segments[-1](x).argmax(1)
        self.frames = int(inputs.shape[0])

    def __call__(self, module: Any) -> dict[str, Any]:
        import torch

        heads = [segment.head for segment in module.segments[:-1]]
        device = next(module.parameters()).device
        with torch.no_grad():
            per_exit = [float((head(f.to(device)).argmax(1) == self.final.to(device)).float().mean())
                        for head, f in zip(heads, self.features, strict=True)]
        return {"value": float(np.mean(per_exit)), "per_exit": [round(v, 4) for v in per_exit],
                "frames": self.frames}


def warm_start(net: Any, frames: list[np.ndarray], model: ModelHandle, temperature: float) -> dict[str, Any]:
    """Fit each head on cached features of the un-augmented training frames before the trainer runs.

    The backbone is frozen and a head is global pooling then one linear layer, so its whole problem is a
    softmax regression on pooled features: one backbone pass over the frames, then full-batch steps that
    cost milliseconds. On a busy 2-core CPU the trainer managed 145 augmented steps in 12 minutes on
    vtest.avi, after which both heads answered the video's most frequent class for every frame (0.72
    agreement, nothing for an exit score to separate); from this start the trainer only refines.
    """
    import time

    import torch
    from torch.nn import functional as F

    from studio.train_data import plain_batch

    started = time.perf_counter()
    frames = spread(frames, WARM_FRAMES)
    size = model.required_image_input().size
    net.eval()
    pooled: list[list[Any]] = [[] for _ in net.segments[:-1]]
    finals = []
    with torch.no_grad():
        for start in range(0, len(frames), 32):
            x = plain_batch(frames[start:start + 32], model, size)
            for index, segment in enumerate(net.segments[:-1]):
                for part in segment.parts:
                    x = part(x)
                pooled[index].append(F.adaptive_avg_pool2d(x, 1).flatten(1))
            finals.append(net.segments[-1](x))
    final = torch.cat(finals)
    target = F.softmax(final / temperature, 1)
    agreement = []
    for segment, parts in zip(net.segments[:-1], pooled, strict=True):
        features, fc = torch.cat(parts), segment.head.fc
        optimizer = torch.optim.Adam(fc.parameters(), lr=1e-2)
        for _ in range(WARM_STEPS):
            optimizer.zero_grad()
            loss = F.kl_div(F.log_softmax(fc(features) / temperature, 1), target, reduction="batchmean")
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            agreement.append(round(float((fc(features).argmax(1) == final.argmax(1)).float().mean()), 4))
    return {"frames": len(frames), "steps": WARM_STEPS, "agreement_on_these_frames": agreement,
            "seconds": round(time.perf_counter() - started, 1),
            "what": "each head fitted on pooled features of the un-augmented training side (full-batch Adam, "
                    "KL to the final head at the distillation temperature) before the trainer"}


def train_heads(early: Any, model: ModelHandle, settings: Any, ctx: TaskContext) -> tuple[dict[str, Any], list, list]:
    """Train ``early``'s heads in place; (report, the training frames (the gate's), the choosing frames kept for
    the threshold)."""
    from studio.calibration import calibration_frames
    from studio.train import TrainPlan, sized_for, train
    from studio.train_data import Batches, plain_batch

    frames, info = calibration_frames(settings.frames, TRAINING_FRAMES, ctx)
    training, choosing = choosing_split(frames)
    size = model.required_image_input().size  # the plugin takes EfficientNet-Lite classifiers only
    warm = warm_start(early, training, model, settings.temperature) if settings.warm_start else None
    plan = sized_for(TrainPlan(steps=settings.steps, epochs=settings.epochs, minutes=settings.minutes, lr=settings.lr,
                               batch=settings.batch, batchnorm="frozen", device=settings.device,
                               patience=settings.patience), len(training))
    plan = replace(plan, eval_every=max(1, min(25, plan.steps)))
    judge = AgreementJudge(early.eval(), plain_batch(choosing, model, size))
    held_out = plain_batch(choosing[:HELD_OUT_LOSS_FRAMES], model, size)
    report = train(early, model.torch_module, batches=Batches(training, model, size, plan.batch, plan.seed, plan.steps),
                   held_out=held_out, forward=OnePass(early), criterion=distillation_criterion(settings.temperature),
                   judge=judge, plan=plan, ctx=ctx, trainable=head_parameters,
                   judged_on="the choosing frames (held out from training, not the judging side)")
    report["judge"] = judge(early) | {
        "what": "mean top-1 agreement of the exits with the final head, on the choosing frames (held out from "
                "training; the best checkpoint is the one that agreed most there, not on the judging side)"}
    report["warm_start"] = warm
    report["frames"] = info | {"training": len(training), "choosing": len(choosing),
                               "split": f"{CHOOSING_RUNS} contiguous runs of the training side, runs "
                                        f"{' and '.join(str(r + 1) for r in CHOOSING_HELD_OUT)} held out to choose"}
    report["loss"] = (f"KL divergence of each exit to the final head at temperature {settings.temperature} (×T²), "
                      "backbone frozen (BatchNorm statistics kept), augmented unlabelled frames")
    return report, training, choosing
