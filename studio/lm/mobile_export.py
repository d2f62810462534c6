"""TFLite and CoreML files for the language models, at a fixed window of ``seq_len`` tokens, batch 1.

A sentence encoder (Task.EMBED) becomes ``(input_ids, attention_mask) -> embedding``: the transformer
with the pipeline's own pooling (mean over the mask, or CLS) and L2 normalisation inside the graph, so
the file gives sentence embeddings directly. Callers tokenize with the model's tokenizer, right-pad
to ``seq_len`` (attention_mask 1 for tokens, 0 for padding) and truncate longer text; token types are
zeros inside the graph (single sentences).

A Llama-layout causal LM (Task.GENERATE) becomes ``input_ids -> logits`` over the whole window,
without a KV cache: every new token re-reads the window. Callers right-pad the prompt to ``seq_len``
with any token and read the logits at the last prompt position (the mask is causal, so the padding
never changes earlier positions). For a KV cache, export ONNX: the onnxruntime-genai folder carries it.

TFLite goes through ``litert_torch.convert`` and is re-opened in ai_edge_litert's interpreter: the
encoder's embeddings are compared with the sentence-transformers pipeline (cosine), the decoder's
argmax at each prompt position with the PyTorch model's. Its metadata and the tokenizer's files are
appended as a zip after the flatbuffer, as the vision TFLite export does (LiteRT ignores trailing
bytes). CoreML goes through ``coremltools.convert`` of the traced module to an FP32 ``mlprogram``
with the metadata in ``user_defined_metadata``; on Linux its spec is validated (a CoreML model runs
on macOS only), and the traced graph handed to coremltools is checked against the pipeline.

Measured here (2 cores, 128 tokens): MiniLM-L6 converts in ~6 s to TFLite (90 MB, cosine 1.0000 to the
pipeline) and ~2 s to CoreML (86 MB); SmolLM2-135M in ~30 s to TFLite (540 MB, argmax agreement 100 %)
and ~4 s trace + ~14 s to CoreML (515 MB).

Not used: litert-torch's re-authored generative models (``litert_torch.generative``: a SmolLM example
and ``export_hf``, both with a KV cache) import TensorFlow, which the studio does not install.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError, UnsupportedError
from studio.model import ModelHandle, Task, task_noun
from studio.tasks import TaskContext

SENTENCES = ("A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "The stock market fell sharply this morning.")
PROMPT = ("The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid. "
          "Water boils at one hundred degrees Celsius at sea level, and it freezes at zero degrees. "
          "To deploy a language model on a phone, engineers convert it to a compact file, check that it "
          "still answers like the original, and measure how many tokens it produces per second.")
MIN_COSINE = 0.99  # encoder: every verification sentence, TFLite vs the PyTorch pipeline
MIN_AGREEMENT = 0.95  # decoder: share of prompt positions whose argmax matches the PyTorch model
LLAMA_TYPES = ("llama",)  # decoder layouts converted and verified here (SmolLM2 is a Llama)
MAX_WINDOW = 2048  # without a KV cache, a longer window re-reads too much per token to be useful
TFLITE_LIMIT = 2 * 1024**3  # a TFLite flatbuffer cannot exceed 2 GB
NO_KV_CACHE = ("no KV cache: every new token re-reads the whole window of seq_len tokens "
               "(export ONNX for the onnxruntime-genai folder, which carries the KV cache)")
_MASKED = -1e4  # additive mask value; finite, so an FP16 runtime does not produce inf - inf


def tflite_language(handle: ModelHandle, target: Path, ctx: TaskContext, seq_len: int = 128) -> dict[str, Any]:
    """Write ``handle`` as a TFLite file at ``target`` and verify it in ai_edge_litert's interpreter."""
    kind = _check(handle, seq_len, "TFLite")
    target = Path(target)
    if kind == "decoder":
        weights = _weight_bytes(handle.torch_module)
        if weights > TFLITE_LIMIT:
            raise UnsupportedError(f"{handle.name}'s FP32 weights are {weights / 1e9:.1f} GB, over TFLite's 2 GB "
                                   "flatbuffer limit", fix="export ONNX: the onnxruntime-genai folder carries the "
                                                           "KV cache and INT8/INT4 weights")
    ctx.progress(0.02, "checking the wrapped model against the PyTorch pipeline")
    module, sample, names, outputs = _wrapped(handle, kind, seq_len)
    wrapper_check = _check_torch(handle, kind, module, seq_len)
    ctx.check_cancelled()
    ctx.progress(0.1, "converting with litert-torch")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        produced = staging / target.name
        start = time.perf_counter()
        _litert_convert(module, dict(zip(names, sample, strict=True)), outputs[0], produced)
        convert_s = time.perf_counter() - start
        ctx.check_cancelled()
        ctx.progress(0.7, "writing the metadata and the tokenizer")
        metadata = _metadata(handle, kind, seq_len, names, outputs)
        bundled = _append_metadata(produced, metadata, handle)
        ctx.progress(0.75, "verifying in ai_edge_litert")
        verified = _verify_tflite(produced, handle, kind, seq_len, names, outputs[0])
        os.replace(produced, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.progress(1.0, "verified")
    return {"runtime": "ai_edge_litert interpreter", "converter": f"litert-torch {_version('litert-torch')}",
            "kind": kind, "seq_len": seq_len, "inputs": _io(names, sample), "outputs": _outputs(handle, kind, seq_len),
            "parity": verified, "wrapper_check": wrapper_check, "convert_seconds": round(convert_s, 1),
            "kv_cache": False if kind == "decoder" else None, "metadata": "metadata.json", "bundled_files": bundled,
            "usage": metadata["usage"], **({"note": NO_KV_CACHE} if kind == "decoder" else {})}


def coreml_language(handle: ModelHandle, target: Path, ctx: TaskContext, seq_len: int = 128) -> dict[str, Any]:
    """Write ``handle`` as a CoreML ``.mlpackage`` at ``target``; its spec is validated (macOS runs it)."""
    kind = _check(handle, seq_len, "CoreML")
    target = Path(target)
    ctx.progress(0.02, "checking the wrapped model against the PyTorch pipeline")
    module, sample, names, outputs = _wrapped(handle, kind, seq_len)
    ctx.check_cancelled()
    ctx.progress(0.05, "tracing the PyTorch model")
    import torch

    start = time.perf_counter()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes: the window is fixed by design
        traced = torch.jit.trace(module, sample, check_trace=False, strict=False)
    trace_s = time.perf_counter() - start
    traced_check = _check_torch(handle, kind, traced, seq_len)  # the graph coremltools reads, on real inputs
    ctx.check_cancelled()
    ctx.progress(0.35, "converting with coremltools")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        package = staging / target.name
        import coremltools as ct

        start = time.perf_counter()
        try:
            converted = ct.convert(traced, inputs=[ct.TensorType(name=n, shape=tuple(s.shape), dtype=np.int32)
                                                   for n, s in zip(names, sample, strict=True)],
                                   outputs=[ct.TensorType(name=outputs[0])], convert_to="mlprogram",
                                   compute_precision=ct.precision.FLOAT32)
        except Exception as exc:  # the converter's own error (an op it lacks), in one line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UnsupportedError(f"coremltools could not convert this model: {type(exc).__name__}: {first}",
                                   fix="export ONNX instead") from exc
        convert_s = time.perf_counter() - start
        metadata = _metadata(handle, kind, seq_len, names, outputs)
        converted.user_defined_metadata.update(_flat(metadata))
        ctx.check_cancelled()
        ctx.progress(0.85, "saving and validating the spec")
        converted.save(str(package))
        del converted
        spec = _validate_coreml(package, handle, kind, seq_len, names, outputs[0])
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(package, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.progress(1.0, "spec validated")
    return {"runtime": "coremltools spec validation (running a CoreML model needs macOS)",
            "converter": f"coremltools {_version('coremltools')}", "kind": kind, "seq_len": seq_len,
            "inputs": _io(names, sample), "outputs": _outputs(handle, kind, seq_len),
            "parity": None, "numerical_check": "not possible on Linux: CoreML predictions need macOS; the traced "
                                               "graph given to coremltools was checked instead (traced_check)",
            "traced_check": traced_check, "spec": spec, "trace_seconds": round(trace_s, 1),
            "convert_seconds": round(convert_s, 1),
            "kv_cache": False if kind == "decoder" else None, "usage": metadata["usage"],
            **({"note": NO_KV_CACHE} if kind == "decoder" else {})}


# --- what can be converted: every refusal comes before any work ---------------------------------------------


def _check(handle: ModelHandle, seq_len: int, fmt: str) -> str:
    """'encoder' or 'decoder', or an UnsupportedError naming why ``handle`` cannot become ``fmt``."""
    runtime = handle.metadata.get("lm_runtime", "torch")
    if handle.task not in (Task.EMBED, Task.GENERATE):
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
    if handle.task == Task.EMBED:
        modules = list(handle.torch_module) if hasattr(handle.torch_module, "__iter__") else []
        transformer = getattr(modules[0], "auto_model", None) if modules else None
        if transformer is None:
            raise UnsupportedError(f"{handle.name} is not a sentence-transformers pipeline over a Hugging Face "
                                   "transformer", fix="export it to ONNX")
        pooling = _pooling(handle)
        if pooling not in ("mean", "cls"):
            raise UnsupportedError(f"{handle.name}: pooling '{pooling}' is not built into the {fmt} graph",
                                   fix="export it to ONNX (pooling applied by the caller)")
        limit = int(getattr(transformer.config, "max_position_embeddings", 0) or 0)
        if limit and seq_len > limit:
            raise UnsupportedError(f"a window of {seq_len} tokens exceeds {handle.name}'s {limit} positions",
                                   fix=f"choose seq_len of {limit} or less")
        _float32(handle, fmt)
        return "encoder"
    config = getattr(handle.torch_module, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in LLAMA_TYPES or not type(handle.torch_module).__name__.endswith("ForCausalLM"):
        raise UnsupportedError(f"{fmt} export of causal LMs is built and verified for the Llama layout; "
                               f"{handle.name} is '{model_type or type(handle.torch_module).__name__}'",
                               fix="export ONNX: the onnxruntime-genai folder carries the KV cache")
    context = int(handle.metadata.get("context_length") or getattr(config, "max_position_embeddings", 0) or 0)
    limit = min(context, MAX_WINDOW) if context else MAX_WINDOW
    if seq_len > limit:
        raise UnsupportedError(f"a window of {seq_len} tokens is over {limit} (without a KV cache every token "
                               "re-reads the window)", fix="choose a shorter seq_len, or export ONNX: the "
                                                           "onnxruntime-genai folder carries the KV cache")
    _float32(handle, fmt)
    return "decoder"


def _float32(handle: ModelHandle, fmt: str) -> None:
    import torch

    dtypes = {p.dtype for p in handle.torch_module.parameters()}
    if dtypes - {torch.float32}:
        raise UnsupportedError(f"{handle.name} has {', '.join(sorted(str(d) for d in dtypes))} weights; the {fmt} "
                               "export starts from FP32", fix=f"export the FP32 model to {fmt}")


def _pooling(handle: ModelHandle) -> str:
    pooling = next((m for m in handle.torch_module if type(m).__name__ == "Pooling"), None)
    return pooling.get_config_dict().get("pooling_mode", "mean") if pooling is not None else "mean"


def _normalize(handle: ModelHandle) -> bool:
    return any(type(m).__name__ == "Normalize" for m in handle.torch_module)


def _weight_bytes(module: Any) -> int:
    return int(sum(p.numel() * p.element_size() for p in module.parameters()))


# --- the wrapped modules -------------------------------------------------------------------------------------


def _wrapped(handle: ModelHandle, kind: str, seq_len: int) -> tuple[Any, tuple, list[str], list[str]]:
    """(module, int32 sample inputs, input names, output names) of the fixed-window graph."""
    import inspect

    import torch

    class SentenceEncoder(torch.nn.Module):
        """The transformer, its pooling and normalisation; a 4-D additive mask, so transformers' mask
        helpers (ops coremltools lacks, such as new_ones) stay out of the graph."""

        def __init__(self, transformer: torch.nn.Module, pooling: str, normalize: bool):
            super().__init__()
            self.transformer, self.pooling, self.normalize = transformer, pooling, normalize
            self.token_types = "token_type_ids" in inspect.signature(transformer.forward).parameters

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask.to(torch.float32)
            length = input_ids.shape[1]
            additive = ((1.0 - mask) * _MASKED)[:, None, None, :].expand(-1, 1, length, -1)
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
            hidden = self.transformer(input_ids=input_ids, attention_mask=additive, **extra).last_hidden_state
            if self.pooling == "cls":
                vectors = hidden[:, 0]
            else:
                vectors = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return torch.nn.functional.normalize(vectors, p=2, dim=1) if self.normalize else vectors

    class FixedWindowLM(torch.nn.Module):
        """Logits at every position of a fixed window: a constant causal mask and positions, no cache
        (transformers' own mask helpers use ops coremltools lacks, such as diff)."""

        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model
            causal = torch.triu(torch.full((seq_len, seq_len), _MASKED), diagonal=1)[None, None]
            self.register_buffer("causal", causal, persistent=False)
            self.register_buffer("positions", torch.arange(seq_len)[None], persistent=False)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=self.causal, position_ids=self.positions,
                              use_cache=False).logits

    if kind == "encoder":
        module = SentenceEncoder(handle.torch_module[0].auto_model, _pooling(handle), _normalize(handle))
        sample = (torch.zeros((1, seq_len), dtype=torch.int32), torch.ones((1, seq_len), dtype=torch.int32))
        return module.eval(), sample, ["input_ids", "attention_mask"], ["embedding"]
    sample = (torch.zeros((1, seq_len), dtype=torch.int32),)
    return FixedWindowLM(handle.torch_module).eval(), sample, ["input_ids"], ["logits"]


# --- references and checks -----------------------------------------------------------------------------------


def _encoder_feeds(handle: ModelHandle, seq_len: int) -> list[dict[str, np.ndarray]]:
    feeds = []
    for sentence in SENTENCES:
        batch = handle.tokenizer(sentence, padding="max_length", truncation=True, max_length=seq_len,
                                 return_tensors="np")
        feeds.append({"input_ids": batch["input_ids"].astype(np.int32),
                      "attention_mask": batch["attention_mask"].astype(np.int32)})
    return feeds


def _pipeline_embeddings(handle: ModelHandle) -> np.ndarray:
    return np.asarray(handle.torch_module.encode(list(SENTENCES), convert_to_numpy=True), dtype=np.float32)


def _prompt(handle: ModelHandle, seq_len: int) -> tuple[np.ndarray, int]:
    """The fixed prompt's ids (at most ``seq_len``), right-padded to ``seq_len``, and its length."""
    tokenizer = handle.tokenizer
    ids = tokenizer(PROMPT)["input_ids"][:seq_len]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    window = np.full((1, seq_len), pad, dtype=np.int32)
    window[0, :len(ids)] = ids
    return window, len(ids)


def _reference_argmax(handle: ModelHandle, window: np.ndarray, length: int) -> np.ndarray:
    """The PyTorch model's own forward (its own masks, no padding) on the prompt."""
    import torch

    with torch.inference_mode():
        logits = handle.torch_module(input_ids=torch.from_numpy(window[:, :length].astype(np.int64)),
                                     use_cache=False).logits
    return logits[0].argmax(-1).numpy()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def _check_torch(handle: ModelHandle, kind: str, module: Any, seq_len: int) -> dict[str, Any]:
    """The wrapped (or traced) module on the verification inputs against the untouched pipeline.

    Fails fast, before any conversion, when the wrapper does not reproduce the pipeline.
    """
    import torch

    with torch.inference_mode():
        if kind == "encoder":
            ours = np.concatenate([module(*(torch.from_numpy(f[n]) for n in ("input_ids", "attention_mask"))).numpy()
                                   for f in _encoder_feeds(handle, seq_len)])
            worst = float(_cosines(ours, _pipeline_embeddings(handle)).min())
            ok, result = worst >= MIN_COSINE, {"min_cosine": round(worst, 6), "sentences": len(SENTENCES)}
        else:
            window, length = _prompt(handle, seq_len)
            ours = module(torch.from_numpy(window))[0, :length].argmax(-1).numpy()
            share = float((ours == _reference_argmax(handle, window, length)).mean())
            ok, result = share >= MIN_AGREEMENT, {"argmax_agreement": round(share, 4), "positions": length}
    if not ok:
        raise StudioError(f"the fixed-window graph of {handle.name} does not reproduce the PyTorch model ({result})",
                          fix="export ONNX instead")
    return result


# --- TFLite --------------------------------------------------------------------------------------------------


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


def _litert_convert(module: Any, sample: dict[str, Any], output: str, path: Path) -> None:
    import torch

    class Named(torch.nn.Module):  # keyword inputs and a dict output name the signature's tensors
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
            args = (input_ids,) if attention_mask is None else (input_ids, attention_mask)
            return {output: self.inner(*args)}

    with _quiet():
        import litert_torch

        try:
            converted = litert_torch.convert(Named(module).eval(), sample_kwargs=sample)
        except Exception as exc:  # the converter's own error, in one line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UnsupportedError(f"litert-torch could not convert this model: {type(exc).__name__}: {first}",
                                   fix="export ONNX instead") from exc
        converted.export(str(path))


def _append_metadata(path: Path, metadata: dict[str, Any], handle: ModelHandle) -> list[str]:
    """metadata.json and the tokenizer's files as a zip after the flatbuffer (tflite_export's convention)."""
    import zipfile

    folder = path.parent / "tokenizer"
    try:
        handle.tokenizer.save_pretrained(str(folder))
        files = sorted(p for p in folder.iterdir() if p.is_file())
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata, indent=2))
            for file in files:
                archive.write(file, f"tokenizer/{file.name}")
        return ["metadata.json", *(f"tokenizer/{f.name}" for f in files)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _verify_tflite(path: Path, handle: ModelHandle, kind: str, seq_len: int, names: list[str],
                   output: str) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    runner = interpreter.get_signature_runner()
    declared = runner.get_input_details()
    wrong = [n for n in names if n not in declared or tuple(declared[n]["shape"]) != (1, seq_len)]
    if wrong:
        raise StudioError(f"the converted TFLite file's inputs are {sorted(declared)}, not {names} of "
                          f"(1, {seq_len})", fix="export ONNX instead")
    if kind == "encoder":
        start = time.perf_counter()
        ours = np.concatenate([runner(**{n: f[n].astype(declared[n]["dtype"]) for n in names})[output]
                               for f in _encoder_feeds(handle, seq_len)])
        ms = (time.perf_counter() - start) * 1e3 / len(SENTENCES)
        cosines = _cosines(ours.astype(np.float32), _pipeline_embeddings(handle))
        worst = float(cosines.min())
        result = {"metric": "cosine to the sentence-transformers pipeline (PyTorch)", "min_cosine": round(worst, 6),
                  "cosines": [round(float(c), 6) for c in cosines], "sentences": len(SENTENCES),
                  "norms": [round(float(n), 4) for n in np.linalg.norm(ours, axis=1)], "ms_per_sentence": round(ms, 1),
                  "passed": worst >= MIN_COSINE, "threshold": MIN_COSINE}
    else:
        window, length = _prompt(handle, seq_len)
        start = time.perf_counter()
        logits = runner(input_ids=window.astype(declared["input_ids"]["dtype"]))[output]
        ms = (time.perf_counter() - start) * 1e3
        share = float((logits[0, :length].argmax(-1) == _reference_argmax(handle, window, length)).mean())
        result = {"metric": "argmax of the logits at each prompt position vs the PyTorch model",
                  "argmax_agreement": round(share, 4), "positions": length, "ms_per_window": round(ms, 1),
                  "passed": share >= MIN_AGREEMENT, "threshold": MIN_AGREEMENT}
    if not result["passed"]:
        raise StudioError(f"the TFLite file does not reproduce {handle.name}: {result['metric']} "
                          f"{result.get('min_cosine', result.get('argmax_agreement'))}",
                          fix="export ONNX instead")
    return result


# --- CoreML --------------------------------------------------------------------------------------------------


def _validate_coreml(package: Path, handle: ModelHandle, kind: str, seq_len: int, names: list[str],
                     output: str) -> dict[str, Any]:
    """The saved package's spec: an mlProgram with the expected inputs, output, metadata and weights."""
    import coremltools as ct

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()

    def described(feature) -> dict[str, Any]:
        array = feature.type.multiArrayType
        return {"name": feature.name, "shape": list(array.shape),
                "dtype": ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)}

    inputs = [described(i) for i in spec.description.input]
    outputs = [described(o) for o in spec.description.output]
    expected_out = [1, _embedding_size(handle)] if kind == "encoder" else [1, seq_len, _vocab(handle)]
    problems = []
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append(f"the model is a {spec.WhichOneof('Type')}, not an mlProgram")
    if [(i["name"], i["shape"], i["dtype"]) for i in inputs] != [(n, [1, seq_len], "INT32") for n in names]:
        problems.append(f"inputs are {inputs}, expected {names} of INT32 (1, {seq_len})")
    if [(o["name"], o["shape"]) for o in outputs] != [(output, expected_out)]:
        problems.append(f"outputs are {outputs}, expected {output} {expected_out}")
    metadata = dict(spec.description.metadata.userDefined)
    missing = [k for k in ("tokenizer", "seq_len", "deploy_studio.source_sha256") if k not in metadata]
    if missing:
        problems.append(f"metadata lacks {', '.join(missing)}")
    weights = sum(f.stat().st_size for f in package.rglob("weight.bin"))
    if weights < _weight_bytes(handle.torch_module) // 2:
        problems.append(f"the weight file holds {weights} bytes, less than the model's FP32 weights")
    if problems:
        raise StudioError(f"the CoreML package fails validation: {'; '.join(problems)}", fix="export ONNX instead")
    functions = spec.mlProgram.functions
    ops = sum(len(block.operations) for f in functions.values() for block in f.block_specializations.values())
    return {"type": "mlProgram", "spec_version": spec.specificationVersion, "inputs": inputs, "outputs": outputs,
            "metadata_keys": sorted(metadata), "ops": ops, "weight_bytes": weights, "problems": []}


# --- metadata ------------------------------------------------------------------------------------------------


def _embedding_size(handle: ModelHandle) -> int:
    module = handle.torch_module
    size = getattr(module, "get_embedding_dimension", None) or module.get_sentence_embedding_dimension
    return int(size())


def _vocab(handle: ModelHandle) -> int:
    return int(handle.torch_module.get_output_embeddings().weight.shape[0])


def _io(names: list[str], sample: tuple) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(s.shape), "dtype": "int32"} for n, s in zip(names, sample, strict=True)]


def _outputs(handle: ModelHandle, kind: str, seq_len: int) -> list[dict[str, Any]]:
    if kind == "encoder":
        return [{"name": "embedding", "shape": [1, _embedding_size(handle)], "dtype": "float32"}]
    return [{"name": "logits", "shape": [1, seq_len, _vocab(handle)], "dtype": "float32"}]


def _metadata(handle: ModelHandle, kind: str, seq_len: int, names: list[str], outputs: list[str]) -> dict[str, Any]:
    from studio import __version__

    tokenizer = handle.tokenizer
    meta: dict[str, Any] = {
        "author": "Deploy Studio",
        "description": f"{handle.display_name} exported by Deploy Studio {__version__}",
        "task": str(handle.task),
        "tokenizer": f"{handle.provenance.zoo_name or handle.name} ({type(tokenizer).__name__})",
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "seq_len": seq_len,
        "batch": 1,
        "inputs": names,
        "outputs": outputs,
        "deploy_studio.version": __version__,
        "deploy_studio.source_sha256": handle.metadata.get("parent_sha256") or handle.provenance.sha256,
        "deploy_studio.recipe": handle.metadata.get("recipe", ""),
    }
    if kind == "encoder":
        meta |= {"pooling": _pooling(handle), "normalize": "l2" if _normalize(handle) else "none",
                 "embedding_size": _embedding_size(handle),
                 "usage": f"tokenize one sentence, right-pad to {seq_len} tokens (attention_mask 1 for tokens, "
                          f"0 for padding; truncate longer text); the output is the sentence embedding, "
                          f"{_pooling(handle)}-pooled{' and L2-normalised' if _normalize(handle) else ''}"}
    else:
        meta |= {"kv_cache": "none", "eos_token_id": tokenizer.eos_token_id,
                 "usage": f"right-pad the prompt's ids to {seq_len} with any token; the next token is the argmax "
                          f"(or a sample) of logits[0, len(prompt) - 1]; append it and run the window again "
                          f"(no KV cache: every token re-reads the window)"}
    return meta


def _flat(metadata: dict[str, Any]) -> dict[str, str]:
    """CoreML's user-defined metadata holds strings only."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
