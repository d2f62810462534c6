"""A PyTorch network built from a Darknet ``.cfg`` and filled from its ``.weights``.

The output follows OpenCV DNN's Darknet importer so the two can be compared value for value: one
tensor of rows ``[cx, cy, w, h, objectness, class scores × objectness]``, boxes normalised to the
network input, rows ordered by yolo layer, then cell (y, x), then anchor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from studio.errors import BadInputError, UnsupportedError
from studio.nets.darknet_cfg import Section

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity,
    "leaky": lambda: nn.LeakyReLU(0.1),
    "relu": nn.ReLU,
    "logistic": nn.Sigmoid,
    "mish": nn.Mish,
    "swish": nn.SiLU,
}


# Larger inputs than this are not a detector a device runs; refused before any tensor is allocated.
MAX_SIDE = 8192


class MaxPoolSame(nn.Module):
    """Darknet's maxpool: pads right/bottom so that out = (in + size - 1 - size) // stride + 1.

    Padding repeats the edge value, which for a max is the same as ignoring the padded cells
    (zero padding would be wrong for negative activations).
    """

    def __init__(self, size: int, stride: int, padding: int):
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        left = self.padding // 2
        out_h = (height + self.padding - self.size) // self.stride + 1
        out_w = (width + self.padding - self.size) // self.stride + 1
        right = max(0, (out_w - 1) * self.stride + self.size - width - left)
        bottom = max(0, (out_h - 1) * self.stride + self.size - height - left)
        if left or right or bottom:
            x = F.pad(x, (left, right, left, bottom), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)


class YoloDecode(nn.Module):
    anchors: torch.Tensor  # a buffer (register_buffer), declared so that it reads as a tensor, not Tensor | Module

    def __init__(self, anchors: list[tuple[float, float]], classes: int, net_size: tuple[int, int], scale_xy: float):
        super().__init__()
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.classes, self.net_h, self.net_w, self.scale_xy = classes, net_size[0], net_size[1], scale_xy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        count = self.anchors.shape[0]
        # [B, A*(5+C), H, W] -> [B, H, W, A, 5+C]: the row order of OpenCV's region layer.
        x = x.view(batch, count, 5 + self.classes, height, width).permute(0, 3, 4, 1, 2)
        ys = torch.arange(height, dtype=x.dtype).view(1, height, 1, 1)
        xs = torch.arange(width, dtype=x.dtype).view(1, 1, width, 1)
        grid_shift = (self.scale_xy - 1) / 2
        cx = (torch.sigmoid(x[..., 0]) * self.scale_xy - grid_shift + xs) / width
        cy = (torch.sigmoid(x[..., 1]) * self.scale_xy - grid_shift + ys) / height
        w = torch.exp(x[..., 2]) * self.anchors[:, 0] / self.net_w
        h = torch.exp(x[..., 3]) * self.anchors[:, 1] / self.net_h
        objectness = torch.sigmoid(x[..., 4])
        scores = torch.sigmoid(x[..., 5:]) * objectness.unsqueeze(-1)
        rows = torch.cat([torch.stack([cx, cy, w, h, objectness], -1), scores], -1)
        return rows.reshape(batch, -1, 5 + self.classes)


class DarknetNet(nn.Module):
    def __init__(self, sections: list[Section], path: Path, max_params: int | None = None):
        """``max_params``: the values the .weights file holds; a .cfg declaring more is refused before
        its layers are allocated (a hostile cfg could otherwise ask for gigabytes)."""
        super().__init__()
        net = sections[0]
        self.input_size = (net.get_int("height", 416), net.get_int("width", 416))
        self.in_channels = net.get_int("channels", 3)
        if not all(1 <= side <= MAX_SIDE for side in self.input_size) or not 1 <= self.in_channels <= 64:
            raise BadInputError(f"[net] declares a {self.input_size[1]}×{self.input_size[0]}×{self.in_channels} "
                                "input, outside what a detector takes", path=path,
                                fix=f"width and height from 1 to {MAX_SIDE}, channels from 1 to 64")
        self.max_params, self.declared_params = max_params, 0
        self.kinds: list[str] = []
        self.sources: list[list[int]] = []  # absolute indices each layer reads (route/shortcut)
        self.groups: list[tuple[int, int]] = []  # (groups, group_id) for route slicing
        self.layers = nn.ModuleList()
        self.num_classes = 0
        channels = [self.in_channels]  # channels[i + 1] is layer i's output
        for index, section in enumerate(sections[1:]):
            module, out_channels = self._build(index, section, channels, path)
            self.layers.append(module)
            self.kinds.append(section.kind)
            channels.append(out_channels)

    def _build(self, index: int, section: Section, channels: list[int], path: Path) -> tuple[nn.Module, int]:
        kind, previous = section.kind, channels[-1]
        self.sources.append([])
        self.groups.append((1, 0))
        if kind == "convolutional":
            return self._conv(section, previous, path), section.get_int("filters", 1)
        if kind == "maxpool":
            size, stride = section.get_int("size", 2), section.get_int("stride", 2)
            return MaxPoolSame(size, stride, section.get_int("padding", size - 1)), previous
        if kind == "upsample":
            return nn.Upsample(scale_factor=section.get_int("stride", 2), mode="nearest"), previous
        if kind in ("route", "shortcut"):
            refs = section.get_ints("layers") if kind == "route" else [-1, *section.get_ints("from")]
            absolute = [ref if ref >= 0 else index + ref for ref in refs]
            if any(ref < 0 or ref >= index for ref in absolute):
                raise BadInputError(f"[{kind}] at line {section.line} refers to a layer that does not exist",
                                    path=path, fix="check the layers= indices")
            self.sources[-1] = absolute
            if kind == "shortcut":
                if section.options.get("activation", "linear") != "linear":
                    raise UnsupportedError(f"[shortcut] with activation at line {section.line}", path=path)
                return nn.Identity(), previous
            groups, group_id = section.get_int("groups", 1), section.get_int("group_id", 0)
            joined = sum(channels[ref + 1] for ref in absolute)
            if not absolute or groups < 1 or not 0 <= group_id < groups or joined % groups:
                raise BadInputError(f"[route] at line {section.line} is malformed (layers={refs}, groups={groups}, "
                                    f"group_id={group_id}, {joined} channels)", path=path,
                                    fix="a route names at least one layer; groups ≥ 1 divides its channels")
            self.groups[-1] = (groups, group_id)
            return nn.Identity(), joined // groups
        if kind == "yolo":
            return self._yolo(section, path), previous
        raise UnsupportedError(f"layer [{kind}] at line {section.line} is not supported", path=path,
                               fix="supported: convolutional, maxpool, upsample, route, shortcut, yolo")

    def _conv(self, section: Section, in_channels: int, path: Path) -> nn.Module:
        size, stride = section.get_int("size", 1), section.get_int("stride", 1)
        padding = size // 2 if section.get_int("pad", 0) else section.get_int("padding", 0)
        batch_norm = bool(section.get_int("batch_normalize", 0))
        activation = section.options.get("activation", "logistic")
        if activation not in _ACTIVATIONS:
            raise UnsupportedError(f"activation '{activation}' at line {section.line} is not supported", path=path,
                                   fix=f"supported: {', '.join(_ACTIVATIONS)}")
        filters, groups = section.get_int("filters", 1), section.get_int("groups", 1)
        if min(filters, size, stride, groups) < 1 or in_channels % groups or filters % groups:
            raise BadInputError(f"[convolutional] at line {section.line} has impossible sizes (filters={filters}, "
                                f"size={size}, stride={stride}, groups={groups}, input channels {in_channels})",
                                path=path, fix="check the layer's settings")
        self.declared_params += filters * (in_channels // groups) * size * size + filters * (4 if batch_norm else 1)
        if self.max_params is not None and self.declared_params > self.max_params:
            raise BadInputError(f"weights do not fit the .cfg: the layers up to line {section.line} need "
                                f"{self.declared_params:,} values, the .weights file holds {self.max_params:,}",
                                path=path, fix="give the .weights trained with this .cfg")
        conv = nn.Conv2d(in_channels, filters, size, stride, padding, groups=groups, bias=not batch_norm)
        parts = [conv] + ([nn.BatchNorm2d(conv.out_channels, eps=1e-6)] if batch_norm else [])
        return nn.Sequential(*parts, _ACTIVATIONS[activation]())

    def _yolo(self, section: Section, path: Path) -> nn.Module:
        if section.get_int("new_coords", 0):
            raise UnsupportedError(f"[yolo] new_coords=1 at line {section.line} is not supported", path=path)
        values = [float(section._number("anchors", v, float))
                  for v in section.options.get("anchors", "").replace(" ", "").split(",") if v]
        anchors = list(zip(values[::2], values[1::2], strict=False))
        mask = section.get_ints("mask") or list(range(len(anchors)))
        self.num_classes = section.get_int("classes", 80)
        if not anchors or any(not 0 <= i < len(anchors) for i in mask) or not 1 <= self.num_classes <= 100_000:
            raise BadInputError(f"[yolo] at line {section.line}: needs anchors, a mask indexing them and 1 to 100000 "
                                f"classes (has {len(anchors)} anchors, mask {mask[:8]}, {self.num_classes} classes)",
                                path=path, fix="check the [yolo] section against the original .cfg")
        return YoloDecode([anchors[i] for i in mask], self.num_classes, self.input_size,
                          section.get_float("scale_x_y", 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        detections: list[torch.Tensor] = []
        for layer, kind, sources, (groups, group_id) in zip(self.layers, self.kinds, self.sources, self.groups,
                                                            strict=True):
            if kind == "route":
                x = torch.cat([outputs[i] for i in sources], 1)
                if groups > 1:
                    x = x.chunk(groups, 1)[group_id]
            elif kind == "shortcut":
                x = outputs[sources[0]] + outputs[sources[1]]
            elif kind == "yolo":
                detections.append(layer(x))
            else:
                x = layer(x)
            outputs.append(x)
        return torch.cat(detections, 1)


def load_weights(model: DarknetNet, path: Path) -> None:
    """Fill the convolutions in order from a ``.weights`` file; its size must match the cfg exactly."""
    data = path.read_bytes()
    if len(data) < 20:
        raise BadInputError("too short for a Darknet .weights file", path=path, fix="re-download the weights")
    major, minor, _ = np.frombuffer(data[:12], np.int32)
    header = 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16
    weights = np.frombuffer(data[header:len(data) - (len(data) - header) % 4], np.float32)
    convs = [layer for layer in model.layers if isinstance(layer, nn.Sequential)]
    needed = sum(_count(conv) for conv in convs)
    if needed != weights.size:
        raise BadInputError(f"weights do not fit the .cfg: it needs {needed} values, the file has {weights.size}",
                            path=path, fix="give the .weights trained with this .cfg")
    offset = 0
    for conv_block in convs:
        conv = conv_block[0]
        tensors = ([conv_block[1].bias, conv_block[1].weight, conv_block[1].running_mean, conv_block[1].running_var]
                   if isinstance(conv_block[1], nn.BatchNorm2d) else [conv.bias])
        for tensor in [*tensors, conv.weight]:
            count = tensor.numel()
            tensor.data.copy_(torch.from_numpy(weights[offset:offset + count].copy()).view_as(tensor))
            offset += count


def _count(conv_block: nn.Sequential) -> int:
    conv = conv_block[0]
    assert isinstance(conv, nn.Conv2d), "a convolutional block is Sequential(Conv2d, [BatchNorm2d], activation)"
    extra = 4 * conv.out_channels if isinstance(conv_block[1], nn.BatchNorm2d) else conv.out_channels
    return conv.weight.numel() + extra
