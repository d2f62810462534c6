"""INT8 / INT4 weights for language models on onnxruntime.

Causal LMs go through onnxruntime-genai's model builder: the decoder is exported with its KV cache and
every MatMul gets MatMulNBits weights (8 or 4 bits, one scale per ``block_size`` inputs); on CPU the
activations are quantized to INT8 on the fly (accuracy level 4), so INT8 is dynamic INT8 on the Linear
layers. Sentence encoders are exported once to ONNX, then quantized by onnxruntime: INT8 with
``quantize_dynamic`` (per-channel weights), INT4 with its MatMulNBits quantizer.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.model import ModelHandle, Task
from studio.plugin_api import LANGUAGE, Kind, Provides, option
from studio.tasks import TaskContext

LmPrecision = Literal["int8", "int4"]  # the precision setting, and what the plugin provides (below)


@dataclass
class LmWeightsSettings:
    precision: LmPrecision = option("int8", label="Weights",
                                                help="int8: near-lossless, about 2× smaller than fp16; int4: about "
                                                     "half again, faster, less faithful")
    block_size: Literal[16, 32, 64, 128, 256] = option(32, label="Block size",
                                                        help="Input features sharing one scale: smaller blocks are "
                                                             "more accurate and slightly larger")
    algorithm: Literal["auto", "gguf", "default", "rtn", "k_quant"] = option(
        "auto", label="Algorithm (decoders)",
        help="auto: INT4 of a GGUF file keeps the file's own Q4/Q8 blocks (gguf) when it can, else round to "
             "nearest; gguf: the file's blocks, never re-quantized (block 32); default/rtn: onnxruntime-genai's "
             "round to nearest; k_quant: its llama.cpp-style quantizer")
    head_int8: bool = option(False, label="Keep the LM head at INT8 (INT4 decoders)",
                             help="The output projection is the largest and most sensitive matrix; INT8 there "
                                  "keeps more of the FP32 model's choices")


class LmWeights:
    id = "quantize.lm_weights"
    title = "Language model weights INT8 / INT4 (onnxruntime)"
    kind = Kind.QUANTIZE
    provides = tuple(Provides(p, LANGUAGE, {"precision": p}) for p in typing.get_args(LmPrecision))
    Settings = LmWeightsSettings
    settings_version = 2

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1's default algorithm was the builder's 'default' (re-quantizing every weight, also a
        # GGUF's): a replayed recipe keeps it; version 2 defaults to 'auto' (a GGUF's own blocks at INT4).
        if version < 2:
            data = {"algorithm": "default", **data}
        return data

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

        algorithm = self._algorithm(model, settings, ctx)
        if algorithm == "gguf":
            folder = genai.build_gguf_int4(model, ctx)
            ctx.add_report({"runtime": "onnxruntime-genai", "precision": "int4", "algorithm": "gguf",
                            "gguf_blocks": _read_json(folder / "gguf_blocks.json"),
                            "note": "the GGUF file's own blocks in MatMulNBits (Q4_1 offsets as a block-sum "
                                    "MatMul; Q8_0 LM head and embeddings at 8 bits), never re-quantized; "
                                    "activations INT8 on CPU (accuracy level 4)"})
            return genai_variant(model, folder, precision="int4", note="onnxruntime-genai builder graph with the "
                                                                        "GGUF's own Q4/Q8 blocks")
        # Only what differs from the builder's defaults (block 32, round to nearest): the same build is
        # then the same cache entry, whichever path asked for it.
        extra = {} if settings.block_size == 32 else {"block_size": str(settings.block_size)}
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

    @staticmethod
    def _algorithm(model: ModelHandle, settings: LmWeightsSettings, ctx: TaskContext) -> str:
        """'auto' resolved: the GGUF's own blocks for INT4 of a GGUF whose blocks fit, else 'default'."""
        from studio.errors import UnsupportedError
        from studio.lm.gguf_blocks import why_not

        wanted = settings.algorithm
        if wanted not in ("auto", "gguf"):
            return wanted
        reason = None
        if settings.precision != "int4":
            reason = "the GGUF's own blocks are an INT4 build"
        elif settings.block_size != 32:
            reason = "GGUF blocks are 32 inputs wide"
        elif model.format != "gguf":
            reason = f"{model.name} is not a GGUF file"
        else:
            reason = why_not(Path(model.provenance.path))
        if reason is None:
            return "gguf"
        if wanted == "gguf":
            raise UnsupportedError(f"algorithm 'gguf' cannot build {model.name}: {reason}",
                                   fix="choose 'auto', 'rtn' or 'k_quant'")
        if settings.precision == "int4":
            ctx.add_report({"algorithm": "default", "why_not_gguf_blocks": reason})
        return "default"

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


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
