"""INT8 / INT4 weights for language models on onnxruntime.

Causal LMs go through onnxruntime-genai's model builder: the decoder is exported with its KV cache and
every MatMul gets MatMulNBits weights (8 or 4 bits, one scale per ``block_size`` inputs); on CPU the
activations are quantized to INT8 on the fly (accuracy level 4), so INT8 is dynamic INT8 on the Linear
layers. Sentence encoders are exported once to ONNX, then quantized by onnxruntime: INT8 with
``quantize_dynamic`` (per-channel weights), INT4 with its MatMulNBits quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, option
from studio.tasks import TaskContext


@dataclass
class LmWeightsSettings:
    precision: Literal["int8", "int4"] = option("int8", label="Weights",
                                                help="int8: near-lossless, about 2× smaller than fp16; int4: about "
                                                     "half again, faster, less faithful")
    block_size: Literal[16, 32, 64, 128, 256] = option(32, label="Block size",
                                                        help="Input features sharing one scale: smaller blocks are "
                                                             "more accurate and slightly larger")
    algorithm: Literal["default", "rtn", "k_quant"] = option(
        "default", label="Algorithm (decoders)",
        help="onnxruntime-genai's weight quantizer: default/rtn = round to nearest; k_quant = llama.cpp-style")
    head_int8: bool = option(False, label="Keep the LM head at INT8 (INT4 decoders)",
                             help="The output projection is the largest and most sensitive matrix; INT8 there "
                                  "keeps more of the FP32 model's choices")


class LmWeights:
    id = "quantize.lm_weights"
    title = "Language model weights INT8 / INT4 (onnxruntime)"
    kind = Kind.QUANTIZE
    Settings = LmWeightsSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        if model.task not in (Task.GENERATE, Task.EMBED):
            return ["it is for language models (text generation or sentence embeddings)"]
        if model.torch_module is None or model.metadata.get("lm_runtime", "torch") != "torch":
            return ["it needs the float PyTorch model (this variant already runs on onnxruntime)"]
        if model.metadata.get("parent"):
            return ["quantize the base model: the builder reads the original weights, not this variant's"]
        return []

    def apply(self, model: ModelHandle, settings: LmWeightsSettings, ctx: TaskContext) -> ModelHandle:
        if model.task == Task.EMBED:
            return self._encoder(model, settings, ctx)
        from studio.lm import genai
        from studio.lm.variants import genai_variant

        # Only what differs from the builder's defaults (block 32, round to nearest): the same build is
        # then the same cache entry, whichever path asked for it.
        extra = {} if settings.block_size == 32 else {"block_size": str(settings.block_size)}
        algorithm = settings.algorithm
        if settings.head_int8 and settings.precision == "int4":
            extra["matmul_mixed_precision"] = "last_matmul:int8"
            # onnxruntime-genai 0.18 writes an invalid graph for mixed precision with the 'default' path (a
            # dangling lm_head weight); 'rtn' is the same round-to-nearest quantizer and writes it correctly
            algorithm = "rtn" if algorithm == "default" else algorithm
        if algorithm != "default":
            extra["algo_config"] = algorithm
        folder = genai.build(model, settings.precision, ctx, extra=extra)
        ctx.add_report({"runtime": "onnxruntime-genai", "precision": settings.precision, "builder_options": extra,
                        "note": "MatMulNBits weight-only quantization; activations INT8 on CPU (accuracy level 4)"})
        return genai_variant(model, folder, precision=settings.precision,
                             note=f"onnxruntime-genai builder, {settings.precision}, block {settings.block_size}")

    def _encoder(self, model: ModelHandle, settings: LmWeightsSettings, ctx: TaskContext) -> ModelHandle:
        from studio.lm.encoder_onnx import encoder_onnx, pipeline_settings
        from studio.lm.variants import encoder_variant

        pooling, normalize, max_length = pipeline_settings(model)
        ctx.progress(0.1, "exporting the encoder to ONNX")
        encoder_onnx(model, "fp32")
        ctx.progress(0.5, f"quantizing to {settings.precision}")
        path = encoder_onnx(model, settings.precision, settings.block_size)
        how = ("quantize_dynamic, per-channel INT8 weights" if settings.precision == "int8"
               else f"MatMulNBits 4-bit, block {settings.block_size}")
        ctx.add_report({"runtime": "onnxruntime", "precision": settings.precision, "method": how})
        return encoder_variant(model, path, precision=settings.precision, pooling=pooling, normalize=normalize,
                               max_length=max_length, note=how)
