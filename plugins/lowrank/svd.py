"""Low-rank factorisation (SVD): a Linear or 1×1 convolution W (out × in) becomes B·A with rank r.

r is the smallest rank keeping ``energy`` of the squared singular values, or ``rank_ratio`` × full
rank. A layer is replaced only where r·(in + out) < in·out, i.e. where it really saves work. In a
language model only the attention and MLP projections of the decoder/encoder blocks are candidates
(``targets``): embeddings and the LM head stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from studio.compress_target import prune_target
from studio.model import ModelHandle
from studio.plugin_api import Kind, SettingsError, option
from studio.recovery.settings import RecoverySettings, recovery_wanted
from studio.tasks import TaskContext
from studio.torch_variant import torch_variant


@dataclass
class _LowRankOwnSettings:
    mode: Literal["energy", "ratio"] = option("energy", label="Choose the rank by")
    energy: float = option(0.95, label="Energy kept", min=0.5, max=0.9999,
                           help="Share of the squared singular values the factors keep", search=(0.8, 0.99))
    rank_ratio: float = option(0.5, label="Rank ratio", min=0.05, max=1.0)
    min_features: int = option(64, label="Smallest layer to factorise", min=8, max=100000,
                               help="Layers with fewer input or output features are left alone")
    targets: Literal["attention+mlp", "attention", "mlp"] = option(
        "attention+mlp", label="Projections (language models)",
        help="Which projections of a transformer block to factorise; ignored for vision models")


@dataclass
class LowRankSettings(RecoverySettings, _LowRankOwnSettings):
    """Low rank's own settings, then recovery's (vision models; language models are not fine-tuned here)."""


class LowRank:
    id = "lowrank.svd"
    title = "Low-rank factorisation (SVD)"
    kind = Kind.LOWRANK
    Settings = LowRankSettings
    settings_version = 2

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 had no recovery (its default of 0 steps keeps that); nothing else changed.
        return data

    def check(self, model: ModelHandle) -> list[str]:
        if model.torch_module is None:
            return ["it has no PyTorch module"]
        if model.metadata.get("lm_runtime", "torch") != "torch":
            return [f"it already runs as a {model.metadata['lm_runtime']} variant"]
        from torch import nn

        from plugins.lowrank.factors import _is_pointwise

        has = any(isinstance(m, nn.Linear) or _is_pointwise(m) for m in model.torch_module.modules())
        return [] if has else ["it has no Linear or 1×1 convolution to factorise"]

    def apply(self, model: ModelHandle, settings: LowRankSettings, ctx: TaskContext) -> ModelHandle:
        from plugins.lowrank.factors import replacement_for
        from studio.lm.variants import is_language_model

        if is_language_model(model):
            from plugins.lowrank.language import factorise_language_model

            if recovery_wanted(settings):
                raise SettingsError("recovery fine-tunes vision models; a language model is factorised without it",
                                    fix="set recovery steps and epochs to 0")
            return factorise_language_model(model, settings, ctx)

        target = prune_target(model)  # a private copy, and the output layers that must stay whole
        module = target.module.eval()
        ignored = {id(sub) for kept in target.ignored for sub in kept.modules()}
        rows: list[dict[str, Any]] = []
        candidates = [(name, m) for name, m in module.named_modules() if name]
        for index, (name, layer) in enumerate(candidates):
            ctx.progress(0.3 * index / len(candidates), f"factorising {name}")
            replacement = replacement_for(layer, settings, rows, name, model, ignored)
            if replacement is not None:
                parent_name, _, child = name.rpartition(".")
                setattr(module.get_submodule(parent_name) if parent_name else module, child, replacement)
        report = {"factorised": len(rows), "layers": rows[:200],
                  "params_saved": sum(r["params_before"] - r["params_after"] for r in rows)}
        if recovery_wanted(settings) and rows:
            from studio.recovery.distill import recover, torch_fidelity_judge

            judge = torch_fidelity_judge(model, ctx=ctx)  # the teacher's results, for before and after
            report["fidelity_before_recovery"] = judge(module)
            report["recovery"] = recover(model, module, settings, self.id, ctx.sub(0.3, 0.95),
                                         steps=settings.recovery_steps)
            report["fidelity_after_recovery"] = judge(module)
        ctx.add_report(report)
        ctx.progress(1.0, "done")
        return torch_variant(model, module, suffix="lowrank" + ("r" if recovery_wanted(settings) and rows else ""),
                             note=f"{len(rows)} layers factorised ({settings.mode})")
