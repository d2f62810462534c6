"""Structured channel pruning with torch-pruning: fewer channels, so less work after any export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plugins.prune.trace import trace_problem
from studio.compress_target import prune_target
from studio.model import ModelHandle
from studio.plugin_api import Kind, option
from studio.recovery.settings import RecoverySettings, recovery_wanted
from studio.tasks import TaskContext
from studio.torch_variant import torch_variant


@dataclass
class _PruneOwnSettings:
    ratio: float = option(0.3, label="Share of channels to remove", min=0.05, max=0.9,
                          help="Per layer; the detection head and attention blocks are left whole",
                          search=(0.1, 0.6))
    criterion: Literal["output_error", "l1", "bn_scale"] = option(
        "output_error", label="Importance",
        help="output_error: what removing a channel changes in the layers reading it (activation variance "
             "on calibration frames × their weights); l1: weight magnitude; bn_scale: BatchNorm scale")
    compensate: bool = option(True, label="Fold removed channels' mean into the next layer",
                              help="A removed channel's average output is added to its consumers' bias "
                                   "(measured on calibration frames), so near-constant channels vanish cleanly")
    iterative_steps: int = option(1, label="Steps", min=1, max=10, help="Reach the ratio in this many steps")
    round_to: int = option(8, label="Keep channel counts a multiple of", min=1, max=64,
                           help="CPU kernels work in blocks of 8–16 channels: odd counts can run slower")


@dataclass
class PruneChannelsSettings(RecoverySettings, _PruneOwnSettings):
    """Pruning's own settings first (the form shows them in this order), then recovery's."""

    recovery_schedule: Literal["end", "each_step"] = option(
        "end", label="Recover",
        help="end: once, after the last pruning step; each_step: prune → recover → prune … (the recovery "
             "steps are shared among the pruning steps)")


class PruneChannels:
    id = "prune.channels"
    title = "Channel pruning (structured)"
    kind = Kind.PRUNE
    Settings = PruneChannelsSettings
    settings_version = 4

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 pruned by L1 without compensation: a replayed recipe keeps doing exactly that.
        if version < 2:
            data = {"criterion": "l1", "compensate": False, **data}
        # Version 2 recovered with frozen BatchNorm at lr 5e-4, batch 2 (the defaults a v2 recipe may omit).
        if version < 3:
            data = {"recovery_lr": 5e-4, "recovery_batch": 2, **data, "recovery_batchnorm": "frozen"}
        # Version 3 matched the head's maps by MSE and never read labels.
        if version < 4:
            data = {**data, "recovery_features": "mse", "recovery_labels": False}
        return data

    def check(self, model: ModelHandle) -> list[str]:
        problem = trace_problem(model)
        return [problem] if problem else []

    def apply(self, model: ModelHandle, settings: PruneChannelsSettings, ctx: TaskContext) -> ModelHandle:
        import torch
        import torch_pruning as tp

        from plugins.prune.compensate import InputStats, OutputErrorImportance, compensate_group, stats_batches

        target = prune_target(model)
        batches, frames_info = stats_batches(model, target.example_shape, ctx)
        stats = InputStats(target.module.eval(), batches)
        importance = {"l1": lambda: tp.importance.MagnitudeImportance(p=1),
                      "bn_scale": tp.importance.BNScaleImportance,
                      "output_error": lambda: OutputErrorImportance(stats)}[settings.criterion]()
        pruner = tp.pruner.MetaPruner(target.module, torch.zeros(target.example_shape), importance=importance,
                                      pruning_ratio=settings.ratio, iterative_steps=settings.iterative_steps,
                                      ignored_layers=target.ignored, global_pruning=False,
                                      round_to=settings.round_to if settings.round_to > 1 else None)
        before = sum(p.numel() for p in target.module.parameters())
        folded = 0
        recoveries: list[dict] = []
        recovering = recovery_wanted(settings)
        each_step = recovering and settings.recovery_schedule == "each_step"
        for step in range(settings.iterative_steps):
            ctx.progress(0.1 * step / settings.iterative_steps, f"pruning step {step + 1}/{settings.iterative_steps}")
            ctx.check_cancelled()
            if step:  # statistics of the network as it is now, for this step's importance and compensation
                stats = InputStats(target.module.eval(), batches)
                if isinstance(importance, OutputErrorImportance):
                    importance.stats = stats
            for group in pruner.step(interactive=True):
                folded += compensate_group(group, pruner.DG, stats, fold=settings.compensate)
                group.prune()
            if each_step:  # prune → recover → prune: each step starts from a recovered network
                steps = settings.iterative_steps
                share = (0.1 + 0.85 * step / steps, 0.1 + 0.85 * (step + 1) / steps)
                recoveries.append(self._recover(model, target.module, settings, ctx.sub(*share), step,
                                                max(1, settings.recovery_steps // steps), 1 / steps))
        module = target.module.eval()
        after = sum(p.numel() for p in module.parameters())
        report = {"params_before": before, "params_after": after, "ratio": settings.ratio,
                  "criterion": settings.criterion, "kept_whole": len(target.ignored),
                  "compensated_layers": folded, "statistics_frames": frames_info}
        if recovering:
            from studio.recovery.distill import torch_fidelity_judge

            judge = torch_fidelity_judge(model, ctx=ctx)  # the teacher's results, for before and after
            if not each_step:
                report["fidelity_before_recovery"] = judge(module)
                recoveries.append(self._recover(model, module, settings, ctx.sub(0.1, 0.95), 0,
                                                settings.recovery_steps, 1.0))
            report["recovery"] = recoveries[-1] if len(recoveries) == 1 else recoveries[-1] | {"rounds": recoveries}
            report["fidelity_after_recovery"] = judge(module)
        ctx.add_report(report)
        ctx.progress(1.0, "done")
        suffix = f"pruned{round(settings.ratio * 100)}" + ("r" if recovering else "")
        return torch_variant(model, module, suffix=suffix,
                             note=f"{settings.ratio:.0%} of channels removed ({settings.criterion})")

    @staticmethod
    def _recover(model: ModelHandle, module: object, settings: PruneChannelsSettings, ctx: TaskContext, round_: int,
                 steps: int, share: float) -> dict:
        from studio.recovery.distill import recover

        return recover(model, module, settings, PruneChannels.id, ctx, steps=steps, round_=round_, share=share)
