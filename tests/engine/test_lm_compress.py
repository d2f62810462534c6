"""Language-model compression as recipes on the real zoo weights: INT8/INT4 weights, low rank, early exit,
their measurements (agreement, perplexity, retrieval) and the files they publish, re-opened."""

from __future__ import annotations

import numpy as np
import pytest

from studio.lm.agreement import PROMPTS, agreement, argmax_of, reference_continuations
from studio.lm.generate import GenerationSettings
from studio.lm.runners import text_encoder, text_generator, token_logits
from studio.loaders import load_model
from studio.plugin_api import SettingsError, settings_from_dict
from studio.recipe import Recipe, Step
from studio.registry import default_registry
from studio.tasks import TaskContext
from tests.engine.cli_helpers import run_json

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]


def _apply(plugin_id: str, handle, **settings):
    plugin = default_registry().get(plugin_id)
    assert plugin.check(handle) == []
    return plugin.apply(handle, settings_from_dict(plugin, settings), TaskContext())


def test_encoder_int8_is_measured_published_and_reopens(minilm, tmp_path):
    from studio.optimize import optimize_model

    recipe = Recipe((Step("quantize.lm_weights", {"precision": "int8"}, 1),))
    report, variant = optimize_model(minilm, recipe, tmp_path / "out", threads=2, quick=True)
    assert report["fidelity"]["metric"] == "mean cosine" and report["fidelity"]["value"] >= 0.97
    assert report["retrieval"]["top1_agreement"] >= 0.9 and report["retrieval"]["reference_top1_correct"] >= 0.9
    assert report["variant"]["size_mb"] < 0.4 * report["baseline"]["size_mb"]
    assert report["baseline"]["latency_ms"]["p50"] > 0 and "interleaved" in report["method"]["latency"]
    reopened = load_model(tmp_path / "out" / "model")  # an exported encoder folder is a model the studio opens
    assert reopened.metadata["lm_runtime"] == "ort_encoder" and reopened.metadata["precision"] == "int8"
    again, made = text_encoder(reopened).encode(SENTENCES), text_encoder(variant).encode(SENTENCES)
    assert np.abs(again - made).max() < 1e-5
    reference = text_encoder(minilm).encode(SENTENCES)
    assert (again * reference).sum(1).min() > 0.97  # both unit length


def test_encoder_int4_uses_matmulnbits(minilm):
    import onnx

    variant = _apply("quantize.lm_weights", minilm, precision="int4", block_size=32)
    ops = {node.op_type for node in onnx.load(str(variant.onnx_path)).graph.node}
    assert "MatMulNBits" in ops
    vectors, reference = text_encoder(variant).encode(SENTENCES), text_encoder(minilm).encode(SENTENCES)
    assert (vectors * reference).sum(1).min() > 0.8


def test_decoder_int8_variant_in_a_session_reopens_with_the_same_tokens(smollm):
    from studio.session import Session, Variant

    session = Session("zoo:smollm2-135m", smollm, [Variant("base", Recipe(()), smollm)])
    variant = session.derive("base", "quantize.lm_weights", {"precision": "int8"}, TaskContext())
    row = variant.row()
    assert row["fidelity_metric"] == "token agreement" and row["fidelity"] >= 0.9
    assert row["p50_ms"] > 0 and row["speedup"] > 0 and session.rows()[0]["p50_ms"] > 0
    ppl = variant.report["perplexity"]
    assert 2 < ppl["baseline"] < 100 and abs(ppl["variant"] / ppl["baseline"] - 1) < 0.1
    assert "pydoc_data" in ppl["method"]
    settings = GenerationSettings(max_new_tokens=8, threads=2)
    made = text_generator(variant.handle).generate(PROMPTS[0], settings)
    reopened = load_model(variant.folder / "model")  # the published ONNX folder (KV cache inside)
    assert reopened.metadata["lm_runtime"] == "genai" and reopened.metadata["precision"] == "int8"
    assert text_generator(reopened).generate(PROMPTS[0], settings).new_tokens == made.new_tokens


def test_perplexity_rises_under_int4(smollm):
    from studio.lm.quality import perplexity, text_tokens

    tokens = text_tokens(smollm.tokenizer, 256)
    int4 = _apply("quantize.lm_weights", smollm, precision="int4")
    base, quantized = (perplexity(token_logits(h), tokens, 128)["perplexity"] for h in (smollm, int4))
    assert 2 < base < quantized  # 4-bit weights lose some of the model


def test_low_rank_factorises_only_block_projections(smollm):
    variant = _apply("lowrank.svd", smollm, mode="ratio", rank_ratio=0.5, targets="mlp")
    assert variant.params < smollm.params
    names = {name for name, module in variant.torch_module.named_modules() if type(module).__name__ == "Sequential"}
    assert names and all(".mlp." in name for name in names)
    assert type(smollm.torch_module.model.layers[0].mlp.up_proj).__name__ == "Linear"  # the base is untouched
    assert variant.torch_module.lm_head.weight.shape == smollm.torch_module.lm_head.weight.shape
    pairs = reference_continuations(smollm, PROMPTS[:2], tokens=8)
    result = agreement(argmax_of(token_logits(variant)), pairs)
    assert 0 <= result["agreement"] < 1.0  # half the rank of every MLP projection changes the model
    assert text_generator(variant).generate(PROMPTS[0], GenerationSettings(max_new_tokens=4)).new_tokens


def test_early_exit_that_never_exits_is_the_full_model(smollm):
    variant = _apply("early_exit.lm_decoding", smollm, threshold=0.9)
    never = variant.replace(metadata={**variant.metadata, "exit_threshold": "1.01"})  # no probability reaches it
    settings = GenerationSettings(max_new_tokens=12, threads=2)
    base = text_generator(smollm).generate(PROMPTS[0], settings)
    full = text_generator(never).generate(PROMPTS[0], settings)
    assert full.new_tokens == base.new_tokens and full.layers_used == 30.0
    pairs = reference_continuations(smollm, PROMPTS[:2], tokens=8)
    assert agreement(argmax_of(token_logits(never)), pairs)["agreement"] == 1.0  # layer loop + KV cache are exact


def test_early_exit_leaves_early_and_says_how_far_it_went(smollm):
    variant = _apply("early_exit.lm_decoding", smollm, threshold=0.3, exit_layers="10,20")
    result = text_generator(variant).generate(PROMPTS[1], GenerationSettings(max_new_tokens=16, threads=2))
    assert result.layers_used is not None and result.layers_used < 30
    assert "early exit" in result.method and "layers used" in result.method
    saturation = _apply("early_exit.lm_decoding", smollm, confidence="saturation", threshold=0.5, exit_layers="15")
    assert text_generator(saturation).generate(PROMPTS[1], GenerationSettings(max_new_tokens=8)).layers_used == 15


def test_early_exit_refuses_layers_the_model_does_not_have(smollm):
    plugin = default_registry().get("early_exit.lm_decoding")
    with pytest.raises(SettingsError, match="between 1 and 29"):
        plugin.apply(smollm, settings_from_dict(plugin, {"exit_layers": "12,40"}), TaskContext())


def test_vision_and_language_plugins_refuse_each_other(smollm, minilm, fall_handle):
    registry = default_registry()
    for plugin_id in ("quantize.static_int8", "quantize.dynamic_int8", "quantize.fp16", "prune.channels",
                      "prune.magnitude", "early_exit.classifier", "early_exit.video_cascade"):
        assert registry.get(plugin_id).check(smollm), plugin_id
    assert registry.get("quantize.lm_weights").check(fall_handle)
    assert registry.get("early_exit.lm_decoding").check(minilm)
    int8 = _apply("quantize.lm_weights", minilm, precision="int8")
    assert registry.get("quantize.lm_weights").check(int8)  # already on onnxruntime
    assert registry.get("lowrank.svd").check(int8)


def test_cli_generates_with_an_early_exit_recipe(tmp_path):
    recipe = tmp_path / "exit.toml"
    recipe.write_text('[[steps]]\nplugin = "early_exit.lm_decoding"\n[steps.settings]\nthreshold = 0.5\n'
                      'exit_layers = "15,20"\n')
    report = run_json("generate", "zoo:smollm2-135m", "List three fruits.", "--recipe", recipe,
                      "--max-new-tokens", "8")
    assert report["layers_used"] is not None and report["layers_used"] <= 30 and report["new_token_count"] > 0


def test_cli_optimize_writes_an_encoder_variant_with_its_report(tmp_path):
    recipe = tmp_path / "int4.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.lm_weights"\n[steps.settings]\nprecision = "int4"\n'
                      'block_size = 64\n')
    report = run_json("optimize", "zoo:minilm-l6", "--recipe", recipe, "-o", tmp_path / "out", "--threads", "2")
    assert report["fidelity"]["metric"] == "mean cosine" and 0.8 < report["fidelity"]["value"] <= 1.0
    assert report["retrieval"]["top1_agreement"] >= 0.75
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"model", "report.json", "recipe.toml"}
    assert load_model(tmp_path / "out" / "model").metadata["precision"] == "int4"
