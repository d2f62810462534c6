"""Classifiers cut into segments with an exit head after each but the last (engine-side, so that a
saved early-exit model reloads and runs anywhere the studio is installed).

A segment maps the previous segment's features to (its features, its exit logits); the last one maps
features to the final logits. At run time a sample leaves at the first exit whose score
(``studio.runtime.exit_score``: the top softmax probability, or a gate's probability of agreeing with the
final layer) reaches the threshold, so confident inputs skip the rest of the network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class ExitHead(nn.Module):
    """Global average pool → Linear: the lightest head that reads a feature map as class logits."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Segment(nn.Module):
    def __init__(self, parts: list[nn.Module], head: nn.Module | None):
        super().__init__()
        self.parts, self.head = nn.ModuleList(parts), head

    def forward(self, x: torch.Tensor):
        for part in self.parts:
            x = part(x)
        return (x, self.head(x)) if self.head is not None else x

# An efficientnet_lite_pytorch EfficientNet. The package ships no type information, so its parts
# (_conv_stem, _blocks, _fc, ...) are read as Any rather than as nn.Module's Tensor | Module attributes.
EfficientNet = Any


class EffNetStem(nn.Module):
    def __init__(self, net: EfficientNet):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class EffNetTop(nn.Module):
    def __init__(self, net: EfficientNet):
        super().__init__()
        self.conv, self.bn, self.act, self.fc = net._conv_head, net._bn1, net._swish, net._fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def efficientnet_segments(net: EfficientNet, exits: list[int], classes: int) -> list[Segment]:
    """Segments of an EfficientNet(-Lite) with exit heads after the blocks numbered in ``exits``."""
    blocks = list(net._blocks)
    segments, start = [], 0
    for position, block_index in enumerate(sorted(exits)):
        parts = ([EffNetStem(net)] if position == 0 else []) + blocks[start:block_index + 1]
        channels = blocks[block_index]._block_args.output_filters
        segments.append(Segment(parts, ExitHead(channels, classes)))
        start = block_index + 1
    segments.append(Segment(([EffNetStem(net)] if not exits else []) + blocks[start:] + [EffNetTop(net)], None))
    return segments


class EarlyExitNet(nn.Module):
    """All segments in one module; ``forward`` exits early for a single sample (the torch runtime)."""

    def __init__(self, segments: list[Segment], threshold: float, gates: list[dict[str, Any]] | None = None):
        super().__init__()
        self.segments = nn.ModuleList(segments)
        self.threshold = threshold
        self.gates = gates  # None: exit on the top probability (and in networks saved before gates existed)
        self.last_exit = -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from studio.runtime.exit_score import exit_score

        gates, previous = getattr(self, "gates", None), None
        for index, segment in enumerate(self.segments):
            if segment.head is None:
                self.last_exit = index
                return segment(x)
            x, logits = segment(x)
            if x.shape[0] == 1:
                answer = logits.detach().float().cpu().numpy()
                if exit_score(answer, gates[index] if gates else None, previous) >= self.threshold:
                    self.last_exit = index
                    return logits
                previous = int(answer.argmax())
        raise RuntimeError("the last segment must have no exit head")

    def all_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every exit's logits and the final logits (training and evaluation)."""
        outputs = []
        for segment in self.segments:
            if segment.head is None:
                outputs.append(segment(x))
            else:
                x, logits = segment(x)
                outputs.append(logits)
        return outputs
