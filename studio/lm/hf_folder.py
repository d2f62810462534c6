"""A plain Hugging Face folder for a loaded language model (what converters such as the
onnxruntime-genai builder read).

A model loaded from a folder is that folder. A GGUF-loaded model is written once into the cache as
config + safetensors + tokenizer: transformers refuses ``save_pretrained`` on a GGUF-loaded model, so
the architecture is rebuilt from its config and given the dequantised FP32 weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.atomic import publish, scratch_folder
from studio.errors import UnsupportedError
from studio.model import ModelHandle
from studio.paths import cache_dir


def dequantised_folder(name: str, sha256: str) -> Path:
    """Where a GGUF file's FP32 weights are kept once dequantised (keyed by the file's hash)."""
    return cache_dir() / "hf" / f"{name}-{sha256[:12]}"


def hf_folder(handle: ModelHandle) -> Path:
    if handle.format == "hf-folder":
        return Path(handle.provenance.path).parent
    if handle.format != "gguf" or handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} is not a Hugging Face or GGUF language model")
    target = dequantised_folder(Path(handle.provenance.path).stem, handle.provenance.sha256)  # as the loader
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    with scratch_folder(target) as staging:
        config = handle.torch_module.config
        config.quantization_config = None
        rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        rebuilt.load_state_dict(handle.torch_module.state_dict())
        rebuilt.save_pretrained(str(staging), safe_serialization=True)
        handle.tokenizer.save_pretrained(str(staging))
        config_file = staging / "config.json"
        data = json.loads(config_file.read_text())
        data.pop("quantization_config", None)  # the weights are FP32 now; converters must not see Q4_1
        config_file.write_text(json.dumps(data, indent=2))
        publish(staging, target)
    return target
