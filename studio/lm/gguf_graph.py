"""An onnxruntime-genai INT4 decoder whose weights are the GGUF file's own blocks (``gguf_blocks``).

The builder's INT4 graph is kept (its fused QKV, GroupQueryAttention, KV cache, genai_config); only its
MatMulNBits weights are replaced, each by the GGUF tensor it was dequantized from:

* Q4_0 / Q8_0 blocks drop in as they are (an 8-bit tensor sets the node's ``bits`` to 8; the tied
  embedding table's GatherBlockQuantized reads the same bytes, so it follows);
* Q4_1 blocks need their per-block offset: y = MatMulNBits(x) + (x @ S) @ offsets, where S sums each
  block of 32 inputs (one small MatMul per distinct input, shared by the projections that read it) and
  offsets is [K / 32, N] — a matrix 32× smaller than the weight, in FP32.

Every replaced weight is checked against the FP32 weights the studio loaded from the same file before
anything is written: a mapping mistake (a wrong row order, a wrong tensor) fails the build instead of
shipping a model that only looks right.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError
from studio.lm.gguf_blocks import BLOCK, Blocks, read_blocks, rope_rows

# The builder's MatMulNBits weight names → the GGUF tensors they come from (rows concatenated in order)
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.MatMul\.weight_Q4$")
_PARTS = {
    "attn.qkv_proj": ("attn_q", "attn_k", "attn_v"),
    "attn.q_proj": ("attn_q",), "attn.k_proj": ("attn_k",), "attn.v_proj": ("attn_v",),
    "attn.o_proj": ("attn_output",),
    "mlp.gate_proj": ("ffn_gate",), "mlp.up_proj": ("ffn_up",), "mlp.down_proj": ("ffn_down",),
    "mlp.gate_up_proj": ("ffn_gate", "ffn_up"),
}
# The FP32 weights (Hugging Face names) each GGUF tensor was loaded into, for the check
_HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
       "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
       "ffn_down": "mlp.down_proj"}
# Relative to the largest weight: float32 rounding of d·(q − 8) + (m + 8d) against d·q + m
TOLERANCE = 1e-5


def _concat(parts: list[Blocks]) -> Blocks:
    kinds = {p.kind for p in parts}
    if len(kinds) != 1:
        raise StudioError(f"a fused projection mixes GGUF block types {sorted(kinds)}",
                          fix="use the 'rtn' algorithm, which re-quantizes the weights")
    offsets = None if parts[0].offsets is None else np.concatenate([p.offsets for p in parts])
    return Blocks(parts[0].kind, parts[0].bits, np.concatenate([p.q for p in parts]),
                  np.concatenate([p.scales for p in parts]), offsets)


def weight_blocks(name: str, gguf: dict[str, Blocks], config: Any, state: dict[str, Any]) -> Blocks:
    """The GGUF blocks behind one of the builder's MatMulNBits weights, checked against the FP32 model."""
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}
    if name == "lm_head.MatMul.weight_Q4":
        gguf_name = "output.weight" if "output.weight" in gguf else "token_embd.weight"  # tied: the embeddings
        blocks, references = gguf[gguf_name], ["lm_head.weight"]
    else:
        match = _LAYER.match(name)
        if not match or match.group(2) not in _PARTS:
            raise StudioError(f"the builder's weight {name} has no GGUF tensor the studio knows",
                              fix="use the 'rtn' or 'k_quant' algorithm, which re-quantize the weights")
        layer, parts = match.group(1), _PARTS[match.group(2)]
        pieces = []
        for part in parts:
            piece = gguf[f"blk.{layer}.{part}.weight"]
            if part in heads:  # llama.cpp stores Q/K rows in its own rotary order
                piece = piece.take_rows(rope_rows(piece.q.shape[0], heads[part]))
            pieces.append(piece)
        blocks = _concat(pieces)
        references = [f"model.layers.{layer}.{_HF[part]}.weight" for part in parts]
    expected = np.concatenate([state[r].detach().float().numpy() for r in references])
    error = float(np.abs(blocks.dequantized() - expected).max()) / max(float(np.abs(expected).max()), 1e-12)
    if error > TOLERANCE:
        raise StudioError(f"the GGUF blocks for {name} differ from the loaded weights (relative {error:.1e})",
                          fix="use the 'rtn' algorithm, which re-quantizes the loaded weights")
    return blocks


def rewrite(source: Path, target: Path, gguf_path: Path, torch_module: Any) -> dict[str, Any]:
    """Write ``target/model.onnx`` (+ ``.data``): the builder's INT4 graph in ``source`` with the GGUF's
    blocks. Returns what was replaced, for the report."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source / "model.onnx"))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    gguf = read_blocks(gguf_path)
    state = torch_module.state_dict()
    config = torch_module.config
    kinds: dict[str, int] = {}
    new_nodes: list[Any] = []
    block_sums: dict[str, str] = {}  # an input → its block sums, computed once for every projection reading it
    sum_matrices: dict[int, str] = {}
    bits_of: dict[str, int] = {}
    for node in graph.node:
        new_nodes.append(node)
        if node.op_type != "MatMulNBits":
            continue
        weight, scales_name = node.input[1], node.input[2]
        blocks = weight_blocks(weight, gguf, config, state)
        kinds[blocks.kind] = kinds.get(blocks.kind, 0) + 1
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("block_size") != BLOCK or len(node.input) > 3:
            raise StudioError(f"the builder's {node.name} is not block-{BLOCK} without zero points",
                              fix="build INT4 with the builder's defaults (block 32, symmetric)")
        inits[weight].CopyFrom(numpy_helper.from_array(blocks.packed(), weight))
        scales = blocks.scales.reshape(tuple(inits[scales_name].dims))
        inits[scales_name].CopyFrom(numpy_helper.from_array(scales.astype(np.float32), scales_name))
        bits_of[weight] = blocks.bits if blocks.offsets is None else -blocks.bits
        for attribute in node.attribute:
            if attribute.name == "bits":
                attribute.i = blocks.bits
        if blocks.offsets is None:
            continue
        source_input, output = node.input[0], node.output[0]
        k = blocks.q.shape[1]
        if k not in sum_matrices:  # S[k, b] = 1 where input k is in block b
            sum_matrices[k] = f"gguf_block_sum_{k}"
            indicator = (np.arange(k)[:, None] // BLOCK == np.arange(k // BLOCK)[None, :]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(indicator, sum_matrices[k]))
        if source_input not in block_sums:
            block_sums[source_input] = f"{node.name}/gguf_block_sums"
            new_nodes.insert(len(new_nodes) - 1, helper.make_node(
                "MatMul", [source_input, sum_matrices[k]], [block_sums[source_input]],
                name=f"{node.name}/GgufBlockSums"))
        offsets_name = weight.replace("weight_Q4", "weight_offsets")
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(blocks.offsets.T), offsets_name))
        node.output[0] = f"{output}/gguf_without_offsets"
        new_nodes += [
            helper.make_node("MatMul", [block_sums[source_input], offsets_name], [f"{output}/gguf_offsets"],
                             name=f"{node.name}/GgufOffsets"),
            helper.make_node("Add", [node.output[0], f"{output}/gguf_offsets"], [output], name=f"{node.name}/GgufAdd"),
        ]
    for node in new_nodes:  # the tied embedding table reads the LM head's bytes: same bits, same row width
        if node.op_type == "GatherBlockQuantized":
            _follow_head(node, graph, inits, bits_of)
    del graph.node[:]
    graph.node.extend(new_nodes)
    onnx.save(model, str(target / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=1024)
    for extra in source.iterdir():  # genai_config.json, the tokenizer, the chat template
        if extra.is_file() and ".onnx" not in extra.name:
            shutil.copy2(extra, target / extra.name)
    return {"gguf_blocks": kinds, "offset_projections": sum(1 for n in new_nodes if n.name.endswith("/GgufAdd"))}


def _follow_head(node: Any, graph: Any, inits: dict[str, Any], bits_of: dict[str, int]) -> None:
    from onnx import numpy_helper

    producer = next((n for n in graph.node if node.input[0] in n.output), None)
    data = producer.input[0] if producer is not None and producer.op_type == "Reshape" else node.input[0]
    bits = bits_of.get(data)
    if bits is None:
        return  # an embedding table of its own: the builder's, left as it is
    if bits < 0:  # GatherBlockQuantized has no per-block offset
        raise StudioError("the tied embedding table is Q4_1 in this GGUF; the GGUF-block build needs it Q4_0, Q8_0",
                          fix="use the 'rtn' algorithm, which re-quantizes the weights")
    for attribute in node.attribute:
        if attribute.name == "bits":
            attribute.i = bits
    if producer is not None and producer.op_type == "Reshape":
        rows, blocks, width = inits[data].dims
        shape_name = f"{producer.name}/gguf_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([rows, blocks * width], np.int64), shape_name))
        producer.input[1] = shape_name
