"""Handles for models a plugin produced: same task, labels and pre-processing, a new graph file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from studio.complexity import onnx_params, onnx_params_method
from studio.hashing import sha256_file
from studio.model import ModelHandle, Provenance


def onnx_variant(parent: ModelHandle, path: Path, *, suffix: str, note: str) -> ModelHandle:
    """A handle for the ONNX graph at ``path`` derived from ``parent`` by one step."""
    import onnx

    from studio.loaders.onnx_file import tensor_specs

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    image_input = parent.image_input
    fixed = _fixed_hw(model)
    if image_input is not None and fixed is not None and image_input.dynamic:
        image_input = dataclasses.replace(image_input, size=fixed, dynamic=False)
    return parent.replace(
        name=f"{parent.name}-{suffix}",
        format="onnx",
        onnx_path=path,
        torch_module=None,
        source_paths=(path,),
        image_input=image_input,
        inputs=tensor_specs(model.graph.input, initializers),
        outputs=tensor_specs(model.graph.output, set()),
        size_bytes=path.stat().st_size,
        params=onnx_params(model),
        params_method=onnx_params_method(model),
        gflops_method=f"{parent.gflops_method} (of the float model)" if parent.gflops is not None else "",
        provenance=Provenance(path=str(path), sha256=sha256_file(path), loader=f"variant of {parent.name}",
                              note=note),
        metadata={**parent.metadata, "parent": parent.name, "parent_sha256": parent.provenance.sha256},
    )


def _fixed_hw(model) -> tuple[int, int] | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].HasField("dim_value") and dims[3].HasField("dim_value"):
        return dims[2].dim_value, dims[3].dim_value
    return None
