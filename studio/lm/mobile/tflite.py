"""A language model to a TFLite file through ``litert_torch.convert``, re-opened and verified in
ai_edge_litert's interpreter. Its metadata and the tokenizer's files are appended as a zip after the
flatbuffer, as the vision TFLite export does (LiteRT ignores trailing bytes)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.atomic import publish, scratch_folder
from studio.errors import StudioError, UnsupportedError, first_line
from studio.lm.mobile.common import check_torch, io, language_kind, metadata, outputs, version
from studio.lm.mobile.kind import LanguageKind
from studio.model import ModelHandle
from studio.reports import LanguageParity, language_score
from studio.tasks import TaskContext


def tflite_language(handle: ModelHandle, target: Path, ctx: TaskContext, seq_len: int = 128) -> dict[str, Any]:
    """Write ``handle`` as a TFLite file at ``target`` and verify it in ai_edge_litert's interpreter."""
    kind = language_kind(handle, seq_len, "TFLite")
    kind.check_tflite(handle)
    target = Path(target)
    ctx.progress(0.02, "checking the wrapped model against the PyTorch pipeline")
    module, sample = kind.wrap(handle, seq_len)
    wrapper_check = check_torch(handle, kind, module, seq_len)
    ctx.check_cancelled()
    ctx.progress(0.1, "converting with litert-torch")
    with scratch_folder(target) as staging:
        produced = staging / target.name
        start = time.perf_counter()
        _convert(module, dict(zip(kind.inputs, sample, strict=True)), kind.output, produced)
        convert_s = time.perf_counter() - start
        ctx.check_cancelled()
        ctx.progress(0.7, "writing the metadata and the tokenizer")
        meta = metadata(handle, kind, seq_len)
        bundled = _append_metadata(produced, meta, handle)
        ctx.progress(0.75, "verifying in ai_edge_litert")
        verified = _verify(produced, handle, kind, seq_len)
        publish(produced, target)
    ctx.progress(1.0, "verified")
    return {"runtime": "ai_edge_litert interpreter", "converter": f"litert-torch {version('litert-torch')}",
            "kind": kind.name, "seq_len": seq_len, "inputs": io(kind, sample),
            "outputs": outputs(handle, kind, seq_len), "parity": verified, "wrapper_check": wrapper_check,
            "convert_seconds": round(convert_s, 1), "kv_cache": kind.kv_cache, "metadata": "metadata.json",
            "bundled_files": bundled, "usage": meta["usage"], **kind.notes}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """litert-torch prints its own progress bars; the studio reports progress itself."""
    previous = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = previous


def _convert(module: Any, sample: dict[str, Any], output: str, path: Path) -> None:
    import torch

    class Named(torch.nn.Module):  # keyword inputs and a dict output name the signature's tensors
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, Any]:
            args = (input_ids,) if attention_mask is None else (input_ids, attention_mask)
            return {output: self.inner(*args)}

    with _quiet():
        import litert_torch

        try:
            converted = litert_torch.convert(Named(module).eval(), sample_kwargs=sample)
        except Exception as exc:  # the converter's own error, in one line
            raise UnsupportedError(f"litert-torch could not convert this model: {type(exc).__name__}: "
                                   f"{first_line(exc)}", fix="export ONNX instead") from exc
        converted.export(str(path))


def _append_metadata(path: Path, meta: dict[str, Any], handle: ModelHandle) -> list[str]:
    """metadata.json and the tokenizer's files as a zip after the flatbuffer (tflite_export's convention)."""
    import zipfile

    folder = path.parent / "tokenizer"
    try:
        handle.tokenizer.save_pretrained(str(folder))
        files = sorted(p for p in folder.iterdir() if p.is_file())
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", json.dumps(meta, indent=2))
            for file in files:
                archive.write(file, f"tokenizer/{file.name}")
        return ["metadata.json", *(f"tokenizer/{f.name}" for f in files)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _verify(path: Path, handle: ModelHandle, kind: LanguageKind, seq_len: int) -> LanguageParity:
    from ai_edge_litert.interpreter import Interpreter

    names = list(kind.inputs)
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    runner = interpreter.get_signature_runner()
    declared = runner.get_input_details()
    wrong = [n for n in names if n not in declared or tuple(declared[n]["shape"]) != (1, seq_len)]
    if wrong:
        raise StudioError(f"the converted TFLite file's inputs are {sorted(declared)}, not {names} of "
                          f"(1, {seq_len})", fix="export ONNX instead")
    result = kind.verify_tflite(runner, declared, handle, seq_len)
    if not result["passed"]:
        raise StudioError(f"the TFLite file does not reproduce {handle.name}: {result['metric']} "
                          f"{language_score(result)}", fix="export ONNX instead")
    return result
