"""A Llama-layout causal LM (Task.GENERATE) as ``input_ids -> logits`` over a fixed window, without a KV cache.

Every new token re-reads the window. Callers right-pad the prompt to ``seq_len`` with any token and read the
logits at the last prompt position (the mask is causal, so the padding never changes earlier positions).
Verified by the argmax at each prompt position against the PyTorch model's own forward.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from studio.errors import UnsupportedError
from studio.lm.mobile.kind import MASKED, LanguageKind, float32_only, weight_bytes
from studio.model import ModelHandle
from studio.reports import DecoderParity

PROMPT = ("The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid. "
          "Water boils at one hundred degrees Celsius at sea level, and it freezes at zero degrees. "
          "To deploy a language model on a phone, engineers convert it to a compact file, check that it "
          "still answers like the original, and measure how many tokens it produces per second.")
MIN_AGREEMENT = 0.95  # share of prompt positions whose argmax matches the PyTorch model
LLAMA_TYPES = ("llama",)  # layouts converted and verified here (SmolLM2 is a Llama)
MAX_WINDOW = 2048  # without a KV cache, a longer window re-reads too much per token to be useful
TFLITE_LIMIT = 2 * 1024**3  # a TFLite flatbuffer cannot exceed 2 GB
NO_KV_CACHE = ("no KV cache: every new token re-reads the whole window of seq_len tokens "
               "(export ONNX for the onnxruntime-genai folder, which carries the KV cache)")


class Decoder(LanguageKind):
    name, inputs, output = "decoder", ("input_ids",), "logits"
    kv_cache = False
    notes: ClassVar[dict[str, str]] = {"note": NO_KV_CACHE}

    def check(self, handle: ModelHandle, seq_len: int, fmt: str) -> None:
        config = getattr(handle.torch_module, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in LLAMA_TYPES or not type(handle.torch_module).__name__.endswith("ForCausalLM"):
            raise UnsupportedError(f"{fmt} export of causal LMs is built and verified for the Llama layout; "
                                   f"{handle.name} is '{model_type or type(handle.torch_module).__name__}'",
                                   fix="export ONNX: the onnxruntime-genai folder carries the KV cache")
        positions: int = getattr(config, "max_position_embeddings", 0) or 0
        context = int(handle.metadata.get("context_length") or positions)
        limit = min(context, MAX_WINDOW) if context else MAX_WINDOW
        if seq_len > limit:
            raise UnsupportedError(f"a window of {seq_len} tokens is over {limit} (without a KV cache every token "
                                   "re-reads the window)", fix="choose a shorter seq_len, or export ONNX: the "
                                                               "onnxruntime-genai folder carries the KV cache")
        float32_only(handle, fmt)

    def check_tflite(self, handle: ModelHandle) -> None:
        weights = weight_bytes(handle.torch_module)
        if weights > TFLITE_LIMIT:
            raise UnsupportedError(f"{handle.name}'s FP32 weights are {weights / 1e9:.1f} GB, over TFLite's 2 GB "
                                   "flatbuffer limit", fix="export ONNX: the onnxruntime-genai folder carries the "
                                                           "KV cache and INT8/INT4 weights")

    def wrap(self, handle: ModelHandle, seq_len: int) -> tuple[Any, tuple[Any, ...]]:
        import torch

        return _fixed_window(handle.torch_module, seq_len).eval(), (torch.zeros((1, seq_len), dtype=torch.int32),)

    def check_torch(self, handle: ModelHandle, module: Any, seq_len: int) -> tuple[bool, dict[str, Any]]:
        import torch

        window, length = _prompt(handle, seq_len)
        ours = module(torch.from_numpy(window))[0, :length].argmax(-1).numpy()
        share = float((ours == _reference_argmax(handle, window, length)).mean())
        return share >= MIN_AGREEMENT, {"argmax_agreement": round(share, 4), "positions": length}

    def verify_tflite(self, runner: Any, declared: dict[str, Any], handle: ModelHandle,
                      seq_len: int) -> DecoderParity:
        window, length = _prompt(handle, seq_len)
        start = time.perf_counter()
        logits = runner(input_ids=window.astype(declared["input_ids"]["dtype"]))[self.output]
        ms = (time.perf_counter() - start) * 1e3
        share = float((logits[0, :length].argmax(-1) == _reference_argmax(handle, window, length)).mean())
        return {"kind": "lm_decoder", "metric": "argmax of the logits at each prompt position vs the PyTorch model",
                "argmax_agreement": round(share, 4), "positions": length, "ms_per_window": round(ms, 1),
                "passed": share >= MIN_AGREEMENT, "threshold": MIN_AGREEMENT}

    def output_shape(self, handle: ModelHandle, seq_len: int) -> list[int]:
        return [1, seq_len, int(handle.torch_module.get_output_embeddings().weight.shape[0])]

    def metadata(self, handle: ModelHandle, seq_len: int) -> dict[str, Any]:
        return {"kv_cache": "none", "eos_token_id": handle.tokenizer.eos_token_id,
                "usage": f"right-pad the prompt's ids to {seq_len} with any token; the next token is the argmax "
                         f"(or a sample) of logits[0, len(prompt) - 1]; append it and run the window again "
                         f"(no KV cache: every token re-reads the window)"}


DECODER = Decoder()


def _fixed_window(model: Any, seq_len: int) -> Any:
    import torch

    class FixedWindowLM(torch.nn.Module):
        """Logits at every position of a fixed window: a constant causal mask and positions, no cache
        (transformers' own mask helpers use ops coremltools lacks, such as diff)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            causal = torch.triu(torch.full((seq_len, seq_len), MASKED), diagonal=1)[None, None]
            self.register_buffer("causal", causal, persistent=False)
            self.register_buffer("positions", torch.arange(seq_len)[None], persistent=False)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=self.causal, position_ids=self.positions,
                              use_cache=False).logits

    return FixedWindowLM()


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

