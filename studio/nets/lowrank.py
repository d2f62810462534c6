"""A rank-r pair of layers standing in for one Linear or 1×1 convolution (engine-side: saved models
with factorised layers reload only where the class can be imported)."""

from __future__ import annotations

from torch import nn


class LowRankConv(nn.Module):
    """An Ultralytics ``Conv`` (conv + BN + activation) whose conv is two 1×1 factors with BN folded in.

    Ultralytics' exporter fuses every ``Conv`` that still has a ``bn``; this block has none, so the
    factorised form survives export. ``f``/``i``/``type`` keep Ultralytics' layer routing working.
    """

    def __init__(self, first: nn.Module, second: nn.Module, act: nn.Module, source: nn.Module | None = None):
        super().__init__()
        self.first, self.second, self.act = first, second, act
        for attr in ("f", "i", "type", "np"):
            if source is not None and hasattr(source, attr):
                setattr(self, attr, getattr(source, attr))

    def forward(self, x):
        return self.act(self.second(self.first(x)))
