"""The torch side of low-rank factorisation (imported only when the plugin runs)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def choose_rank(singular: torch.Tensor, settings: Any) -> int:
    if settings.mode == "ratio":
        return ratio_rank(singular.numel(), settings)
    energy = torch.cumsum(singular**2, 0) / torch.sum(singular**2)
    return int(torch.searchsorted(energy, torch.tensor(settings.energy)).item()) + 1


def thin_svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD on one thread: on this kind of CPU, torch's threaded SVD of a 1536×576 matrix took 1.9 s
    against 0.08 s single-threaded (measured, 2 cores) — threads fight over matrices this small."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.svd(weight, full_matrices=False)
    finally:
        torch.set_num_threads(threads)


def ratio_rank(full_rank: int, settings: Any) -> int:
    return max(1, round(settings.rank_ratio * full_rank))


def factorise(weight: torch.Tensor, rank: int, decomposition: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(A: rank × in, B: out × rank) with B @ A ≈ weight (``decomposition``: its SVD, if computed)."""
    u, s, vh = decomposition if decomposition is not None else thin_svd(weight)
    root = torch.sqrt(s[:rank])
    return root[:, None] * vh[:rank], u[:, :rank] * root[None, :]


def _is_pointwise(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.dilation == (1, 1) and conv.padding in ((0, 0), "valid"))


def _pair_for(weight: torch.Tensor, bias: torch.Tensor | None, rank: int, conv: nn.Conv2d | None,
              decomposition: tuple | None = None) -> nn.Sequential:
    a, b = factorise(weight, rank, decomposition)
    first: nn.Linear | nn.Conv2d
    second: nn.Linear | nn.Conv2d
    if conv is None:
        first = nn.Linear(weight.shape[1], rank, bias=False)
        second = nn.Linear(rank, weight.shape[0], bias=bias is not None)
        first.weight.data, second.weight.data = a.contiguous(), b.contiguous()
    else:
        stride = (conv.stride[0], conv.stride[1])  # a Conv2d's stride is a pair (typed tuple[int, ...])
        first = nn.Conv2d(weight.shape[1], rank, 1, stride=stride, bias=False)
        second = nn.Conv2d(rank, weight.shape[0], 1, bias=bias is not None)
        first.weight.data, second.weight.data = a[:, :, None, None].contiguous(), b[:, :, None, None].contiguous()
    if bias is not None:  # no bias where the layer had none (a BatchNorm follows)
        assert second.bias is not None  # made with bias=True just above
        second.bias.data = bias.clone()
    return nn.Sequential(first, second)


def replacement_for(layer, settings, rows, name, model, ignored: set[int]) -> nn.Module | None:
    """The factorised stand-in for ``layer``, or None to keep it (too small, no saving, or an output layer)."""
    if id(layer) in ignored:
        return None
    from ultralytics.nn.modules import Conv as UltralyticsConv

    from studio.nets.lowrank import LowRankConv

    if model.metadata.get("family") == "ultralytics" and isinstance(layer, UltralyticsConv):
        if not (_is_pointwise(layer.conv) and hasattr(layer, "bn")):
            return None
        from ultralytics.utils.torch_utils import fuse_conv_and_bn

        fused = fuse_conv_and_bn(copy.deepcopy(layer.conv), layer.bn)
        pair = _factor(fused.weight.data[:, :, 0, 0], fused.bias.data, fused, settings, rows, name)
        return None if pair is None else LowRankConv(pair[0], pair[1], layer.act, source=layer)
    bias: torch.Tensor | None
    if isinstance(layer, nn.Linear):
        bias = layer.bias.data if layer.bias is not None else None
        return _factor(layer.weight.data, bias, None, settings, rows, name)
    if _is_pointwise(layer) and model.metadata.get("family") != "ultralytics":
        bias = layer.bias.data if layer.bias is not None else None
        return _factor(layer.weight.data[:, :, 0, 0], bias, layer, settings, rows, name)
    return None


def _factor(weight, bias, conv, settings, rows, name) -> nn.Sequential | None:
    out_features, in_features = weight.shape
    if min(out_features, in_features) < settings.min_features:
        return None
    full_rank = min(out_features, in_features)
    if settings.mode == "ratio" and ratio_rank(full_rank, settings) * (in_features + out_features) >= \
            in_features * out_features:
        return None  # known before any SVD: the factors would not be smaller
    decomposition = thin_svd(weight)  # once: the rank and the factors both come from it
    rank = min(choose_rank(decomposition[1], settings), full_rank)
    if rank * (in_features + out_features) >= in_features * out_features:
        return None  # factors would not be smaller
    rows.append({"layer": name, "shape": [out_features, in_features], "rank": rank,
                 "params_before": out_features * in_features, "params_after": rank * (in_features + out_features)})
    return _pair_for(weight, bias, rank, conv, decomposition)
