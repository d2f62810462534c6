"""Low-rank factors for the Linear projections inside a transformer's blocks (the torch side)."""

from __future__ import annotations

import copy
import re
from typing import Any

from studio.errors import UnsupportedError
from studio.model import ModelHandle
from studio.tasks import TaskContext

ATTENTION = re.compile(r"\.(self_attn|attention|attn)\.")
MLP = re.compile(r"\.(mlp|intermediate|output|ffn|feed_forward)\.")
BLOCK = re.compile(r"\.(layers|layer|h|blocks)\.\d+\.")


def _wanted(name: str, targets: str) -> bool:
    if not BLOCK.search(f".{name}"):
        return False  # embeddings, the final norm and the LM head are never factorised
    attention = bool(ATTENTION.search(f".{name}."))
    if targets == "attention":
        return attention
    if targets == "mlp":
        return not attention and bool(MLP.search(f".{name}."))
    return True


def _linear_weight(layer: Any) -> Any:
    """The (out, in) matrix of a projection: nn.Linear's own, or the transpose of transformers' Conv1D
    (GPT-2 and its kin store (in, out) and compute x @ W + b), so one Linear-shaped factorisation fits both."""
    from torch import nn

    return layer.weight.data if isinstance(layer, nn.Linear) else layer.weight.data.T.contiguous()


def factorise_language_model(model: ModelHandle, settings: Any, ctx: TaskContext) -> ModelHandle:
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    from plugins.lowrank.factors import _factor
    from studio.lm.variants import torch_lm_variant

    module = copy.deepcopy(model.torch_module).eval()  # the base model is never modified
    rows: list[dict[str, Any]] = []
    candidates = [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Linear, Conv1D)) and
                  _wanted(name, settings.targets)]
    if not candidates:
        raise UnsupportedError(f"{model.name} has no {settings.targets} projection (Linear or Conv1D) inside "
                               "numbered blocks to factorise", fix="choose other targets, or another model")
    for index, (name, layer) in enumerate(candidates):
        ctx.check_cancelled()
        ctx.progress(index / max(len(candidates), 1), f"factorising {name}")
        bias = layer.bias.data if layer.bias is not None else None
        replacement = _factor(_linear_weight(layer), bias, None, settings, rows, name)
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(module.get_submodule(parent_name), child, replacement)
    ctx.add_report({"factorised": len(rows), "candidates": len(candidates), "layers": rows[:200],
                    "params_saved": sum(r["params_before"] - r["params_after"] for r in rows)})
    if not rows:
        ctx.add_report({"warning": "no projection was factorised: at this setting the factors would not be smaller "
                                   "(try mode 'ratio' or a lower energy)"})
    ctx.progress(1.0, "done")
    return torch_lm_variant(model, module, suffix="lowrank",
                            note=f"{len(rows)} of {len(candidates)} projections factorised ({settings.mode})")
