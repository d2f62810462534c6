"""What a structural compression step (channel pruning, low rank, magnitude pruning) may edit, per family.

A private copy of the model's torch module, made traceable (Ultralytics' channel splits rewritten), and
the layers it must leave whole: what defines the outputs, a detector's head (its channel layout *is* the
output format), a classifier's last Linear, and attention blocks (heads × head size must stay
consistent). Everything else is left to the step (torch-pruning's dependency graph, the SVD's choice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from studio.model import ModelHandle


@dataclass
class PruneTarget:
    module: Any  # a private copy of the torch module, made traceable
    ignored: list[Any]  # modules torch-pruning must leave whole
    example_shape: tuple[int, ...]


def _ultralytics(module: Any) -> tuple[Any, list[Any]]:
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.modules.block import C2PSA, PSA, Attention

    from studio.nets.split_blocks import split_c2f_blocks

    split_c2f_blocks(module)
    keep = (Detect, C2PSA, PSA, Attention)
    return module, [m for m in module.modules() if isinstance(m, keep)]


def _darknet(module: Any) -> tuple[Any, list[Any]]:
    """The convolution feeding each [yolo] layer carries anchors × (5 + classes) channels: keep it."""
    from torch import nn

    ignored = []
    for index, kind in enumerate(module.kinds):
        if kind == "yolo" and index > 0 and isinstance(module.layers[index - 1], nn.Sequential):
            ignored.append(module.layers[index - 1][0])
    return module, ignored


def _generic(module: Any) -> tuple[Any, list[Any]]:
    """Keep the last Linear or Conv (the output layer) of any other network."""
    from torch import nn

    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return module, layers[-1:]


FAMILIES = {"ultralytics": _ultralytics, "darknet": _darknet}


def prune_target(handle: ModelHandle) -> PruneTarget:
    module = copy.deepcopy(handle.torch_module).eval()
    module, ignored = FAMILIES.get(handle.metadata.get("family", ""), _generic)(module)
    for param in module.parameters():
        param.requires_grad_(True)
    channels = int(handle.inputs[0].shape[1])
    height, width = handle.image_input.size if handle.image_input else (224, 224)
    return PruneTarget(module, ignored, (1, channels, int(height), int(width)))
