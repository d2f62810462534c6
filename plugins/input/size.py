"""``input.size``: run a model at a smaller (or larger) input size than it was made for.

Only for graphs that accept other spatial sizes (Ultralytics exports, dynamic height and width): the same
weights, letterboxed to the new size. Fewer pixels cost less; small objects may be lost — the variant's
fidelity against the model at its own size says how many. The longer side becomes ``size`` (a multiple of
the model's stride), the other keeps the model's aspect ratio.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from studio.model import ModelHandle
from studio.plugin_api import Kind, SettingsError, option
from studio.tasks import TaskContext


@dataclass
class InputSizeSettings:
    size: int = option(480, label="Longer side (pixels)", min=32, max=4096,
                       help="a multiple of the model's stride; the other side keeps the model's aspect ratio",
                       search=(256, 640, 32))


def scaled_size(model_size: tuple[int, int], longer: int, stride: int) -> tuple[int, int]:
    """(height, width) with the longer side ``longer`` and the model's aspect ratio, each a multiple of ``stride``."""
    height, width = model_size
    scale = longer / max(height, width)
    return (max(stride, round(height * scale / stride) * stride), max(stride, round(width * scale / stride) * stride))


class InputSize:
    id = "input.size"
    title = "Input size"
    kind = Kind.INPUT
    Settings = InputSizeSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        image = model.image_input
        if image is None:
            return ["the model takes no image"]
        if not image.dynamic:
            return [f"its graph takes one input size ({image.size[0]}×{image.size[1]}); only a graph with dynamic "
                    "height and width runs at another size"]
        return []

    def apply(self, model: ModelHandle, settings: InputSizeSettings, ctx: TaskContext) -> ModelHandle:
        image = model.required_image_input()
        if settings.size % image.stride:
            nearest = max(image.stride, settings.size // image.stride * image.stride)
            raise SettingsError(f"{self.id}: size {settings.size} is not a multiple of the model's stride "
                                f"{image.stride}", fix=f"use {nearest}")
        size = scaled_size(image.size, settings.size, image.stride)
        ctx.progress(1.0, f"input {size[0]}×{size[1]}")
        ctx.add_report({"from": list(image.size), "to": list(size)})
        return model.replace(name=f"{model.name}-{settings.size}px",
                             image_input=dataclasses.replace(image, size=size),
                             metadata={**model.metadata, "parent": model.name,
                                       "parent_sha256": model.provenance.sha256})
