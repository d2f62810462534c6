"""A GGUF file's own quantized blocks, re-laid as onnxruntime MatMulNBits weights — without re-quantizing.

Re-quantizing weights that were already 4-bit (the GGUF's Q4_1 blocks, dequantized to FP32) to another
4-bit grid compounds the two rounding errors: measured here, it costs a third of the tokens an INT4
model agrees on with FP32 (bench/lm.py). The blocks themselves fit MatMulNBits (value = scale × (q − zero
point), one scale per 32 inputs of an output column) exactly:

* ``Q4_0``: d × (q − 8) — 4-bit, MatMulNBits' default zero point 8;
* ``Q8_0``: d × q, q signed 8-bit — 8-bit, stored as q + 128 with the default zero point 128;
* ``Q4_1``: d × q + m — 4-bit with the zero point 8 plus a per-block offset m + 8d that MatMulNBits
  cannot hold (its CPU kernel takes only integer zero points fast; a float zero point makes it
  dequantize the whole matrix on every call, measured 80× slower). The offset is carried separately:
  y = MatMulNBits(x) + blocksum(x) @ offsets, a matrix 32× smaller (``studio/lm/gguf_graph.py``).

Other block types (K-quants, Q5, F16…) are refused by name. Arrays are numpy: q as uint8 codes
[N, K] (output rows, input columns), scales and offsets [N, K / 32].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import UnsupportedError

BLOCK = 32
SUPPORTED = ("Q4_0", "Q4_1", "Q8_0")
_HALF = np.dtype("<f2")


@dataclass
class Blocks:
    """One weight matrix as MatMulNBits sees it: W[n, k] = scales[n, k//32] × (q[n, k] − zero) + offsets."""

    kind: str  # the GGUF block type it came from
    bits: int
    q: np.ndarray  # uint8 codes [N, K]
    scales: np.ndarray  # float32 [N, K / 32]
    offsets: np.ndarray | None  # float32 [N, K / 32], Q4_1 only

    @property
    def zero(self) -> int:
        return 8 if self.bits == 4 else 128  # MatMulNBits' default zero points: no zero-point input needed

    def dequantized(self) -> np.ndarray:
        n, k = self.q.shape
        codes = (self.q.astype(np.float32) - self.zero).reshape(n, k // BLOCK, BLOCK)
        values = codes * self.scales[..., None]
        if self.offsets is not None:
            values = values + self.offsets[..., None]
        return values.reshape(n, k)

    def take_rows(self, order: np.ndarray) -> Blocks:
        offsets = None if self.offsets is None else self.offsets[order]
        return Blocks(self.kind, self.bits, self.q[order], self.scales[order], offsets)

    def packed(self) -> np.ndarray:
        """MatMulNBits' B input: [N, K / 32, 32 × bits / 8] uint8; 4-bit codes two to a byte, the even
        element in the low nibble."""
        n, k = self.q.shape
        if self.bits == 8:
            return np.ascontiguousarray(self.q.reshape(n, k // BLOCK, BLOCK))
        pairs = self.q.reshape(n, k // BLOCK, BLOCK // 2, 2)
        return np.ascontiguousarray(pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)


def _fields(raw: np.ndarray, kind: str) -> Blocks:
    """Blocks from a tensor's raw bytes, [N, K / 32 × block bytes] as gguf's reader returns them."""
    n = raw.shape[0]
    if kind == "Q8_0":  # f16 d, int8 q[32]
        blocks = raw.reshape(n, -1, 34)
        d = blocks[..., :2].copy().view(_HALF)[..., 0].astype(np.float32)
        q = blocks[..., 2:].copy().view(np.int8).astype(np.int16) + 128
        return Blocks(kind, 8, q.astype(np.uint8).reshape(n, -1), d, None)
    size = {"Q4_0": 18, "Q4_1": 20}[kind]
    blocks = raw.reshape(n, -1, size)
    d = blocks[..., :2].copy().view(_HALF)[..., 0].astype(np.float32)
    nibbles = blocks[..., size - 16:]  # element j in the low nibble of byte j, element j + 16 in its high one
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).reshape(n, -1)
    if kind == "Q4_0":
        return Blocks(kind, 4, q, d, None)
    m = blocks[..., 2:4].copy().view(_HALF)[..., 0].astype(np.float32)
    return Blocks(kind, 4, q, d, m + 8 * d)  # d·q + m = d·(q − 8) + (m + 8d)


def read_blocks(path: Path) -> dict[str, Blocks]:
    """Every 2-D weight of a GGUF file as blocks, by GGUF tensor name; an unsupported type is an error."""
    found: dict[str, Blocks] = {}
    data = np.memmap(path, dtype=np.uint8, mode="r")
    for name, kind, shape, start in tensor_table(path):
        if len(shape) != 2:
            continue  # norms and other vectors: the builder keeps them in float
        if kind not in SUPPORTED:
            raise UnsupportedError(f"{name} is {kind}; the GGUF-block INT4 build reads only "
                                   f"{', '.join(SUPPORTED)} blocks", path=path,
                                   fix="use the 'rtn' or 'k_quant' algorithm, which re-quantize the weights")
        row_bytes = shape[0] // BLOCK * _BLOCK_BYTES[kind]  # GGUF shapes list the inner (input) dimension first
        raw = np.asarray(data[start:start + row_bytes * shape[1]]).reshape(shape[1], row_bytes)
        found[name] = _fields(raw, kind)
    return found


_BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}
# GGUF metadata value types → struct formats (8 = string, 9 = array: handled apart)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def tensor_table(path: Path) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, block type, shape, byte offset in the file) of every tensor, read from the header alone.

    gguf's own reader parses every metadata value into numpy views — 15 s here for the 49 152-token
    vocabulary — where the tensors only need the metadata skipped."""
    import mmap
    import struct

    from gguf import GGMLQuantizationType

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        if view[:4] != b"GGUF":
            raise UnsupportedError("not a GGUF file (no GGUF magic)", path=path, fix="open a .gguf model file")
        tensors, entries = struct.unpack_from("<QQ", view, 8)  # after the magic and the version
        offset = 24
        alignment = 32

        def string(at: int) -> tuple[str, int]:
            (length,) = struct.unpack_from("<Q", view, at)
            return view[at + 8:at + 8 + length].decode("utf-8", "replace"), at + 8 + length

        def skip(kind: int, at: int) -> int:
            if kind == 8:
                return at + 8 + struct.unpack_from("<Q", view, at)[0]
            if kind == 9:
                inner, count = struct.unpack_from("<IQ", view, at)
                at += 12
                if inner in _SCALARS:
                    return at + count * struct.calcsize(_SCALARS[inner])
                for _ in range(count):
                    at = skip(inner, at)
                return at
            return at + struct.calcsize(_SCALARS[kind])

        for _ in range(entries):
            key, offset = string(offset)
            (kind,) = struct.unpack_from("<I", view, offset)
            if key == "general.alignment":
                (alignment,) = struct.unpack_from("<I", view, offset + 4)
            offset = skip(kind, offset + 4)
        table = []
        for _ in range(tensors):
            name, offset = string(offset)
            (dims,) = struct.unpack_from("<I", view, offset)
            shape = struct.unpack_from(f"<{dims}Q", view, offset + 4)
            kind, start = struct.unpack_from("<IQ", view, offset + 4 + 8 * dims)
            offset += 4 + 8 * dims + 12
            table.append((name, GGMLQuantizationType(kind).name, tuple(int(d) for d in shape), start))
        base = (offset + alignment - 1) // alignment * alignment
    return [(name, kind, shape, base + start) for name, kind, shape, start in table]


def rope_rows(rows: int, heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's rotary permutation of Q/K (as transformers does on loading):
    GGUF row ``order[i]`` is Hugging Face row ``i``."""
    dim = rows // heads // 2
    return np.arange(rows).reshape(heads, dim, 2).swapaxes(2, 1).reshape(rows)


def why_not(path: Path) -> str | None:
    """Why this GGUF's weights cannot be carried as they are (None when they can): an unsupported block
    type, or a Q4_1 embedding table tied to the LM head (GatherBlockQuantized has no offsets)."""
    kinds = {name: kind for name, kind, shape, _ in tensor_table(path) if len(shape) == 2}
    other = sorted({kind for kind in kinds.values() if kind not in SUPPORTED})
    if other:
        return f"its weights include {', '.join(other)} blocks (the GGUF-block build reads {', '.join(SUPPORTED)})"
    if "output.weight" not in kinds and kinds.get("token_embd.weight") == "Q4_1":
        return "its embedding table, tied to the LM head, is Q4_1"
    return None
