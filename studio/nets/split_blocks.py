"""Ultralytics blocks rewritten without ``chunk``/``split``, so that torch-pruning can trace them.

``C2f`` (and ``C3k2``, its subclass) computes ``cv1(x).chunk(2)``; torch-pruning cannot follow a
channel split (IndexError). ``C2fSplit`` holds the two halves of ``cv1`` as two convolutions with
the same weights, so its output is the same (to float rounding) and every channel is prunable.
The class lives in the engine, not in a plugin: a pruned model saved to disk reloads only where it
can be imported, and the loader's allow-list admits ``studio.nets`` modules.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ultralytics.nn.modules import C2f, Conv


def _half(conv_block: Conv, rows: slice, count: int) -> Conv:
    """A copy of an Ultralytics ``Conv`` (conv + bn + act) keeping output channels ``rows``."""
    part = copy.deepcopy(conv_block)
    part.conv.weight = nn.Parameter(conv_block.conv.weight.data[rows].clone())
    part.conv.out_channels = count
    if conv_block.conv.bias is not None:
        part.conv.bias = nn.Parameter(conv_block.conv.bias.data[rows].clone())
    bn = getattr(part, "bn", None)
    if isinstance(bn, nn.BatchNorm2d):
        source = conv_block.bn
        bn.weight = nn.Parameter(source.weight.data[rows].clone())
        bn.bias = nn.Parameter(source.bias.data[rows].clone())
        bn.running_mean = source.running_mean[rows].clone()
        bn.running_var = source.running_var[rows].clone()
        bn.num_features = count
    return part


class C2fSplit(nn.Module):
    """``C2f`` with ``cv1`` as two convolutions (``cv1a``, ``cv1b``) instead of one conv and a chunk."""

    def __init__(self, block: C2f):
        super().__init__()
        hidden = block.c
        self.cv1a = _half(block.cv1, slice(0, hidden), hidden)
        self.cv1b = _half(block.cv1, slice(hidden, 2 * hidden), hidden)
        self.m, self.cv2 = block.m, block.cv2
        for attr in ("f", "i", "type", "np"):  # Ultralytics' graph bookkeeping on every layer
            if hasattr(block, attr):
                setattr(self, attr, getattr(block, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.cv1a(x), self.cv1b(x)]
        outputs.extend(m(outputs[-1]) for m in self.m)
        return self.cv2(torch.cat(outputs, 1))


def split_c2f_blocks(model: nn.Module) -> int:
    """Replace every C2f/C3k2 in an Ultralytics model's layer list, in place; returns how many."""
    from ultralytics.nn.modules import C2f

    layers = model.model
    assert isinstance(layers, nn.Sequential), "an Ultralytics model's layers are the nn.Sequential parse_model builds"
    count = 0
    for index, layer in enumerate(layers):
        if isinstance(layer, C2f):
            layers[index] = C2fSplit(layer)
            count += 1
    return count
