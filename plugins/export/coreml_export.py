"""CoreML ``.mlpackage`` export with coremltools; on Linux the spec is validated, not run.

Ultralytics models go through Ultralytics' exporter (image input, class labels in the metadata);
other PyTorch models through ``coremltools.convert`` of a traced module with an image input that
carries the model's own scale and bias; a model that exists only as ONNX through a PyTorch module rebuilt
from its graph by onnx2torch (``onnx_torch_route``). Running a CoreML model needs macOS: the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugins.export.common import VISION_PRECISIONS, Exporter, VisionPrecision, precision_from_flag
from studio.artifact_metadata import artifact_metadata
from studio.lm.variants import is_language_model
from studio.model import ModelHandle
from studio.plugin_api import LANGUAGE, VISION, Exports, option
from studio.tasks import TaskContext


@dataclass
class CoreMlExportSettings:
    precision: VisionPrecision = option(
        "fp32", label="Precision",
        help="fp16: FP16 compute and weights; int8: int8 weights (linear, per channel), FP16 compute")


class CoreMlExport(Exporter):
    id = "export.coreml"
    title = "CoreML"
    format = "coreml"
    suffix = ".mlpackage"
    Settings = CoreMlExportSettings
    # Set by coremltools itself, from the float PyTorch model; language models at FP32 only
    # (studio.lm.mobile converts them at a fixed window).
    exports = (Exports(VISION, VISION_PRECISIONS, native=VISION_PRECISIONS),
               Exports(LANGUAGE, ("fp32",), native=("fp32",)))
    settings_version = 2
    migrate = precision_from_flag("fp16")
    torch_reason = "CoreML is converted from a PyTorch module (coremltools reads no ONNX), and this model has none"
    onnx_route = True

    def export(self, model: ModelHandle, settings: CoreMlExportSettings, target: Path, ctx: TaskContext) -> dict:
        if is_language_model(model):  # a fixed window of tokens; the traced graph is checked in PyTorch
            from studio.lm.mobile import coreml_language

            return coreml_language(model, target, ctx)
        half = settings.precision in ("fp16", "int8")  # int8 weights dequantise to FP16 compute
        details: dict = {}
        if model.metadata.get("family") == "ultralytics" and model.torch_module is not None:
            from plugins.export.ultralytics_route import ultralytics_export

            ctx.progress(0.05, "converting with coremltools")
            ultralytics_export(model, "coreml", target, **({"quantize": 16} if half else {}))
        else:
            from plugins.export.onnx_torch_route import convertible_torch

            source, details = convertible_torch(model, ctx)  # check() admitted its PyTorch module or ONNX graph
            ctx.check_cancelled()
            ctx.progress(0.05, "converting with coremltools")
            _convert_torch(source, target, half)
        if settings.precision == "int8":
            ctx.check_cancelled()
            ctx.progress(0.6, "quantizing weights to int8")
            details["weights"] = _quantize_weights(target)
        ctx.progress(0.8, "validating the spec")
        return {"runtime": "coremltools spec validation (running a CoreML model needs macOS)",
                "parity": None, "spec": _validate(target, model), **details}


def _convert_torch(model: ModelHandle, target: Path, half: bool) -> None:
    import coremltools as ct
    import torch

    shape = tuple(int(d) for d in model.inputs[0].shape)
    traced = torch.jit.trace(model.torch_module.eval(), torch.zeros(shape))
    image = model.image_input
    inputs = [ct.ImageType(name="image", shape=shape, scale=image.scale, bias=[-image.mean * image.scale] * 3,
                           color_layout=ct.colorlayout.RGB)] if image else [ct.TensorType(name="x", shape=shape)]
    converted = ct.convert(traced, inputs=inputs, convert_to="mlprogram",
                           compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32)
    converted.user_defined_metadata.update(artifact_metadata(model))
    converted.save(str(target))


def _quantize_weights(target: Path) -> dict:
    """Linear symmetric int8 weights, per output channel (coremltools.optimize), in place in staging."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    model = ct.models.MLModel(str(target), skip_model_load=True)
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=2048))
    quantized = cto.linear_quantize_weights(model, config=config)
    quantized.save(str(target))
    ops = _op_counts(target)
    return {"method": "coremltools.optimize.coreml.linear_quantize_weights: int8 symmetric, per channel, "
                      "tensors of 2048+ elements", "constexpr_dequantize_ops": ops.get("constexpr_affine_dequantize", 0)
            + ops.get("constexpr_blockwise_shift_scale", 0)}


def _op_counts(target: Path) -> dict[str, int]:
    import coremltools as ct

    spec = ct.models.MLModel(str(target), skip_model_load=True).get_spec()
    counts: dict[str, int] = {}
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def _validate(target: Path, model: ModelHandle) -> dict:
    import coremltools as ct

    loaded = ct.models.MLModel(str(target), skip_model_load=True)
    spec = loaded.get_spec()
    inputs = [{"name": i.name, "type": i.type.WhichOneof("Type")} for i in spec.description.input]
    outputs = [{"name": o.name, "type": o.type.WhichOneof("Type")} for o in spec.description.output]
    metadata = dict(spec.description.metadata.userDefined)
    problems = []
    if not inputs or not outputs:
        problems.append("the model declares no inputs or no outputs")
    if model.image_input is not None and not any(i["type"] == "imageType" for i in inputs):
        problems.append("the input is not an image type")
    return {"inputs": inputs, "outputs": outputs, "metadata_keys": sorted(metadata), "problems": problems,
            "spec_version": spec.specificationVersion}
