"""Handles for PyTorch modules a plugin changed (pruned, factorised, fine-tuned)."""

from __future__ import annotations

import hashlib

from studio.complexity import torch_gflops, torch_params
from studio.model import ModelHandle, Provenance


def state_hash(module) -> str:
    """SHA-256 of every parameter and buffer: the identity of a module that has no file yet."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def torch_variant(parent: ModelHandle, module, *, suffix: str, note: str) -> ModelHandle:
    """A handle for ``module`` derived from ``parent`` (same task, labels and pre-processing)."""
    module = module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    shape = parent.inputs[0].shape
    height, width = parent.image_input.size if parent.image_input else (shape[2], shape[3])
    gflops, method = torch_gflops(module, (1, int(shape[1]), int(height), int(width)))
    return parent.replace(
        name=f"{parent.name}-{suffix}",
        torch_module=module,
        onnx_path=None,
        source_paths=(),
        params=torch_params(module),
        size_bytes=sum(t.numel() * t.element_size() for t in module.state_dict().values()),
        gflops=gflops,
        gflops_method=method,
        provenance=Provenance(path=f"(in memory) {suffix} of {parent.provenance.path}", sha256=state_hash(module),
                              loader=f"variant of {parent.name}", note=note),
        metadata={**parent.metadata, "parent": parent.name, "parent_sha256": parent.provenance.sha256},
    )
