"""Bias compensation: fold what a removed channel contributed on average into its consumer's bias.

A channel removed by structured pruning still had an output, and after BatchNorm and an activation
that output is rarely zero: a channel with a tiny BatchNorm scale but a large shift is almost a
constant. Dropping it silently shifts every consumer's pre-activation by that constant, which is
why even 5 % pruning wrecked a detector before. For every convolution or linear layer that loses
input channels, we add ``W[:, removed] · mean(input[removed])`` to its bias, with the means measured
on calibration frames right before the prune. Constant channels then disappear without a trace, and
the remaining error is only the removed channels' variation around their mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext


def stats_batches(model: ModelHandle, shape: tuple[int, ...], ctx: TaskContext,
                  samples: int = 16) -> tuple[list[Any], dict[str, Any]]:
    """Batches of 4 calibration frames at the model's input size (random normal input for non-image models)."""
    import torch

    if model.image_input is None:
        generator = torch.Generator().manual_seed(0)
        return ([torch.randn(4, *shape[1:], generator=generator) for _ in range(samples // 4)],
                {"source": "random normal input (not an image model)", "frames": samples})
    from studio.calibration import calibration_frames
    from studio.runtime.preprocess import prepare

    frames, info = calibration_frames(None, samples, ctx)
    tensors = [prepare(frame, model.image_input, (int(shape[2]), int(shape[3])), rect=False)[0] for frame in frames]
    return [torch.from_numpy(np.concatenate(tensors[i:i + 4])) for i in range(0, len(tensors), 4)], info


class InputStats:
    """Per-channel mean and variance of the inputs of every dense convolution and linear layer."""

    def __init__(self, module: Any, batches: list[Any]):
        import torch
        from torch import nn

        sums: dict[Any, Any] = {}
        squares: dict[Any, Any] = {}
        counts: dict[Any, int] = {}

        def hook(layer: Any, args: tuple, _out: Any) -> None:
            x = args[0].detach().double()
            dims = [0, *range(2, x.dim())] if isinstance(layer, nn.Conv2d) else list(range(x.dim() - 1))
            sums[layer] = sums.get(layer, 0) + x.sum(dim=dims)
            squares[layer] = squares.get(layer, 0) + (x * x).sum(dim=dims)
            counts[layer] = counts.get(layer, 0) + x.numel() // x.shape[1 if isinstance(layer, nn.Conv2d) else -1]

        layers = [m for m in module.modules()
                  if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)]
        handles = [layer.register_forward_hook(hook) for layer in layers]
        try:
            with torch.no_grad():
                for batch in batches:
                    module(batch)
        finally:
            for handle in handles:
                handle.remove()
        self.means = {layer: (sums[layer] / counts[layer]).float() for layer in sums}
        self.variances = {layer: (squares[layer] / counts[layer] - (sums[layer] / counts[layer]) ** 2)
                          .clamp(min=0).float() for layer in sums}
        # Which original channel each current input channel is: several groups can prune one layer.
        self.kept = {layer: np.arange(len(mean)) for layer, mean in self.means.items()}


def compensate_group(group: Any, graph: Any, stats: InputStats, *, fold: bool = True) -> int:
    """Fold the removed input channels of every layer in ``group`` into its bias; returns layers touched.

    Call before ``group.prune()``, while the removed channels' weights are still there. With
    ``fold=False`` only the channel bookkeeping is updated (to measure what compensation is worth).
    """
    import torch
    from torch import nn
    from torch_pruning._helpers import to_plain_idxs

    touched = 0
    for dep, idxs in group:
        layer = dep.target.module
        if layer not in stats.means or not graph.is_in_channel_pruning_fn(dep.handler):
            continue
        plain = np.asarray(to_plain_idxs(idxs), dtype=np.int64)
        if plain.size == 0:
            continue
        if fold:
            mean = stats.means[layer][torch.from_numpy(stats.kept[layer][plain])]
            with torch.no_grad():
                columns = layer.weight[:, torch.from_numpy(plain)]
                if isinstance(layer, nn.Conv2d):
                    columns = columns.sum(dim=(2, 3))  # a constant input map: every kernel tap sees the mean
                shift = columns @ mean
                if layer.bias is None:
                    layer.bias = nn.Parameter(shift.clone(), requires_grad=layer.weight.requires_grad)
                else:
                    layer.bias += shift
            touched += 1
        stats.kept[layer] = np.delete(stats.kept[layer], plain)
    return touched


class OutputErrorImportance:
    """Rank channels by the error their removal leaves in the consumers: ``var(x_c) · ||W[:, c]||²``.

    With bias compensation the mean of a removed channel is restored, so what is lost is its
    variation around the mean, weighted by how strongly each consumer reads it. Summed over every
    consumer of the channel (residual adds and concatenations couple several). Weight magnitude
    alone (L1) ignores that a heavy filter can feed a near-constant channel, and BatchNorm scale
    ignores the consumers.
    """

    def __init__(self, stats: InputStats):
        self.stats = stats

    def __call__(self, group: Any) -> Any:
        import torch
        from torch import nn
        from torch_pruning._helpers import to_plain_idxs

        total = None
        for index, (dep, idxs) in enumerate(group):
            layer = dep.target.module
            if layer not in self.stats.variances or not group._DG.is_in_channel_pruning_fn(dep.handler):
                continue
            roots = group[index].root_idxs
            if roots is None or any(r is None for r in roots):
                continue
            plain = torch.as_tensor(np.asarray(to_plain_idxs(idxs), dtype=np.int64))
            weight = layer.weight.detach()[:, plain]
            strength = weight.pow(2).sum(dim=(0, 2, 3)) if isinstance(layer, nn.Conv2d) else weight.pow(2).sum(0)
            variance = self.stats.variances[layer][torch.from_numpy(self.stats.kept[layer][plain.numpy()])]
            if total is None:
                total = torch.zeros(len(group[0].idxs))
            total.scatter_add_(0, torch.as_tensor(roots), (strength * variance).float())
        return total
