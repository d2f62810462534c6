"""INT4 from a GGUF's own blocks (studio/lm/gguf_blocks.py, gguf_graph.py): the blocks are the loaded
weights, MatMulNBits computes with them exactly, and the INT4 build keeps the FP32 model's answers where
the builder's re-quantization does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.errors import UnsupportedError
from studio.plugin_api import settings_from_dict
from studio.registry import default_registry
from studio.tasks import TaskContext


def _plugin():
    return default_registry().get("quantize.lm_weights")


def test_the_shipped_gguf_blocks_are_the_loaded_fp32_weights(smollm):
    from studio.lm.gguf_blocks import read_blocks, rope_rows

    blocks = read_blocks(Path(smollm.provenance.path))
    state = smollm.torch_module.state_dict()
    config = smollm.torch_module.config
    assert {b.kind for b in blocks.values()} == {"Q4_1", "Q8_0"}  # what the shipped file holds
    q = blocks["blk.3.attn_q.weight"].take_rows(rope_rows(576, config.num_attention_heads))
    k = blocks["blk.3.attn_k.weight"].take_rows(rope_rows(192, config.num_key_value_heads))
    for got, name in ((q, "model.layers.3.self_attn.q_proj.weight"), (k, "model.layers.3.self_attn.k_proj.weight"),
                      (blocks["blk.7.ffn_down.weight"], "model.layers.7.mlp.down_proj.weight"),
                      (blocks["token_embd.weight"], "model.embed_tokens.weight")):
        np.testing.assert_allclose(got.dequantized(), state[name].numpy(), rtol=0, atol=1e-6)
    # without undoing llama.cpp's rotary row order, Q does not match: the permutation is load-bearing
    assert np.abs(blocks["blk.3.attn_q.weight"].dequantized() - state["model.layers.3.self_attn.q_proj.weight"].numpy()
                  ).max() > 1e-2


@pytest.mark.parametrize("tensor", ["blk.5.ffn_down.weight", "token_embd.weight"])
def test_matmulnbits_computes_with_the_blocks_exactly(smollm, tensor):
    """The packing (nibble order, 8-bit codes, default zero points) and the Q4_1 offset term, run by
    onnxruntime at full float accuracy, against x @ W.T with the dequantized weights."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from studio.lm.gguf_blocks import BLOCK, read_blocks

    blocks = read_blocks(Path(smollm.provenance.path))[tensor]
    if blocks.q.shape[0] > 4096:  # the embedding table: a slice of its rows is the same layout
        blocks = blocks.take_rows(np.arange(4096))
    n, k = blocks.q.shape
    nodes = [helper.make_node("MatMulNBits", ["x", "B", "S"], ["y0"], domain="com.microsoft", K=k, N=n,
                              bits=blocks.bits, block_size=BLOCK, accuracy_level=0)]
    inits = [numpy_helper.from_array(blocks.packed(), "B"), numpy_helper.from_array(blocks.scales, "S")]
    if blocks.offsets is None:
        nodes.append(helper.make_node("Identity", ["y0"], ["y"]))
    else:
        indicator = (np.arange(k)[:, None] // BLOCK == np.arange(k // BLOCK)[None, :]).astype(np.float32)
        inits += [numpy_helper.from_array(indicator, "I"), numpy_helper.from_array(blocks.offsets.T.copy(), "O")]
        nodes += [helper.make_node("MatMul", ["x", "I"], ["sums"]), helper.make_node("MatMul", ["sums", "O"], ["off"]),
                  helper.make_node("Add", ["y0", "off"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])], inits)
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, k)).astype(np.float32)
    expected = x.astype(np.float64) @ blocks.dequantized().astype(np.float64).T
    got = session.run(None, {"x": x})[0]
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_int4_default_on_a_gguf_keeps_the_fp32_answers_the_requantized_build_loses(smollm):
    import onnx

    from studio.lm.agreement import PROMPTS, agreement, argmax_of, reference_continuations
    from studio.lm.runners import token_logits

    ctx = TaskContext()
    plugin = _plugin()
    variant = plugin.apply(smollm, settings_from_dict(plugin, {"precision": "int4"}), ctx)
    report = next(r for r in ctx.reports if r.get("algorithm") == "gguf")
    assert report["gguf_blocks"] == {"gguf_blocks": {"Q4_1": 120, "Q8_0": 1}, "offset_projections": 120}
    graph = onnx.load(str(variant.onnx_path), load_external_data=False).graph
    bits = {n.name: next(a.i for a in n.attribute if a.name == "bits") for n in graph.node
            if n.op_type in ("MatMulNBits", "GatherBlockQuantized")}
    assert bits.pop("/lm_head/MatMul_Q4") == 8 and bits.pop("/model/embed_tokens/GatherBlockQuantized") == 8
    assert set(bits.values()) == {4}  # every projection stays 4-bit
    assert variant.size_bytes < 0.25 * smollm.params * 4
    old = plugin.apply(smollm, settings_from_dict(plugin, {"precision": "int4"}, 1), TaskContext())  # a v1 recipe
    pairs = reference_continuations(smollm, PROMPTS, tokens=16)
    new_agreement = agreement(argmax_of(token_logits(variant)), pairs)["agreement"]
    old_agreement = agreement(argmax_of(token_logits(old)), pairs)["agreement"]
    assert new_agreement >= 0.9 > old_agreement  # measured 0.954 and 0.718


def test_version_1_recipes_keep_re_quantizing_and_new_ones_use_the_file_blocks():
    plugin = _plugin()
    assert plugin.settings_version == 2
    assert settings_from_dict(plugin, {"precision": "int4"}, 1).algorithm == "default"
    assert settings_from_dict(plugin, {"precision": "int4", "algorithm": "k_quant"}, 1).algorithm == "k_quant"
    assert settings_from_dict(plugin, {"precision": "int4"}).algorithm == "auto"


def test_gguf_blocks_are_refused_in_one_line_where_they_cannot_apply(smollm, tmp_path):
    import gguf

    from studio.lm.gguf_blocks import tensor_table, why_not

    plugin = _plugin()
    for values, words in (({"precision": "int8", "algorithm": "gguf"}, "INT4"),
                          ({"precision": "int4", "algorithm": "gguf", "block_size": 64}, "32 inputs")):
        with pytest.raises(UnsupportedError, match=words) as caught:
            plugin.apply(smollm, settings_from_dict(plugin, values), TaskContext())
        assert "\n" not in str(caught.value) and "rtn" in str(caught.value)
    # a file with F16 weights: the header reader agrees with gguf's own, and 'auto' would re-quantize
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.ffn_up.weight", np.ones((8, 64), np.float16))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = gguf.GGUFReader(str(path))
    assert [(n, k, s, o) for n, k, s, o in tensor_table(path)] == [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.data_offset)) for t in reader.tensors]
    assert "F16" in why_not(path)
    assert why_not(Path(smollm.provenance.path)) is None
