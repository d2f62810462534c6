"""Language-model folders the zoo does not have, as a user would bring them: other architectures, saved
by transformers' own save_pretrained (random weights; the SmolLM2 and MiniLM tokenizers)."""

from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.export import run_export
from studio.lm.generate import GenerationSettings
from studio.lm.runners import text_generator
from studio.loaders import load_model
from studio.model import Task
from studio.report_text import export_text


@pytest.fixture(scope="module")
def foreign_folders(tmp_path_factory, smollm):
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from studio.lm.hf_folder import hf_folder
    from studio.zoo import entry

    tokenizer = AutoTokenizer.from_pretrained(str(hf_folder(smollm)), local_files_only=True)
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(0)
    models = {
        "tiny-qwen2": Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                   num_attention_heads=4, num_key_value_heads=2,
                                                   max_position_embeddings=256, tie_word_embeddings=True, **ids)),
        "tiny-gpt2": GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)),
    }
    root = tmp_path_factory.mktemp("foreign-lms")
    for name, model in models.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    # a bare BERT (no sentence-transformers modules.json): the encoder path pools by the mean
    wordpiece = AutoTokenizer.from_pretrained(str(entry("minilm-l6").path()), local_files_only=True)
    bert = BertModel(BertConfig(vocab_size=len(wordpiece), hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=128))
    bert.save_pretrained(root / "tiny-bert")
    wordpiece.save_pretrained(root / "tiny-bert")
    return root


def test_a_gpt2_folder_is_a_text_generator_and_onnxruntime_declines_it_by_name(foreign_folders):
    handle = load_model(foreign_folders / "tiny-gpt2")  # GPT2LMHeadModel: not named …ForCausalLM
    assert handle.task == Task.GENERATE
    result = text_generator(handle).generate("Hello there", GenerationSettings(max_new_tokens=6))
    assert 1 <= len(result.new_tokens) <= 6 and result.ttft_ms > 0
    from studio.lm.genai import build

    with pytest.raises(StudioError, match=r"failed for tiny-gpt2 at fp32: NotImplementedError.*--runtime torch"):
        build(handle, "fp32")


def test_a_qwen2_folder_exports_to_a_verified_int4_onnx_folder(foreign_folders, tmp_path):
    report = run_export(str(foreign_folders / "tiny-qwen2"), ["onnx"], tmp_path, precision="int4")
    verified = report["exports"][0]["verified"]
    assert verified["weights"] == "int4" and verified["kv_cache_inputs"] == 4  # 2 layers × key/value
    assert verified["cache_step_vs_reread_max_abs"] < 0.1 * verified["logit_scale"]
    reopened = load_model(tmp_path / "tiny-qwen2-onnx")
    assert reopened.task == Task.GENERATE


def test_a_bare_bert_folder_embeds_and_its_tflite_export_reports_in_text(foreign_folders, tmp_path):
    assert load_model(foreign_folders / "tiny-bert").task == Task.EMBED
    text = export_text(run_export(str(foreign_folders / "tiny-bert"), ["onnx", "tflite"], tmp_path))
    # what `deploy-studio export` prints: the text report of a language model's TFLite crashed once
    assert "cosine to the sentence-transformers pipeline (PyTorch) 1.0" in text
    assert (tmp_path / "tiny-bert.tflite").is_file() and (tmp_path / "tiny-bert-onnx" / "model.onnx").is_file()


def test_low_rank_factorises_gpt2_conv1d_projections_exactly_when_they_are_low_rank(foreign_folders):
    """GPT-2 stores its projections as transformers' Conv1D ((in, out), x @ W + b): weights made rank 4 must
    come back exactly from rank-16 factors, and a transposed factorisation would not."""
    import torch
    from transformers.pytorch_utils import Conv1D

    from studio.plugin_api import settings_from_dict
    from studio.registry import default_registry
    from studio.tasks import TaskContext

    handle = load_model(foreign_folders / "tiny-gpt2")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in handle.torch_module.modules():
            if isinstance(layer, Conv1D):
                rows, columns = layer.weight.shape
                layer.weight.copy_(torch.randn(rows, 4, generator=generator) @ torch.randn(4, columns,
                                                                                          generator=generator) / 8)
    plugin = default_registry().get("lowrank.svd")
    ctx = TaskContext()
    variant = plugin.apply(handle, settings_from_dict(plugin, {"mode": "ratio", "rank_ratio": 0.25}), ctx)
    report = next(r for r in ctx.reports if "factorised" in r)
    assert report["factorised"] == report["candidates"] == 8  # 2 blocks × c_attn, c_proj, c_fc, mlp.c_proj
    assert variant.params < handle.params
    ids = torch.arange(1, 17)[None]
    with torch.no_grad():
        base, factored = handle.torch_module(ids).logits, variant.torch_module(ids).logits
    assert torch.allclose(base, factored, atol=1e-3), float((base - factored).abs().max())
