"""Language models to TFLite and CoreML on their real weights: re-opened by an independent runtime
(ai_edge_litert) or spec-validated (coremltools on Linux), and the refusals, which must be quick."""

from __future__ import annotations

import json
import re
import time
import zipfile

import numpy as np
import pytest

from studio.errors import UnsupportedError
from studio.tasks import TaskContext

SEQ = 128


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_to_tflite_gives_the_pipelines_sentence_embeddings(minilm, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    from tokenizers import Tokenizer

    from studio.lm.mobile import tflite_language

    seen: list[float] = []
    target = tmp_path / "minilm-l6.tflite"
    details = tflite_language(minilm, target, TaskContext(on_progress=lambda f, _: seen.append(f)))
    assert target.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["minilm-l6.tflite"]  # no leftovers
    assert details["parity"]["passed"] and details["parity"]["min_cosine"] >= 0.99  # 1.000000 measured
    assert details["inputs"] == [{"name": "input_ids", "shape": [1, SEQ], "dtype": "int32"},
                                 {"name": "attention_mask", "shape": [1, SEQ], "dtype": "int32"}]
    assert details["outputs"] == [{"name": "embedding", "shape": [1, 384], "dtype": "float32"}]
    assert seen == sorted(seen) and seen[-1] == 1.0

    # What an app does: the tokenizer and metadata from the file itself, the embedding from the graph.
    with zipfile.ZipFile(target) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        tokenizer = Tokenizer.from_str(archive.read("tokenizer/tokenizer.json").decode())
    assert (metadata["seq_len"], metadata["pooling"], metadata["normalize"]) == (SEQ, "mean", "l2")
    assert "minilm-l6" in metadata["tokenizer"] and metadata["inputs"] == ["input_ids", "attention_mask"]
    tokenizer.enable_truncation(SEQ)
    tokenizer.enable_padding(length=SEQ, pad_id=metadata["pad_token_id"])
    runner = Interpreter(model_path=str(target), num_threads=2).get_signature_runner()
    sentences = ["Deploying models on phones needs small files.", "A cheetah chases its prey across the plain.",
                 "Interest rates rose again this quarter.", "Two dogs play in the snow."]
    reference = minilm.torch_module.encode(sentences, convert_to_numpy=True)
    for sentence, expected in zip(sentences, reference, strict=True):
        encoded = tokenizer.encode(sentence)
        vector = runner(input_ids=np.array([encoded.ids], np.int32),
                        attention_mask=np.array([encoded.attention_mask], np.int32))["embedding"][0]
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4  # normalised inside the graph
        assert _cosine(vector, expected) >= 0.99


def test_minilm_to_coreml_is_a_valid_mlprogram_with_named_io(minilm, tmp_path):
    import coremltools as ct

    from studio.lm.mobile import coreml_language

    target = tmp_path / "minilm-l6.mlpackage"
    details = coreml_language(minilm, target, TaskContext())
    assert target.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["minilm-l6.mlpackage"]
    assert details["parity"] is None and "macOS" in details["numerical_check"]
    assert details["traced_check"]["min_cosine"] >= 0.99  # the graph coremltools converted, run in PyTorch

    spec = ct.models.MLModel(str(target), skip_model_load=True).get_spec()  # re-opened independently
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [(i.name, list(i.type.multiArrayType.shape)) for i in spec.description.input] == [
        ("input_ids", [1, SEQ]), ("attention_mask", [1, SEQ])]
    assert [(o.name, list(o.type.multiArrayType.shape)) for o in spec.description.output] == [("embedding", [1, 384])]
    metadata = dict(spec.description.metadata.userDefined)
    assert (metadata["seq_len"], metadata["pooling"], metadata["normalize"]) == (str(SEQ), "mean", "l2")
    assert metadata["tokenizer"].startswith("minilm-l6") and metadata["deploy_studio.source_sha256"]


@pytest.mark.slow
def test_smollm_to_tflite_predicts_the_same_next_tokens(smollm, tmp_path):
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from studio.lm.mobile import tflite_language

    target = tmp_path / "smollm2-135m.tflite"
    details = tflite_language(smollm, target, TaskContext())  # ~35 s on 2 cores
    assert details["parity"]["argmax_agreement"] >= 0.95  # 1.0 over 75 positions measured
    assert details["kv_cache"] is False and "re-reads the whole window" in details["note"]
    assert details["outputs"] == [{"name": "logits", "shape": [1, SEQ, 49152], "dtype": "float32"}]

    # An independent prompt, right-padded as the usage says; the next token at its last position.
    ids = smollm.tokenizer("The capital of France is Paris. The capital of Germany is")["input_ids"]
    window = np.full((1, SEQ), smollm.tokenizer.eos_token_id, np.int32)
    window[0, :len(ids)] = ids
    logits = Interpreter(model_path=str(target), num_threads=2).get_signature_runner()(input_ids=window)["logits"]
    with torch.inference_mode():
        expected = smollm.torch_module(input_ids=torch.tensor([ids]), use_cache=False).logits[0].argmax(-1).numpy()
    assert (logits[0, :len(ids)].argmax(-1) == expected).mean() >= 0.95
    assert smollm.tokenizer.decode(int(logits[0, len(ids) - 1].argmax())).strip() == "Berlin"


@pytest.mark.slow
def test_smollm_to_coreml_is_a_valid_mlprogram(smollm, tmp_path):
    from studio.lm.mobile import coreml_language

    target = tmp_path / "smollm2-135m.mlpackage"
    details = coreml_language(smollm, target, TaskContext())  # ~20 s on 2 cores
    assert details["traced_check"]["argmax_agreement"] >= 0.95 and details["kv_cache"] is False
    assert [(o["name"], o["shape"]) for o in details["spec"]["outputs"]] == [("logits", [1, SEQ, 49152])]
    assert details["spec"]["weight_bytes"] > 500e6  # FP32 weights, not a stub


def _early_exit(smollm):
    from plugins.early_exit.lm_decoding import LmEarlyExit, LmExitSettings

    return LmEarlyExit().apply(smollm, LmExitSettings(), TaskContext())


@pytest.mark.parametrize("fmt", ["tflite", "coreml"])
@pytest.mark.parametrize(("model", "variant", "seq_len", "message"), [
    ("smollm", _early_exit, 128, "is an early-exit variant: it decides per token at run time"),
    ("smollm", None, 4096, "a window of 4096 tokens is over 2048 (without a KV cache"),
    ("minilm", None, 1024, "a window of 1024 tokens exceeds minilm-l6's 512 positions"),
], ids=["early-exit", "smollm-window", "minilm-window"])
def test_refusals_are_immediate_and_write_nothing(request, tmp_path, fmt, model, variant, seq_len, message):
    from studio.lm import mobile as mobile_export

    handle = request.getfixturevalue(model)
    handle = variant(handle) if variant else handle
    convert = mobile_export.tflite_language if fmt == "tflite" else mobile_export.coreml_language
    target = tmp_path / f"out.{fmt}"
    start = time.perf_counter()
    with pytest.raises(UnsupportedError, match=re.escape(message)) as caught:
        convert(handle, target, TaskContext(), seq_len=seq_len)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(caught.value) and caught.value.fix  # one line, with the fix
    assert list(tmp_path.iterdir()) == []


def test_run_export_sends_a_language_model_through_the_exporter_plugins(tmp_path):
    from studio.export import run_export

    report = run_export("zoo:minilm-l6", ["tflite", "coreml"], tmp_path)  # one pipeline for every model kind
    by_format = {item["format"]: item for item in report["exports"]}
    assert by_format["tflite"]["path"] == str(tmp_path / "minilm-l6.tflite") and by_format["tflite"]["parity"]["passed"]
    assert by_format["coreml"]["path"] == str(tmp_path / "minilm-l6.mlpackage")
    assert all(item["size_mb"] > 50 and item["export_seconds"] > 0 for item in by_format.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minilm-l6.mlpackage", "minilm-l6.tflite"]  # no staging
