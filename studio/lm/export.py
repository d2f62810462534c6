"""The ONNX export of language models (the ONNX exporter plugin's language row): a folder, re-opened and checked
by plain onnxruntime. INT8/INT4 weights are made before, by the quantizer the capability table names.

A causal LM becomes onnxruntime-genai's folder (decoder graph with the KV cache as inputs/outputs,
``genai_config.json``, tokenizer). It is verified without onnxruntime-genai: a plain
``onnxruntime.InferenceSession`` reads a prompt with an empty cache, then decodes one token from the
returned cache, and that step must give the logits of re-reading the whole sequence (the cache is
right), and the FP32 reference model's next tokens (the weights are right; for INT8/INT4 the share of
positions that agree is reported). A sentence encoder becomes its graph + tokenizer + pooling manifest,
verified by cosine to the PyTorch pipeline on fixed sentences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError, UnsupportedError
from studio.lm.variants import lm_runtime
from studio.model import ModelHandle, Task
from studio.tasks import TaskContext
from studio.vectors import row_cosines

PROMPT = "The capital of France is Paris. The capital of Italy is"
SENTENCES = ("A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "The stock market fell sharply this morning.")


def onnx_ready(model: ModelHandle, ctx: TaskContext) -> ModelHandle:
    """``model`` as an onnxruntime variant: as it is when it already is one (its weights at whatever precision
    its quantizer made), else the FP32 graph of the float PyTorch model."""
    runtime = lm_runtime(model)
    if runtime in ("genai", "ort_encoder"):
        return model
    if runtime != "torch" or model.metadata.get("parent"):
        from studio.capabilities import providers
        from studio.plugin_api import LANGUAGE

        quantizers = ", ".join(p.id for p in providers("int8", LANGUAGE)) or "a language-model quantizer"
        raise UnsupportedError(f"{model.name} is a PyTorch-only variant ({runtime}: the onnxruntime-genai builder "
                               "reads standard architectures and full depth)",
                               fix=f"export the base model, or an INT8/INT4 variant ({quantizers})")
    if model.task == Task.EMBED:
        from studio.lm.encoder_onnx import encoder_onnx, pipeline_settings
        from studio.lm.variants import encoder_variant

        pooling, normalize, max_length = pipeline_settings(model)
        return encoder_variant(model, encoder_onnx(model, "fp32"), precision="fp32", pooling=pooling,
                               normalize=normalize, max_length=max_length, note="exported by the studio")
    from studio.lm.genai import build
    from studio.lm.variants import genai_variant

    return genai_variant(model, build(model, "fp32", ctx), precision="fp32", note="onnxruntime-genai builder, fp32")


def export_onnx_folder(variant: ModelHandle, reference: ModelHandle, target: Path, ctx: TaskContext) -> dict[str, Any]:
    """Write ``variant``'s ONNX folder at ``target`` and verify it against ``reference`` (the FP32 model)."""
    from studio.lm.publish import write_language_model

    ctx.progress(0.6, "writing the ONNX folder")
    if not write_language_model(variant, target):
        raise UnsupportedError(f"{variant.name} has no ONNX form to write")
    ctx.progress(0.75, "re-opening it in onnxruntime")
    verify = verify_encoder if variant.task == Task.EMBED else verify_decoder
    verified = verify(target, reference)
    files = sorted(p.name for p in target.iterdir())
    return {"files": files, "precision_of_weights": variant.metadata.get("precision", "fp32"), "verified": verified}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_decoder(folder: Path, reference: ModelHandle) -> dict[str, Any]:
    import onnxruntime as ort

    from studio.loaders.language import genai_precision

    decoder = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
    graph = folder / decoder.get("filename", "model.onnx")
    precision = genai_precision(graph)
    session = _session(graph)
    names = [i.name for i in session.get_inputs()]
    kv_inputs = [n for n in names if n.startswith("past_key_values")]
    kv_shape = (1, int(decoder["num_key_value_heads"]), 0, int(decoder["head_size"]))
    ids = [int(t) for t in reference.tokenizer(PROMPT)["input_ids"]]

    def run(tokens: list[int], total: int, past: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        feeds: dict[str, np.ndarray] = {"input_ids": np.asarray([tokens], np.int64)}
        if "attention_mask" in names:
            feeds["attention_mask"] = np.ones((1, total), np.int64)
        if "position_ids" in names:
            feeds["position_ids"] = np.arange(total - len(tokens), total, dtype=np.int64)[None]
        feeds |= past
        outputs = session.run(None, feeds)
        out_names = [o.name for o in session.get_outputs()]
        presents = {n.replace("present", "past_key_values"): v for n, v in zip(out_names, outputs, strict=True)
                    if n.startswith("present")}
        return outputs[out_names.index("logits")][0], presents

    empty = {n: np.zeros(kv_shape, np.float32) for n in kv_inputs}
    prefill, cache = run(ids, len(ids), empty)
    step_token = int(prefill[-1].argmax())
    stepped, _ = run([step_token], len(ids) + 1, cache)
    reread, _ = run([*ids, step_token], len(ids) + 1, empty)
    cache_error = float(np.abs(stepped[-1] - reread[-1]).max())
    scale = float(np.abs(reread[-1]).max()) or 1.0
    # FP32 must match to rounding; with INT8/INT4 weights the kernels quantize a one-token step and a
    # whole sequence's activations in different blocks, so only the chosen token and a loose bound hold.
    tolerance = (1e-3 if precision == "fp32" else 0.1) * scale
    if cache_error > tolerance or int(stepped[-1].argmax()) != int(reread[-1].argmax()):
        raise StudioError(f"the exported decoder's KV cache disagrees with re-reading the sequence "
                          f"(max |Δlogit| {cache_error:.4g} of {scale:.3g})", path=graph,
                          fix="report this model; export at another precision meanwhile")
    result = {"runtime": f"onnxruntime {ort.__version__} InferenceSession (not onnxruntime-genai)",
              "weights": precision, "kv_cache_inputs": len(kv_inputs), "prompt_tokens": len(ids),
              "cache_step_vs_reread_max_abs": round(cache_error, 6), "logit_scale": round(scale, 3)}
    if reference.torch_module is not None:
        import torch

        with torch.inference_mode():
            expected = reference.torch_module(torch.tensor([[*ids, step_token]])).logits[0].numpy()
        got = np.concatenate([prefill, stepped])
        agree = float(np.mean(expected.argmax(-1) == got.argmax(-1)))
        result |= {"argmax_agreement_with_pytorch_fp32": round(agree, 4),
                   "max_abs_logit_diff_vs_pytorch": round(float(np.abs(expected - got).max()), 4)}
    result["method"] = (f"prompt {PROMPT!r}: prefill with an empty cache, one decode step from the returned cache "
                        "compared with re-reading the whole sequence; argmax at every position compared with the "
                        "PyTorch FP32 model")
    return result


def verify_encoder(folder: Path, reference: ModelHandle) -> dict[str, Any]:
    from studio.lm.embed import embed
    from studio.lm.encoder_onnx import OrtEncoder
    from studio.loaders.language import load_onnx_encoder

    reopened = load_onnx_encoder(folder)  # through the folder's own manifest and tokenizer, as a user would
    vectors = OrtEncoder(reopened, threads=2).encode(list(SENTENCES))
    result: dict[str, Any] = {"runtime": "onnxruntime InferenceSession on the exported folder (its manifest's "
                                         "pooling)", "sentences": len(SENTENCES)}
    if reference.torch_module is not None:
        expected = embed(reference, list(SENTENCES))
        result["min_cosine_vs_pytorch"] = round(float(row_cosines(vectors, expected).min()), 5)
    return result
