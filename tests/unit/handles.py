"""Hand-written model handles: what a loader would return, without loading anything."""

from __future__ import annotations

from typing import Any

from studio.model import ImageInput, ModelHandle, Provenance, Task, TensorSpec

SHA = "0123456789abcdef" * 4


def handle(name: str = "yolo-net", task: Task = Task.DETECT, **changes: Any) -> ModelHandle:
    base = ModelHandle(
        name=name, format="onnx", task=task, decoder="yolo", labels=("person", "bicycle", "car"),
        image_input=ImageInput((640, 640)),
        inputs=(TensorSpec("images", (1, 3, "height", "width"), "float32"),),
        outputs=(TensorSpec("output0", (1, 7, "anchors"), "float32"),),
        size_bytes=12_345_678, provenance=Provenance(path=f"/models/{name}.onnx", sha256=SHA, loader="onnx"),
        params=3_151_904, gflops=8.7, gflops_method="counted on the graph",
    )
    return base.replace(**changes)


def language_model(runtime: str | None = None, precision: str | None = None) -> ModelHandle:
    metadata = {k: v for k, v in (("lm_runtime", runtime), ("precision", precision)) if v is not None}
    return handle("smollm", Task.GENERATE, decoder="causal_lm", labels=(), image_input=None, metadata=metadata)
