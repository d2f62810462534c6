"""onnxruntime-genai on the shipped SmolLM2: built by its own builder, checked against the torch model."""

from __future__ import annotations

import onnx
import pytest

from studio.lm.generate import GenerationSettings, generate
from studio.tasks import Cancelled, TaskContext

PROMPT = "What is the capital of France?"


def test_fp32_onnxruntime_generates_the_same_greedy_tokens_as_torch(smollm):
    from studio.lm.genai import GenaiGenerator, build

    folder = build(smollm, "fp32")
    assert (folder / "genai_config.json").is_file()
    settings = GenerationSettings(max_new_tokens=12, threads=2)
    reference = generate(smollm, PROMPT, settings)
    onnx_result = GenaiGenerator(smollm, folder, threads=2).generate(PROMPT, settings)
    assert onnx_result.new_tokens == reference.new_tokens  # same weights, same greedy path
    assert "Paris" in onnx_result.text and "onnxruntime-genai" in onnx_result.method
    assert build(smollm, "fp32") == folder  # cached: the second call builds nothing


def test_int4_is_weight_only_quantised_and_much_smaller(smollm):
    from studio.lm.genai import GenaiGenerator, build

    fp32, int4 = build(smollm, "fp32"), build(smollm, "int4")
    sizes = [sum(f.stat().st_size for f in folder.glob("*.onnx*")) for folder in (fp32, int4)]
    assert sizes[1] < 0.25 * sizes[0]  # 519 MB → 86 MB measured
    graph = onnx.load(str(next(int4.glob("*.onnx"))), load_external_data=False)
    assert any(node.op_type == "MatMulNBits" for node in graph.graph.node)
    result = GenaiGenerator(smollm, int4, threads=2).generate(PROMPT, GenerationSettings(max_new_tokens=8))
    assert "Paris" in result.text and len(result.new_tokens) == 8 and result.decode_tokens_per_s > 0


def test_cancelling_the_builder_leaves_no_model(smollm):
    from studio.lm.genai import build, genai_folder

    ctx = TaskContext()
    ctx.on_progress = lambda fraction, text: ctx.cancel() if "genai builder" in text else None  # builder running
    extra = {"int4_block_size": "64"}  # a variant not built by the other tests
    with pytest.raises(Cancelled):
        build(smollm, "int4", ctx, extra=extra)
    target = genai_folder(smollm, "int4", extra)
    assert not target.exists() and not list(target.parent.glob(f".{target.name}.*"))


def test_teacher_forced_agreement_is_exact_for_fp32_and_measured_for_int4(smollm):
    from studio.lm.agreement import PROMPTS, agreement, argmax_of, reference_continuations
    from studio.lm.genai import build
    from studio.lm.runners import token_logits
    from studio.lm.variants import genai_variant

    pairs = reference_continuations(smollm, PROMPTS[:3], tokens=8)
    assert agreement(argmax_of(token_logits(smollm)), pairs)["agreement"] == 1.0
    fp32 = genai_variant(smollm, build(smollm, "fp32"), precision="fp32", note="test")
    assert agreement(argmax_of(token_logits(fp32)), pairs)["agreement"] >= 0.95
    int4 = genai_variant(smollm, build(smollm, "int4"), precision="int4", note="test")
    result = agreement(argmax_of(token_logits(int4)), pairs)
    assert 0.3 <= result["agreement"] <= 1.0 and result["tokens"] == sum(len(c) for _, c in pairs)


def test_a_builder_failure_names_the_exception_not_the_bundle_trailer():
    from studio.lm.genai import builder_failure

    log = ("Traceback (most recent call last):\n  File \"x.py\", line 5, in <module>\n"
           "ModuleNotFoundError: No module named 'fusion_utils'\n"
           "[PYI-22294:ERROR] Failed to execute script 'deploy_studio_entry' due to unhandled exception!\n")
    assert builder_failure(log) == "ModuleNotFoundError: No module named 'fusion_utils'"
    assert builder_failure("") == "no output"
