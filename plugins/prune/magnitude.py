"""Unstructured magnitude pruning: zero the smallest weights. Honest about what it does not do.

Zeros are still stored and still multiplied after a dense export (ONNX, TFLite, CoreML): neither the
file size nor the speed changes. The report says so and counts the zeros; the benefit needs sparse
kernels or a compressor on the file, which this plugin does not pretend to provide.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

from studio.compress_target import prune_target
from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, option
from studio.tasks import TaskContext
from studio.torch_variant import torch_variant

HONEST_NOTE = ("unstructured zeros are kept by a dense export: file size and latency do not change; "
               "they pay off only with sparse kernels or compression")


@dataclass
class MagnitudeSettings:
    sparsity: float = option(0.5, label="Share of weights set to zero", min=0.05, max=0.95)
    scope: Literal["global", "layer"] = option("global", label="Threshold",
                                               help="global: one threshold for all layers; layer: per layer")


class MagnitudePrune:
    id = "prune.magnitude"
    title = "Magnitude pruning (unstructured)"
    kind = Kind.PRUNE
    Settings = MagnitudeSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        if model.task in (Task.GENERATE, Task.EMBED):
            return ["magnitude pruning is for vision models; for a language model use low-rank or INT4 weights"]
        return [] if model.torch_module is not None else ["it has no PyTorch module"]

    def apply(self, model: ModelHandle, settings: MagnitudeSettings, ctx: TaskContext) -> ModelHandle:
        from torch import nn
        from torch.nn.utils import prune

        target = prune_target(model)
        ignored = {id(m) for m in target.ignored}
        module = copy.deepcopy(model.torch_module).eval() if model.metadata.get("family") != "ultralytics" \
            else target.module.eval()
        layers = [m for m in module.modules()
                  if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in ignored]
        pairs = [(m, "weight") for m in layers]
        ctx.progress(0.2, "ranking weights")
        if settings.scope == "global":
            prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=settings.sparsity)
        else:
            for layer, name in pairs:
                prune.l1_unstructured(layer, name, amount=settings.sparsity)
        for layer, name in pairs:
            prune.remove(layer, name)  # bake the mask into the weight
        total = sum(m.weight.numel() for m in layers)
        zeros = sum(int((m.weight == 0).sum()) for m in layers)
        ctx.add_report({"weights_considered": total, "zeros": zeros, "sparsity": round(zeros / max(total, 1), 4),
                        "layers": len(layers), "note": HONEST_NOTE})
        ctx.progress(1.0, "done")
        return torch_variant(model, module, suffix=f"sparse{round(settings.sparsity * 100)}",
                             note=f"{zeros / max(total, 1):.0%} of weights zero; {HONEST_NOTE}")
