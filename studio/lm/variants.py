"""Handles for language-model variants: where each runs is written in ``metadata['lm_runtime']``.

* ``torch``   — a transformers / sentence-transformers module (the base model, low-rank factors);
* ``genai``   — an onnxruntime-genai folder (ONNX decoder with KV cache, FP32/INT8/INT4 weights);
* ``early_exit`` — the PyTorch decoder run layer by layer, leaving when the head is confident;
* ``ort_encoder`` — a sentence encoder exported to ONNX, pooling and normalisation in metadata.

An ONNX variant keeps the base model's tokenizer and context length, and drops the PyTorch module so
no later step mistakes it for float weights.
"""

from __future__ import annotations

from pathlib import Path

from studio.model import ModelHandle, Provenance, Task

LANGUAGE_TASKS = (Task.GENERATE, Task.EMBED)


def is_language_model(handle: ModelHandle) -> bool:
    return handle.task in LANGUAGE_TASKS


def lm_runtime(handle: ModelHandle) -> str:
    return handle.metadata.get("lm_runtime", "torch")


def onnx_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file() and (".onnx" in f.name or f.suffix == ".data"))


def genai_variant(parent: ModelHandle, folder: Path, *, precision: str, note: str) -> ModelHandle:
    return parent.replace(
        name=f"{parent.name}-ort-{precision}", format="onnx-genai", onnx_path=folder / "model.onnx",
        torch_module=None, size_bytes=onnx_size(folder), source_paths=(folder,),
        provenance=Provenance(path=str(folder), sha256=parent.provenance.sha256, loader=f"variant of {parent.name}",
                              note=note),
        metadata={**parent.metadata, "lm_runtime": "genai", "genai_folder": str(folder), "precision": precision,
                  "parent": parent.name, "parent_sha256": parent.provenance.sha256},
    )


def encoder_variant(parent: ModelHandle, path: Path, *, precision: str, pooling: str, normalize: bool,
                    max_length: int, note: str) -> ModelHandle:
    return parent.replace(
        name=f"{parent.name}-ort-{precision}", format="onnx", onnx_path=path, torch_module=None,
        size_bytes=path.stat().st_size, source_paths=(path,),
        provenance=Provenance(path=str(path), sha256=parent.provenance.sha256, loader=f"variant of {parent.name}",
                              note=note),
        metadata={**parent.metadata, "lm_runtime": "ort_encoder", "precision": precision, "pooling": pooling,
                  "normalize": str(normalize).lower(), "max_length": str(max_length), "parent": parent.name,
                  "parent_sha256": parent.provenance.sha256},
    )


def torch_lm_variant(parent: ModelHandle, module, *, suffix: str, note: str, **metadata: str) -> ModelHandle:
    params = int(sum(p.numel() for p in module.parameters()))
    size = int(sum(p.numel() * p.element_size() for p in module.parameters()))
    return parent.replace(
        name=f"{parent.name}-{suffix}", torch_module=module, params=params, size_bytes=size,
        provenance=Provenance(path=parent.provenance.path, sha256=parent.provenance.sha256,
                              loader=f"variant of {parent.name}", note=note),
        metadata={**parent.metadata, "lm_runtime": "torch", "parent": parent.name,
                  "parent_sha256": parent.provenance.sha256, **metadata},
    )
