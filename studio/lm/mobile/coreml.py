"""A language model to a CoreML ``.mlpackage`` through ``coremltools.convert`` of the traced module: an FP32
``mlprogram`` with the metadata in ``user_defined_metadata``. On Linux its spec is validated (a CoreML
model runs on macOS only), and the traced graph handed to coremltools is checked against the pipeline."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from studio.atomic import publish, scratch_folder
from studio.errors import StudioError, UnsupportedError, first_line
from studio.lm.mobile.common import check_torch, io, language_kind, metadata, outputs, version
from studio.lm.mobile.kind import LanguageKind, weight_bytes
from studio.model import ModelHandle
from studio.tasks import TaskContext


def coreml_language(handle: ModelHandle, target: Path, ctx: TaskContext, seq_len: int = 128) -> dict[str, Any]:
    """Write ``handle`` as a CoreML ``.mlpackage`` at ``target``; its spec is validated (macOS runs it)."""
    kind = language_kind(handle, seq_len, "CoreML")
    target = Path(target)
    ctx.progress(0.02, "checking the wrapped model against the PyTorch pipeline")
    module, sample = kind.wrap(handle, seq_len)
    ctx.check_cancelled()
    ctx.progress(0.05, "tracing the PyTorch model")
    import torch

    start = time.perf_counter()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes: the window is fixed by design
        traced = torch.jit.trace(module, sample, check_trace=False, strict=False)
    trace_s = time.perf_counter() - start
    traced_check = check_torch(handle, kind, traced, seq_len)  # the graph coremltools reads, on real inputs
    ctx.check_cancelled()
    ctx.progress(0.35, "converting with coremltools")
    with scratch_folder(target) as staging:
        package = staging / target.name
        import coremltools as ct

        start = time.perf_counter()
        try:
            converted = ct.convert(traced, inputs=[ct.TensorType(name=n, shape=tuple(s.shape), dtype=np.int32)
                                                   for n, s in zip(kind.inputs, sample, strict=True)],
                                   outputs=[ct.TensorType(name=kind.output)], convert_to="mlprogram",
                                   compute_precision=ct.precision.FLOAT32)
        except Exception as exc:  # the converter's own error (an op it lacks), in one line
            raise UnsupportedError(f"coremltools could not convert this model: {type(exc).__name__}: "
                                   f"{first_line(exc)}", fix="export ONNX instead") from exc
        convert_s = time.perf_counter() - start
        meta = metadata(handle, kind, seq_len)
        converted.user_defined_metadata.update(_flat(meta))
        ctx.check_cancelled()
        ctx.progress(0.85, "saving and validating the spec")
        converted.save(str(package))
        del converted
        spec = _validate(package, handle, kind, seq_len)
        publish(package, target)
    ctx.progress(1.0, "spec validated")
    return {"runtime": "coremltools spec validation (running a CoreML model needs macOS)",
            "converter": f"coremltools {version('coremltools')}", "kind": kind.name, "seq_len": seq_len,
            "inputs": io(kind, sample), "outputs": outputs(handle, kind, seq_len),
            "parity": None, "numerical_check": "not possible on Linux: CoreML predictions need macOS; the traced "
                                               "graph given to coremltools was checked instead (traced_check)",
            "traced_check": traced_check, "spec": spec, "trace_seconds": round(trace_s, 1),
            "convert_seconds": round(convert_s, 1), "kv_cache": kind.kv_cache, "usage": meta["usage"],
            **kind.notes}


def _validate(package: Path, handle: ModelHandle, kind: LanguageKind, seq_len: int) -> dict[str, Any]:
    """The saved package's spec: an mlProgram with the expected inputs, output, metadata and weights."""
    import coremltools as ct

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()

    def described(feature: Any) -> dict[str, Any]:
        array = feature.type.multiArrayType
        return {"name": feature.name, "shape": list(array.shape),
                "dtype": ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)}

    names, output, expected_out = list(kind.inputs), kind.output, kind.output_shape(handle, seq_len)
    inputs = [described(i) for i in spec.description.input]
    outputs = [described(o) for o in spec.description.output]
    problems = []
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append(f"the model is a {spec.WhichOneof('Type')}, not an mlProgram")
    if [(i["name"], i["shape"], i["dtype"]) for i in inputs] != [(n, [1, seq_len], "INT32") for n in names]:
        problems.append(f"inputs are {inputs}, expected {names} of INT32 (1, {seq_len})")
    if [(o["name"], o["shape"]) for o in outputs] != [(output, expected_out)]:
        problems.append(f"outputs are {outputs}, expected {output} {expected_out}")
    metadata = dict(spec.description.metadata.userDefined)
    missing = [k for k in ("tokenizer", "seq_len", "deploy_studio.source_sha256") if k not in metadata]
    if missing:
        problems.append(f"metadata lacks {', '.join(missing)}")
    weights = sum(f.stat().st_size for f in package.rglob("weight.bin"))
    if weights < weight_bytes(handle.torch_module) // 2:
        problems.append(f"the weight file holds {weights} bytes, less than the model's FP32 weights")
    if problems:
        raise StudioError(f"the CoreML package fails validation: {'; '.join(problems)}", fix="export ONNX instead")
    functions = spec.mlProgram.functions
    ops = sum(len(block.operations) for f in functions.values() for block in f.block_specializations.values())
    return {"type": "mlProgram", "spec_version": spec.specificationVersion, "inputs": inputs, "outputs": outputs,
            "metadata_keys": sorted(metadata), "ops": ops, "weight_bytes": weights, "problems": []}


def _flat(meta: dict[str, Any]) -> dict[str, str]:
    """CoreML's user-defined metadata holds strings only."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
