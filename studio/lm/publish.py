"""A language-model variant as files another program can open: an ONNX folder with its tokenizer.

* a decoder (onnxruntime-genai): ``model.onnx`` (+ ``.data``) with the KV cache as inputs/outputs,
  ``genai_config.json``, the tokenizer — what onnxruntime-genai's ``og.Model(folder)`` loads;
* an encoder: ``model.onnx``, the tokenizer, and ``deploy_studio.json`` with the pipeline's pooling
  and normalisation (the part of a sentence-transformers pipeline that is not in the graph).

Both folders open again in the studio (``studio.loaders.language``). PyTorch-only variants (low-rank
factors, early-exit decoding) have no such folder: their recipe replays them on the base model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from studio.lm.variants import lm_runtime
from studio.model import ModelHandle

ENCODER_MANIFEST = "deploy_studio.json"


def write_language_model(handle: ModelHandle, folder: Path) -> bool:
    """Write ``handle``'s ONNX files into ``folder`` (created); False when it has none to write."""
    runtime = lm_runtime(handle)
    if runtime == "genai":
        shutil.copytree(handle.metadata["genai_folder"], folder)
        return True
    if runtime == "ort_encoder":
        assert handle.onnx_path is not None, "an ort_encoder handle is its ONNX graph"
        folder.mkdir(parents=True)
        shutil.copyfile(handle.onnx_path, folder / "model.onnx")
        handle.tokenizer.save_pretrained(str(folder))
        meta = handle.metadata
        manifest = {"kind": "text-encoder", "name": meta.get("parent", handle.name), "precision": meta.get("precision"),
                    "pooling": meta.get("pooling"), "normalize": meta.get("normalize") == "true",
                    "max_length": int(meta.get("max_length") or 256),
                    "hidden_size": handle.outputs[0].shape[-1] if handle.outputs else None}
        (folder / ENCODER_MANIFEST).write_text(json.dumps(manifest, indent=2))
        return True
    return False
