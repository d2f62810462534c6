"""The one type every loader returns: a model, whatever its origin, with what the runtimes need to feed it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Task(StrEnum):
    DETECT = "detect"
    SEGMENT = "segment"
    CLASSIFY = "classify"
    POSE = "pose"
    OBB = "obb"
    EMBED = "embed"
    GENERATE = "generate"
    TENSOR = "tensor"  # a generic graph: inputs and outputs are known, their meaning is not


_TASK_NOUNS = {"detect": "detection", "segment": "segmentation", "classify": "classification", "pose": "pose",
               "obb": "oriented-box detection", "embed": "sentence-embedding", "generate": "text-generation",
               "tensor": "generic tensor"}


def task_noun(task: str) -> str:
    """What a message calls a task: "a text-generation model", not "a generate model"."""
    return _TASK_NOUNS.get(str(task), str(task))


class Resize(StrEnum):
    """How an image becomes the network input."""

    LETTERBOX = "letterbox"  # keep aspect, pad with grey (Ultralytics)
    STRETCH = "stretch"  # plain resize to the input size (Darknet, OpenCV DNN's blobFromImage)
    CENTER_CROP = "center_crop"  # shorter side to size/0.875, then a central square (ImageNet classifiers)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints, or strings for symbolic dimensions) and element type of one tensor."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def describe_tensor(spec: dict[str, Any]) -> str:
    """"x ?×3×?×? float32 (dynamic: batch, height, width)" from ``TensorSpec.as_dict()``: a dynamic
    dimension reads as ?, never as the 1 or 640 some count was made at, and its names are kept."""
    shape = spec["shape"]
    text = "×".join(str(d) if isinstance(d, int) else "?" for d in shape) or "scalar"
    names = [d for d in dict.fromkeys(shape) if isinstance(d, str) and d != "?"]
    dynamic = f" (dynamic: {', '.join(names)})" if names else (" (dynamic)" if text.count("?") else "")
    return f"{spec['name']} {text} {spec['dtype']}{dynamic}"


@dataclass(frozen=True)
class ImageInput:
    """How to turn a BGR frame into the network's input tensor."""

    size: tuple[int, int]  # (height, width) the model was made for
    resize: Resize = Resize.LETTERBOX
    rgb: bool = True
    mean: float = 0.0
    scale: float = 1 / 255.0  # tensor = (pixel - mean) * scale
    stride: int = 32  # rectangular letterbox pads to a multiple of this
    dynamic: bool = False  # the graph accepts other spatial sizes (rectangular inference)
    pad_value: int = 114
    crop_fraction: float = 0.875  # CENTER_CROP: the crop's share of the shorter side (Ultralytics uses 1.0)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["size"] = list(self.size)
        data["resize"] = str(self.resize)
        return data


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: enough to find it again and to know it has not changed."""

    path: str
    sha256: str
    loader: str
    zoo_name: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelHandle:
    """One loaded model. Immutable: a compression step returns a new handle.

    ``torch_module`` is set when a PyTorch module exists; ``onnx_path`` when an ONNX graph exists.
    ``decoder`` names the post-processing family the runtimes use (see ``studio.runtime.decoders``).
    """

    name: str
    format: str
    task: Task
    decoder: str
    labels: tuple[str, ...]
    image_input: ImageInput | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    size_bytes: int
    provenance: Provenance
    params: int | None = None
    params_method: str = ""  # what was counted as a parameter, where the loader's rule is not obvious
    gflops: float | None = None
    gflops_method: str = ""
    random_weights: bool = False
    source_paths: tuple[Path, ...] = ()
    onnx_path: Path | None = None
    torch_module: Any = field(default=None, repr=False, compare=False)
    tokenizer: Any = field(default=None, repr=False, compare=False)  # language models only
    metadata: dict[str, str] = field(default_factory=dict, compare=False)
    # What a format's own reader tells beyond the common fields, as display lines per topic (TFLite
    # quantisation and operator histogram, CoreML spec metadata…): shown by ``info``, JSON-ready.
    details: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> ModelHandle:
        return dataclasses.replace(self, **changes)

    def required_image_input(self) -> ImageInput:
        """``image_input`` where only an image model can arrive: the caller has refused the others."""
        assert self.image_input is not None, f"{self.name} takes no image; it should have been refused before"
        return self.image_input

    @property
    def display_name(self) -> str:
        """The name as shown anywhere: random weights are always flagged."""
        return f"{self.name} [RANDOM WEIGHTS]" if self.random_weights else self.name

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (what ``deploy-studio info`` prints)."""
        return {
            "name": self.display_name,
            "format": self.format,
            "task": str(self.task),
            "random_weights": self.random_weights,
            "inputs": [spec.as_dict() for spec in self.inputs],
            "outputs": [spec.as_dict() for spec in self.outputs],
            "image_input": self.image_input.as_dict() if self.image_input else None,
            "labels": list(self.labels),
            "params": self.params,
            "params_method": self.params_method,
            "gflops": None if self.gflops is None else round(self.gflops, 3),
            "gflops_method": self.gflops_method,
            "size_mb": round(self.size_bytes / 1e6, 3),
            "provenance": dataclasses.asdict(self.provenance),
            "metadata": dict(self.metadata),
            "details": {topic: list(lines) for topic, lines in self.details.items()},
        }
