"""Sentence embeddings on onnxruntime: the encoder exported to ONNX, optionally dynamic INT8.

The transformer part of a sentence-transformers pipeline is exported once into the cache
(``torch.onnx.export``, dynamic batch and sequence); pooling and normalisation are the pipeline's own
settings applied to its output (mean over the attention mask, then L2 when the pipeline has a
Normalize module). INT8 is onnxruntime's dynamic quantization of the MatMul weights; INT4 is its
weight-only MatMulNBits quantizer (blocks of ``block_size`` input features share a scale).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from studio.atomic import staged_file
from studio.errors import UnsupportedError
from studio.model import ModelHandle, Task, task_noun
from studio.paths import cache_dir
from studio.vectors import unit_rows

OPSET = 17
PRECISIONS = ("fp32", "int8", "int4")


def _pipeline_parts(handle: ModelHandle) -> tuple[Any, str, bool]:
    if handle.task != Task.EMBED or handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model, not a text encoder")
    modules = list(handle.torch_module)
    pooling = next((m for m in modules if type(m).__name__ == "Pooling"), None)
    mode = pooling.get_config_dict().get("pooling_mode", "mean") if pooling is not None else "mean"
    if mode not in ("mean", "cls"):
        raise UnsupportedError(f"{handle.name}: pooling '{mode}' is not supported on onnxruntime yet",
                               fix="use the PyTorch runtime for this encoder")
    normalize = any(type(m).__name__ == "Normalize" for m in modules)
    return modules[0].auto_model, mode, normalize


def pipeline_settings(handle: ModelHandle) -> tuple[str, bool, int]:
    """(pooling, normalize, max tokens) of the encoder's pipeline, from the module or a variant's metadata."""
    if handle.metadata.get("lm_runtime") == "ort_encoder":
        meta = handle.metadata
        return meta.get("pooling", "mean"), meta.get("normalize") == "true", int(meta.get("max_length") or 256)
    _, pooling, normalize = _pipeline_parts(handle)
    return pooling, normalize, int(getattr(handle.torch_module, "max_seq_length", 256) or 256)


def _quantized(source: Path, target: Path, precision: str, block_size: int) -> None:
    with staged_file(target, suffix=".onnx") as staged:
        tmp = str(staged)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True)
        else:
            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=4, block_size=block_size,
                                             is_symmetric=True, accuracy_level=4)
            quantizer.process()
            quantizer.model.save_model_to_file(tmp, use_external_data_format=False)


def encoder_onnx(handle: ModelHandle, precision: str = "fp32", block_size: int = 32) -> Path:
    if precision not in PRECISIONS:
        raise UnsupportedError(f"unknown precision '{precision}'", fix=f"choose one of {', '.join(PRECISIONS)}")
    folder = cache_dir() / "encoders"
    tag = f"{precision}-b{block_size}" if precision == "int4" else precision
    target = folder / f"{handle.name}-{handle.provenance.sha256[:12]}-{tag}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if precision != "fp32":
        _quantized(encoder_onnx(handle, "fp32"), target, precision, block_size)
        return target
    import torch

    transformer, _, _ = _pipeline_parts(handle)
    names = [n for n in handle.tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    example = {n: torch.ones((1, 8), dtype=torch.int64) for n in names}
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"last_hidden_state": {0: "batch", 1: "sequence"}}

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    with staged_file(target, suffix=".onnx") as tmp, torch.inference_mode():
        torch.onnx.export(Encoder(copy.deepcopy(transformer).eval()), tuple(example.values()), str(tmp),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    return target


class OrtEncoder:
    """An encoder graph on onnxruntime with its pipeline's pooling; a variant handle brings its own graph."""

    def __init__(self, handle: ModelHandle, precision: str = "fp32", threads: int = 2):
        import onnxruntime as ort

        self.pooling, self.normalize, self.max_length = pipeline_settings(handle)
        self.handle = handle
        if handle.metadata.get("lm_runtime") == "ort_encoder":
            assert handle.onnx_path is not None, "an ort_encoder handle is its ONNX graph"
            self.precision, self.path = handle.metadata.get("precision", "?"), Path(handle.onnx_path)
        else:
            self.precision, self.path = precision, encoder_onnx(handle, precision)
        self.runtime = f"onnxruntime {self.precision}"
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, sentences: list[str]) -> np.ndarray:
        batch = self.handle.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_length,
                                      return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in self.inputs}
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = batch["attention_mask"][..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            vectors = unit_rows(vectors)
        return vectors.astype(np.float32)
