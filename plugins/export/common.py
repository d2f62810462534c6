"""What the exporters share: the float graph to start from, the metadata every artifact carries."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import ClassVar, Literal

from studio.lm.variants import is_language_model
from studio.model import ModelHandle
from studio.plugin_api import LANGUAGE, Exports, Kind
from studio.runtime.choice import RuntimeMode, runtime_mode
from studio.tasks import TaskContext

# What every first-party exporter writes for vision models: the exporters' ``exports`` rows and the
# ``precision`` setting of those that make it themselves both read this one declaration.
VisionPrecision = Literal["fp32", "fp16", "int8"]
VISION_PRECISIONS: tuple[str, ...] = typing.get_args(VisionPrecision)


def reasons_not_exportable(model: ModelHandle) -> list[str]:
    if model.onnx_path is None and model.torch_module is None:
        return ["it has neither an ONNX graph nor a PyTorch module"]
    if runtime_mode(model) is RuntimeMode.EARLY_EXIT:
        return ["an early-exit model is several graphs: 'deploy-studio optimize' writes one ONNX per segment"]
    if model.image_input is None:  # every export is verified on pre-processed frames (studio.verify)
        return ["it does not take images (a generic tensor model), and exports are verified on images; "
                "verifying on tensors is not supported yet"]
    return []


def source_graph(model: ModelHandle) -> Path:
    from studio.runtime.onnx_export import ensure_onnx

    return ensure_onnx(model)


def verification_size(model: ModelHandle) -> tuple[int, int]:
    return model.image_input.size if model.image_input else (640, 640)


class Exporter:
    """What every exporter shares: the kind, ``check`` and a no-op ``apply`` (an export writes a file;
    the model itself does not change). ``torch_reason`` is set by converters that start from PyTorch; those
    with ``onnx_route`` also take an ONNX-only model through a PyTorch module rebuilt from its graph
    (``plugins.export.onnx_torch_route``), and refuse it only with the reason that route gives.
    Each exporter declares its rows of the capability table in ``exports`` (``studio.plugin_api.Exports``)."""

    title: ClassVar[str]  # each exporter names itself and declares its rows
    exports: ClassVar[tuple[Exports, ...]]
    kind = Kind.EXPORT
    settings_version = 1
    torch_reason: str | None = None
    onnx_route = False

    def check(self, model: ModelHandle) -> list[str]:
        if is_language_model(model):  # checked by the language converters themselves (studio.lm), inside export()
            if any(entry.models == LANGUAGE for entry in self.exports):
                return []
            return [f"{self.title} takes no language models"]
        reasons = reasons_not_exportable(model)
        if not reasons and self.torch_reason and model.torch_module is None:
            if self.onnx_route and model.onnx_path is not None:
                from plugins.export.onnx_torch_route import route_reasons

                reasons.extend(f"{self.torch_reason}; {why}" for why in route_reasons(model))
            else:
                reasons.append(self.torch_reason)
        return reasons

    def precision_reasons(self, model: ModelHandle, precision: str) -> list[str]:
        """Why this format cannot take ``model`` at ``precision`` (asked before any file is written); none here."""
        return []

    def apply(self, model: ModelHandle, settings: object, ctx: TaskContext) -> ModelHandle:
        return model


def precision_from_flag(flag: str):
    """The ``migrate`` hook of exporters whose settings version 1 had a single FP16 check box ``flag``."""

    def migrate(data: dict, version: int) -> dict:
        data = dict(data)
        if version < 2 and flag in data:
            data["precision"] = "fp16" if data.pop(flag) else "fp32"
        return data

    return staticmethod(migrate)
