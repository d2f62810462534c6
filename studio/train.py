"""One recovery trainer: a compressed student learns its uncompressed teacher's answers on the training
side of the model's frames, and is judged every few steps on held-out frames it never trains on (the
caller's: recovery holds whole runs of the training side out, so the judging side chooses nothing).

What a model family's outputs and loss are comes from the caller (a plugin): ``forward(module, inputs)``
and ``criterion(student_outputs, teacher_outputs)``; how faithful a module is, from ``judge(module)``.
The trainer owns what every recovery needs: the device, the BatchNorm mode, AdamW or SGD with warm-up
and cosine decay, EMA weights, gradient clipping, mixed precision on CUDA, a budget in steps and
minutes, held-out fidelity, the best checkpoint (so training never leaves the model worse than it
started) and early stop at the target or when fidelity stops rising.

Why BatchNorm trains by default: with its statistics frozen, a pruned detector's distillation loss
fell while its mAP collapsed (0.37 → 0.003 in one step; 0.09 → 0.004 on a GPU), and with them in
training mode the same loss raised mAP50 from 0.09 to 0.67 (issue 17's measurements). The frozen
running statistics describe the unpruned network's activations, so the optimiser compensates for
stale normalisation with weight changes that do not transfer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from studio.tasks import TaskContext
from studio.train_data import batch_stream

ADAM_EPS = 1e-6  # AdamW's default 1e-8 turns a converged student's 1e-9 rounding-noise gradients into lr-size steps


@dataclass(frozen=True)
class TrainPlan:
    steps: int = 300
    # > 0: the run's length in passes over its training items; ``sized_for`` turns it into ``steps`` once the
    # caller knows how many items it trains on
    epochs: float = 0.0
    minutes: float = 0.0  # 0: no time limit
    lr: float = 1e-4
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9, Nesterov)
    warmup: float = 0.05  # share of the run (steps, or the time budget) with a linearly rising learning rate
    batch: int = 8
    batchnorm: str = "train"  # "train": statistics follow the batches; "frozen": running statistics kept
    ema: float = 0.0  # decay of the averaged weights that are judged and kept (0: off), ramped up from 0.1
    clip: float = 10.0  # gradient norm
    eval_every: int = 25
    patience: int = 4  # evaluations without a better fidelity before stopping (at least a tenth of the planned ones)
    target: float | None = None  # stop once held-out fidelity reaches this
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # data-loading processes: -1 picks (none on the CPU, up to 4 on a GPU)
    keep_best: bool = True  # end with the best judged weights (never worse than the start on held-out frames)
    task_weight: float = 1.0  # weight of the model's own task loss on labelled batches (when the caller has one)


def sized_for(plan: TrainPlan, items: int) -> TrainPlan:
    """``plan`` with its steps from ``plan.epochs`` passes over ``items`` training items, a batch a step (as it
    was without an epoch budget)."""
    if plan.epochs <= 0:
        return plan
    return replace(plan, steps=max(1, math.ceil(plan.epochs * items / plan.batch)))


Forward = Callable[[Any, Any], Any]
Criterion = Callable[[Any, Any], Any]
Judge = Callable[[Any], dict[str, Any]]
TaskLoss = Callable[[Any, dict[str, Any]], Any]  # (student outputs, labelled batch) -> the model's own loss
Trainable = Callable[[Any], list[Any]]  # module -> the parameters to train (default: all)


def set_batchnorm(module: Any, mode: str) -> None:
    """Everything in eval mode (dropout off, heads decode as at inference), BatchNorm as ``mode`` says."""
    import torch

    module.eval()
    if mode == "train":
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.train()


def _schedule(plan: TrainPlan) -> Callable[[float], float]:
    """The learning-rate factor at a run's progress (0 → 1): linear warm-up over ``plan.warmup`` of the
    run, then cosine decay to 1 %. Progress is steps done over planned steps or, under a time budget,
    time spent over the budget if that is further on — so a run cut by its minutes still ends on a
    decayed learning rate instead of stopping mid-warm-up or at full rate."""
    if plan.minutes > 0:
        warm = min(max(plan.warmup, 0.0), 0.99)
    else:  # whole steps, as a step-budgeted run always warmed up (at least one step)
        warm = min(max(1, round(plan.warmup * plan.steps)) / plan.steps, 0.99)

    def factor(progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress < warm:
            return 0.1 + 0.9 * progress / warm
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (progress - warm) / (1.0 - warm)))

    return factor


def _optimiser(plan: TrainPlan, params: list[Any]) -> Any:
    import torch

    if plan.optimizer == "sgd":
        return torch.optim.SGD(params, lr=plan.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.0, eps=ADAM_EPS)


def _autocast(device: Any) -> tuple[Any, Any, str]:
    """(autocast context factory, grad scaler or None, what it is): bf16/fp16 on CUDA, fp32 elsewhere."""
    import contextlib

    import torch

    if device.kind != "cuda":
        return contextlib.nullcontext, None, "fp32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler, f"mixed precision ({str(dtype).split('.')[-1]})"


class _Best:
    """The best judged weights so far, kept on the CPU."""

    def __init__(self, module: Any, fidelity: float, step: int = 0):
        self.value, self.step, self.state = fidelity, step, _cpu_state(module)

    def offer(self, module: Any, fidelity: float, step: int) -> bool:
        if fidelity <= self.value:
            return False
        self.value, self.step, self.state = fidelity, step, _cpu_state(module)
        return True


def _cpu_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def resume_path(*parts: Any) -> Path:
    """Where a run identified by ``parts`` (model hash, settings, data fingerprint…) keeps its checkpoint."""
    from studio.paths import cache_dir

    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    folder = cache_dir() / "recovery"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.pt"


def train(student: Any, teacher: Any, *, batches: Any, held_out: Any, forward: Forward, criterion: Criterion,
          judge: Judge, plan: TrainPlan, ctx: TaskContext, task_loss: TaskLoss | None = None,
          trainable: Trainable | None = None, resume: Path | None = None,
          judged_on: str = "the judging frames") -> dict[str, Any]:
    """Fine-tune ``student`` in place toward ``teacher``; it ends holding its best judged weights.

    ``batches[i]`` is an input tensor, or a dict with the inputs under ``"img"`` and labels beside them
    (then ``task_loss`` is mixed in). With ``resume``, a checkpoint is written there at every evaluation
    and a run that finds one (same plan, same student shapes) continues from it; it is removed when
    the run ends normally. ``ctx.request_stop()`` ends the run early with the best weights.
    """
    import torch

    from studio.device import pick

    threads = torch.get_num_threads()
    # Training uses every core it may: a measurement earlier in the same process (a benchmark, a fidelity
    # check on one thread) may have left torch's process-wide setting at 1 — 1.4–1.65× slower recovery.
    torch.set_num_threads(_usable_cores())
    device = pick(plan.device)
    torch.manual_seed(plan.seed)
    started = time.perf_counter()
    try:
        student.to(device.torch)
        teacher.to(device.torch).eval()
        run = _Run(student, teacher, forward, criterion, task_loss, judge, plan, device, ctx, trainable, resume,
                   judged_on)
        report = run.go(batches, held_out.to(device.torch))
    finally:  # the teacher is the loaded model: it goes back where it was, whatever happened
        teacher.to("cpu")
        student.to("cpu").eval()
        torch.set_num_threads(threads)
    return report | {"device": device.describe(), "minutes": round((time.perf_counter() - started) / 60, 3)}


def _patience(plan: TrainPlan) -> int:
    """Evaluations without progress before a run stops: ``plan.patience``, but never less than a tenth of the
    evaluations planned, so that a long run is not cut in its first tenth, while its learning rate is still
    high and the held-out curve noisy (measured: a YOLOv8 curve swings 0.73–0.94 between evaluations)."""
    return max(plan.patience, math.ceil(plan.steps / plan.eval_every / 10))


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def _images(batch: Any) -> Any:
    return batch["img"] if isinstance(batch, dict) else batch


def _judged(module: Any, judge: Judge, mode: str) -> float:
    module.eval()
    value = float(judge(module)["value"])
    set_batchnorm(module, mode)
    return value


def ramped_ema(decay: float) -> Callable[..., None]:
    """An EMA update whose decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's
    ``num_updates``): a recovery runs hundreds of steps, not Ultralytics' hundred thousand, and a fixed 0.99
    would keep the untrained start in the average for most of the run. BatchNorm statistics (buffers) are
    averaged with the weights, so the judged network is one whole average, not averaged weights normalised
    by the last augmented batches' statistics."""
    import torch

    @torch.no_grad()
    def update(averaged: list[Any], current: list[Any], updates: Any) -> None:
        n = int(updates)
        rate = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, rate)
        else:  # integer buffers (BatchNorm's batch count) follow the student
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update


class _Stepper:
    """One optimiser step at a time: schedule, clipping, mixed precision and EMA kept out of the loop."""

    def __init__(self, student: Any, plan: TrainPlan, device: Any, trainable: Trainable | None):
        from torch.optim.swa_utils import AveragedModel

        for param in student.parameters():
            param.requires_grad_(False)
        self.params = list(trainable(student)) if trainable is not None else list(student.parameters())
        for param in self.params:
            param.requires_grad_(True)
        self.plan, self.device = plan, device
        self.optimiser = _optimiser(plan, self.params)
        self.factor = _schedule(plan)
        self.averaged = (AveragedModel(student, multi_avg_fn=ramped_ema(plan.ema), use_buffers=True)
                         if plan.ema else None)
        self.autocast, self.scaler, self.precision = _autocast(device)

    def __call__(self, student: Any, teacher: Any, batch: Any, forward: Forward, criterion: Criterion,
                 task_loss: TaskLoss | None, progress: float) -> tuple[float, float | None]:
        """(total loss, the task loss part or None) of one step taken at ``progress`` (0 → 1) of the run."""
        import torch

        for group in self.optimiser.param_groups:
            group["lr"] = self.plan.lr * self.factor(progress)

        if isinstance(batch, dict):
            batch = {k: v.to(self.device.torch, non_blocking=True) if hasattr(v, "to") else v
                     for k, v in batch.items()}
        else:
            batch = batch.to(self.device.torch, non_blocking=True)
        inputs = _images(batch)
        with torch.no_grad(), self.autocast():
            targets = forward(teacher, inputs)
        with self.autocast():
            outputs = forward(student, inputs)
            loss = criterion(outputs, targets)
            own = task_loss(outputs, batch) if task_loss is not None and isinstance(batch, dict) else None
            if own is not None:
                loss = loss + self.plan.task_weight * own
        self.optimiser.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.scaler:
            self.scaler.unscale_(self.optimiser)
        torch.nn.utils.clip_grad_norm_(self.params, self.plan.clip)
        if self.scaler:
            self.scaler.step(self.optimiser)
            self.scaler.update()
        else:
            self.optimiser.step()
        if self.averaged is not None:
            self.averaged.update_parameters(student)
        return float(loss.detach()), (float(own.detach()) if own is not None else None)

    def judged_module(self, student: Any) -> Any:
        return self.averaged.module if self.averaged is not None else student

    def state(self) -> dict[str, Any]:
        return {"optimiser": self.optimiser.state_dict(),
                "averaged": self.averaged.state_dict() if self.averaged is not None else None}

    def load(self, state: dict[str, Any]) -> None:
        self.optimiser.load_state_dict(state["optimiser"])
        if self.averaged is not None and state["averaged"] is not None:
            self.averaged.load_state_dict(state["averaged"])


class _Run:
    """One training run: its state (step, losses, curve, best) and where it is checkpointed."""

    def __init__(self, student, teacher, forward, criterion, task_loss, judge, plan, device, ctx, trainable, resume,
                 judged_on) -> None:
        self.student, self.teacher, self.forward, self.criterion = student, teacher, forward, criterion
        self.task_loss, self.judge, self.plan, self.device, self.ctx = task_loss, judge, plan, device, ctx
        self.trainable, self.resume = trainable, resume
        self.losses: list[float] = []
        self.task_losses: list[float] = []
        self.step, self.resumed_from = 0, 0
        self.elapsed = 0.0  # seconds of training before this process (a resumed run), for a time budget
        self.judged_on = judged_on

    def go(self, batches: Any, held_out: Any) -> dict[str, Any]:
        plan, ctx = self.plan, self.ctx
        loss_before = self._held_out_loss(held_out)
        start_fidelity = _judged(self.student, self.judge, "frozen")
        self.best = _Best(self.student, start_fidelity)
        self.curve = [{"step": 0, "fidelity": round(start_fidelity, 4)}]
        ctx.metric(kind="train", step=0, steps=plan.steps, fidelity=round(start_fidelity, 4))
        self.stepper = _Stepper(self.student, plan, self.device, self.trainable)
        self._load_checkpoint()
        workers = plan.workers if plan.workers >= 0 else (0 if self.device.kind == "cpu" else 4)
        stream, loading = batch_stream(batches, workers, start=self.step)
        set_batchnorm(self.student, plan.batchnorm)
        stopped = self._loop(stream)
        for param in self.student.parameters():
            param.requires_grad_(False)
        if plan.keep_best:
            self.student.load_state_dict(self.best.state)
        elif self.stepper.averaged is not None:
            self.student.load_state_dict(self.stepper.averaged.module.state_dict())
        self.student.eval()
        if self.resume is not None:
            self.resume.unlink(missing_ok=True)  # finished: a later run of the same job starts afresh
        return self._report(stopped, start_fidelity, loss_before, loading, held_out)

    def _loop(self, stream: Any) -> str:
        plan, ctx = self.plan, self.ctx
        budget, started, first = plan.minutes * 60, time.perf_counter(), self.step
        stale, patience = 0, _patience(plan)
        for step, batch in enumerate(stream, start=first + 1):
            self.step = step
            spent = self.elapsed + time.perf_counter() - started
            progress = max((step - 1) / plan.steps, spent / budget if budget > 0 else 0.0)
            eta = _eta(started, step - 1 - first, plan.steps - step + 1, budget - spent if budget > 0 else None)
            ctx.progress((step - 1) / plan.steps,
                         f"recovery step {step}/{plan.steps}, held-out fidelity {self.best.value:.3f}{eta}")
            loss, own = self.stepper(self.student, self.teacher, batch, self.forward, self.criterion, self.task_loss,
                                     progress)
            self.losses.append(loss)
            if own is not None:
                self.task_losses.append(own)
            ctx.metric(kind="train", step=step, steps=plan.steps, loss=round(loss, 6))
            timed_out = budget > 0 and self.elapsed + time.perf_counter() - started > budget
            stop = ctx.stop_requested
            if step % plan.eval_every == 0 or step >= plan.steps or timed_out or stop:
                stale = 0 if self._evaluate(step) else stale + 1
                self._save_checkpoint(self.elapsed + time.perf_counter() - started)
                if stop:
                    return "stopped by the user (best weights kept)"
                if plan.target is not None and self.best.value >= plan.target:
                    return f"target {plan.target} reached"
                if stale >= patience:
                    return f"fidelity did not rise for {stale} evaluations"
            if timed_out:
                return "budget (minutes)"
            if step >= plan.steps:
                break
        return "budget (steps)"

    def _evaluate(self, step: int) -> bool:
        judged = self.stepper.judged_module(self.student)
        value = _judged(judged, self.judge, self.plan.batchnorm)
        lr = self.stepper.optimiser.param_groups[0]["lr"]  # the rate of the step just taken
        self.curve.append({"step": step, "fidelity": round(value, 4), "loss": round(self.losses[-1], 6),
                           "lr": float(f"{lr:.4g}")})
        better = self.best.offer(judged, value, step)
        self.ctx.metric(kind="train", step=step, steps=self.plan.steps, fidelity=round(value, 4),
                        best=round(self.best.value, 4))
        return better

    def _held_out_loss(self, held_out: Any) -> float:
        import torch

        self.student.eval()
        with torch.no_grad():
            return round(float(self.criterion(self.forward(self.student, held_out),
                                              self.forward(self.teacher, held_out))), 6)

    def _shapes(self) -> dict[str, list[int]]:
        return {k: list(v.shape) for k, v in self.student.state_dict().items()}

    def _save_checkpoint(self, elapsed: float) -> None:
        if self.resume is None:
            return
        import torch

        state = {"plan": asdict(self.plan), "shapes": self._shapes(), "step": self.step, "elapsed": elapsed,
                 "student": _cpu_state(self.student), "stepper": self.stepper.state(), "losses": self.losses,
                 "task_losses": self.task_losses, "curve": self.curve,
                 "best": {"value": self.best.value, "step": self.best.step, "state": self.best.state}}
        partial = self.resume.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, partial)
        os.replace(partial, self.resume)  # a kill mid-write leaves the previous checkpoint whole

    def _load_checkpoint(self) -> None:
        if self.resume is None or not self.resume.is_file():
            return
        import torch

        try:
            state = torch.load(self.resume, map_location="cpu", weights_only=True)
        except Exception:  # a checkpoint from another torch, or damaged: start afresh rather than fail
            self.resume.unlink(missing_ok=True)
            return
        if state.get("plan") != json.loads(json.dumps(asdict(self.plan))) or state.get("shapes") != self._shapes():
            return  # another job's checkpoint under the same key: never mix them
        self.student.load_state_dict(state["student"])
        self.stepper.load(state["stepper"])
        self.step = self.resumed_from = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.losses, self.task_losses, self.curve = state["losses"], state["task_losses"], state["curve"]
        self.best.value, self.best.step, self.best.state = (state["best"]["value"], state["best"]["step"],
                                                            state["best"]["state"])

    def _report(self, stopped: str, start_fidelity: float, loss_before: float, loading: str,
                held_out: Any) -> dict[str, Any]:
        plan, losses = self.plan, self.losses
        tenth = max(1, len(losses) // 10)
        report = {
            "steps": self.step, "planned_steps": plan.steps, "epochs": plan.epochs or None, "stopped": stopped,
            "batch": plan.batch, "lr": plan.lr,
            "optimizer": plan.optimizer, "batchnorm": plan.batchnorm, "ema": plan.ema,
            "precision": self.stepper.precision, "batches": loading, "fidelity_start": round(start_fidelity, 4),
            "fidelity_best": round(self.best.value, 4), "best_step": self.best.step, "fidelity_curve": self.curve,
            "loss_start": round(sum(losses[:tenth]) / tenth, 6) if losses else None,
            "loss_end": round(sum(losses[-tenth:]) / tenth, 6) if losses else None,
            "held_out_loss_before": loss_before, "held_out_loss_after": self._held_out_loss(held_out),
            "method": (f"distillation toward the uncompressed model, {plan.optimizer} lr {plan.lr} (warm-up "
                       f"{plan.warmup:.0%}, cosine), BatchNorm {plan.batchnorm}, gradient norm ≤ {plan.clip}"
                       + (f", EMA {plan.ema}" if plan.ema else "") + f"; held-out fidelity every {plan.eval_every} "
                       f"steps on {self.judged_on}, best weights kept"),
        }
        if self.task_losses:
            report["task_loss"] = {"batches": len(self.task_losses), "weight": plan.task_weight,
                                   "start": round(self.task_losses[0], 6), "end": round(self.task_losses[-1], 6)}
        if self.resumed_from:
            report["resumed_from_step"] = self.resumed_from
        return report


def _eta(started: float, done: int, left: int, time_left: float | None = None) -> str:
    """The time left at the pace so far, or what remains of a time budget if that ends first."""
    if done <= 0:
        return ""
    seconds = (time.perf_counter() - started) / done * left
    if time_left is not None:
        seconds = max(0.0, min(seconds, time_left))
    return f", about {seconds / 60:.0f} min left" if seconds >= 90 else f", about {seconds:.0f} s left"
