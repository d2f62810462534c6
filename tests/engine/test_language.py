"""Language models from the zoo on their real weights: load, generate, embed, and the bad inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from studio.errors import BadInputError, StudioError
from studio.loaders import load_model
from studio.model import Task
from studio.zoo import entry
from tests.engine.cli_helpers import run_cli, run_json


def test_the_gguf_loads_dequantised_and_answers(smollm):
    from studio.lm.generate import GenerationSettings, generate

    assert smollm.task == Task.GENERATE and smollm.format == "gguf"
    assert 134_000_000 < smollm.params < 135_000_000  # SmolLM2-135M, FP32 after dequantisation
    assert int(smollm.metadata["context_length"]) >= 2048
    result = generate(smollm, "What is the capital of France?", GenerationSettings(max_new_tokens=16, threads=2))
    assert "Paris" in result.text
    assert 0 < len(result.new_tokens) <= 16 and result.ttft_ms > 0
    assert result.decode_tokens_per_s is None or result.decode_tokens_per_s > 1
    assert "greedy" in result.method and "KV cache" in result.method


def test_greedy_generation_is_repeatable_and_streams(smollm):
    from studio.lm.generate import GenerationSettings, generate

    seen: list[str] = []
    settings = GenerationSettings(max_new_tokens=12, threads=2)
    first = generate(smollm, "Name a colour.", settings, on_text=seen.append)
    second = generate(smollm, "Name a colour.", settings)
    assert first.new_tokens == second.new_tokens
    assert seen and seen[-1] == first.text and len(seen) == len(first.new_tokens)


def test_a_prompt_longer_than_the_context_is_refused(smollm):
    from studio.lm.generate import GenerationSettings, generate

    context = int(smollm.metadata["context_length"])
    with pytest.raises(BadInputError, match=f"exceeds smollm2-135m's context of {context} tokens"):
        generate(smollm, "word " * context, GenerationSettings(max_new_tokens=8, chat=False))


def test_sentence_embeddings_rank_related_sentences_first(minilm):
    from studio.lm.embed import cosine_matrix, embed

    assert minilm.task == Task.EMBED and 22_000_000 < minilm.params < 23_500_000
    vectors = embed(minilm, ["A man is eating food.", "A man is eating a piece of bread.", "A cheetah chases prey."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = cosine_matrix(vectors)
    assert cosine[0, 1] > 0.7 and cosine[0, 1] > cosine[0, 2] + 0.4  # 0.755 vs 0.215 measured


def test_a_folder_without_a_tokenizer_is_refused(tmp_path):
    source = entry("minilm-l6").path()
    copy = tmp_path / "no-tokenizer"
    shutil.copytree(source, copy)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (copy / name).unlink(missing_ok=True)
    with pytest.raises(BadInputError, match="has no tokenizer"):
        load_model(copy)


def test_a_plain_folder_and_a_foreign_gguf_are_refused(tmp_path):
    with pytest.raises(BadInputError, match=r"without config\.json"):
        load_model(tmp_path)
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(StudioError, match=r"model\.gguf"):
        load_model(fake)


def test_a_well_formed_gguf_of_an_unreadable_architecture_names_it(tmp_path):
    import gguf

    path = tmp_path / "tiny-rwkv.gguf"  # a valid GGUF (written by the gguf package) of an RWKV model
    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(BadInputError, match=r"tiny-rwkv\.gguf.*cannot dequantise.*rwkv6.*Hugging Face folder"):
        load_model(path)


def test_cli_generate_and_embed(tmp_path):
    report = run_json("generate", "zoo:smollm2-135m", "What is the capital of France?", "--max-new-tokens", "12")
    assert "Paris" in report["text"] and report["new_token_count"] <= 12 and report["ttft_ms"] > 0
    embedded = run_json("embed", "zoo:minilm-l6", "A man is eating food.", "A man is eating bread.")
    assert embedded["dimensions"] == 384 and embedded["cosine"][0][1] > 0.6
    done = run_cli("generate", "zoo:minilm-l6", "hello")
    assert done.returncode == 2 and "is a sentence-embedding model, not a text generator" in done.stderr


def test_minilm_on_onnxruntime_matches_and_int8_stays_close(minilm):
    from studio.lm.embed import embed
    from studio.lm.encoder_onnx import OrtEncoder

    sentences = ["A man is eating food.", "The girl is carrying a baby.", "It is raining in the city today."]
    reference = embed(minilm, sentences)
    fp32, int8 = OrtEncoder(minilm, "fp32"), OrtEncoder(minilm, "int8")
    assert float((fp32.encode(sentences) * reference).sum(1).min()) > 0.9999  # the same network
    assert float((int8.encode(sentences) * reference).sum(1).min()) >= 0.97  # 0.99 measured (per-channel)
    assert int8.path.stat().st_size < 0.3 * fp32.path.stat().st_size  # 90 MB → 23 MB
    done = run_cli("embed", "zoo:minilm-l6", "one", "two", "--precision", "int8")
    assert done.returncode == 2 and "--runtime ort" in done.stderr
