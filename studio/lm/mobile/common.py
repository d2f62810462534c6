"""The pieces both formats share: which kind a model is (every refusal before any work), the check of the
wrapped or traced module against the untouched PyTorch model, and the metadata and report fields."""

from __future__ import annotations

from typing import Any

from studio.errors import StudioError, UnsupportedError
from studio.lm.mobile.decoder import DECODER
from studio.lm.mobile.encoder import ENCODER
from studio.lm.mobile.kind import LanguageKind
from studio.model import ModelHandle, Task, task_noun

KINDS: dict[Task, LanguageKind] = {Task.EMBED: ENCODER, Task.GENERATE: DECODER}


def language_kind(handle: ModelHandle, seq_len: int, fmt: str) -> LanguageKind:
    """``handle``'s kind, or an UnsupportedError naming why it cannot become ``fmt``."""
    runtime = handle.metadata.get("lm_runtime", "torch")
    kind = KINDS.get(handle.task)
    if kind is None:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model; this {fmt} export is for "
                               "language models",
                               fix=f"export vision models with the {fmt} exporter plugin")
    if runtime == "early_exit":
        raise UnsupportedError(f"{handle.name} is an early-exit variant: it decides per token at run time, which a "
                               f"fixed {fmt} graph cannot", fix=f"export the base model to {fmt}")
    if runtime != "torch" or handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} is an onnxruntime variant ({runtime}); {fmt} is converted from the "
                               "PyTorch model", fix=f"export the float PyTorch model to {fmt}, or this one to ONNX")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise UnsupportedError(f"a window of {seq_len!r} tokens is too short", fix="choose seq_len of 2 or more")
    kind.check(handle, seq_len, fmt)
    return kind


def check_torch(handle: ModelHandle, kind: LanguageKind, module: Any, seq_len: int) -> dict[str, Any]:
    """The wrapped (or traced) module on the verification inputs against the untouched pipeline.

    Fails fast, before any conversion, when the wrapper does not reproduce the pipeline.
    """
    import torch

    with torch.inference_mode():
        ok, result = kind.check_torch(handle, module, seq_len)
    if not ok:
        raise StudioError(f"the fixed-window graph of {handle.name} does not reproduce the PyTorch model ({result})",
                          fix="export ONNX instead")
    return result


def io(kind: LanguageKind, sample: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(s.shape), "dtype": "int32"} for n, s in zip(kind.inputs, sample, strict=True)]


def outputs(handle: ModelHandle, kind: LanguageKind, seq_len: int) -> list[dict[str, Any]]:
    return [{"name": kind.output, "shape": kind.output_shape(handle, seq_len), "dtype": "float32"}]


def metadata(handle: ModelHandle, kind: LanguageKind, seq_len: int) -> dict[str, Any]:
    from studio import __version__

    tokenizer = handle.tokenizer
    return {
        "author": "Deploy Studio",
        "description": f"{handle.display_name} exported by Deploy Studio {__version__}",
        "task": str(handle.task),
        "tokenizer": f"{handle.provenance.zoo_name or handle.name} ({type(tokenizer).__name__})",
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "seq_len": seq_len,
        "batch": 1,
        "inputs": list(kind.inputs),
        "outputs": [kind.output],
        "deploy_studio.version": __version__,
        "deploy_studio.source_sha256": handle.metadata.get("parent_sha256") or handle.provenance.sha256,
        "deploy_studio.recipe": handle.metadata.get("recipe", ""),
    } | kind.metadata(handle, seq_len)


def version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"
