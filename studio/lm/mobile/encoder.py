"""A sentence-transformers text encoder (Task.EMBED) as ``(input_ids, attention_mask) -> embedding``.

The transformer with the pipeline's own pooling (mean over the mask, or CLS) and L2 normalisation inside
the graph, so the file gives sentence embeddings directly; token types are zeros inside the graph (single
sentences). Verified by cosine to the sentence-transformers pipeline on fixed sentences.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from studio.errors import UnsupportedError
from studio.lm.mobile.kind import MASKED, LanguageKind, float32_only
from studio.model import ModelHandle
from studio.reports import EncoderParity
from studio.vectors import row_cosines

SENTENCES = ("A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "The stock market fell sharply this morning.")
MIN_COSINE = 0.99  # every verification sentence, TFLite vs the PyTorch pipeline


class Encoder(LanguageKind):
    name, inputs, output = "encoder", ("input_ids", "attention_mask"), "embedding"
    kv_cache = None
    notes: ClassVar[dict[str, str]] = {}

    def check(self, handle: ModelHandle, seq_len: int, fmt: str) -> None:
        modules = list(handle.torch_module) if hasattr(handle.torch_module, "__iter__") else []
        transformer = getattr(modules[0], "auto_model", None) if modules else None
        if transformer is None:
            raise UnsupportedError(f"{handle.name} is not a sentence-transformers pipeline over a Hugging Face "
                                   "transformer", fix="export it to ONNX")
        pooling = _pooling(handle)
        if pooling not in ("mean", "cls"):
            raise UnsupportedError(f"{handle.name}: pooling '{pooling}' is not built into the {fmt} graph",
                                   fix="export it to ONNX (pooling applied by the caller)")
        limit = int(getattr(transformer.config, "max_position_embeddings", 0) or 0)
        if limit and seq_len > limit:
            raise UnsupportedError(f"a window of {seq_len} tokens exceeds {handle.name}'s {limit} positions",
                                   fix=f"choose seq_len of {limit} or less")
        float32_only(handle, fmt)

    def check_tflite(self, handle: ModelHandle) -> None:
        """No refusal of its own: the 2 GB flatbuffer limit is checked up front for causal LMs only."""

    def wrap(self, handle: ModelHandle, seq_len: int) -> tuple[Any, tuple[Any, ...]]:
        import torch

        module = _sentence_encoder(handle.torch_module[0].auto_model, _pooling(handle), _normalize(handle))
        return module.eval(), (torch.zeros((1, seq_len), dtype=torch.int32),
                               torch.ones((1, seq_len), dtype=torch.int32))

    def check_torch(self, handle: ModelHandle, module: Any, seq_len: int) -> tuple[bool, dict[str, Any]]:
        import torch

        ours = np.concatenate([module(*(torch.from_numpy(f[n]) for n in self.inputs)).numpy()
                               for f in _feeds(handle, seq_len)])
        worst = float(row_cosines(ours, _pipeline_embeddings(handle)).min())
        return worst >= MIN_COSINE, {"min_cosine": round(worst, 6), "sentences": len(SENTENCES)}

    def verify_tflite(self, runner: Any, declared: dict[str, Any], handle: ModelHandle,
                      seq_len: int) -> EncoderParity:
        start = time.perf_counter()
        ours = np.concatenate([runner(**{n: f[n].astype(declared[n]["dtype"]) for n in self.inputs})[self.output]
                               for f in _feeds(handle, seq_len)])
        ms = (time.perf_counter() - start) * 1e3 / len(SENTENCES)
        cosines = row_cosines(ours.astype(np.float32), _pipeline_embeddings(handle))
        worst = float(cosines.min())
        return {"kind": "lm_encoder", "metric": "cosine to the sentence-transformers pipeline (PyTorch)",
                "min_cosine": round(worst, 6), "cosines": [round(float(c), 6) for c in cosines],
                "sentences": len(SENTENCES), "norms": [round(float(n), 4) for n in np.linalg.norm(ours, axis=1)],
                "ms_per_sentence": round(ms, 1),
                "passed": worst >= MIN_COSINE, "threshold": MIN_COSINE}

    def output_shape(self, handle: ModelHandle, seq_len: int) -> list[int]:
        return [1, _embedding_size(handle)]

    def metadata(self, handle: ModelHandle, seq_len: int) -> dict[str, Any]:
        pooling, normalize = _pooling(handle), _normalize(handle)
        return {"pooling": pooling, "normalize": "l2" if normalize else "none",
                "embedding_size": _embedding_size(handle),
                "usage": f"tokenize one sentence, right-pad to {seq_len} tokens (attention_mask 1 for tokens, "
                         f"0 for padding; truncate longer text); the output is the sentence embedding, "
                         f"{pooling}-pooled{' and L2-normalised' if normalize else ''}"}


ENCODER = Encoder()


def _sentence_encoder(transformer: Any, pooling: str, normalize: bool) -> Any:
    import inspect

    import torch

    class SentenceEncoder(torch.nn.Module):
        """The transformer, its pooling and normalisation; a 4-D additive mask, so transformers' mask
        helpers (ops coremltools lacks, such as new_ones) stay out of the graph."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer, self.pooling, self.normalize = transformer, pooling, normalize
            self.token_types = "token_type_ids" in inspect.signature(transformer.forward).parameters

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask.to(torch.float32)
            length = input_ids.shape[1]
            additive = ((1.0 - mask) * MASKED)[:, None, None, :].expand(-1, 1, length, -1)
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
            hidden = self.transformer(input_ids=input_ids, attention_mask=additive, **extra).last_hidden_state
            if self.pooling == "cls":
                vectors = hidden[:, 0]
            else:
                vectors = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return torch.nn.functional.normalize(vectors, p=2, dim=1) if self.normalize else vectors

    return SentenceEncoder()


def _feeds(handle: ModelHandle, seq_len: int) -> list[dict[str, np.ndarray]]:
    feeds = []
    for sentence in SENTENCES:
        batch = handle.tokenizer(sentence, padding="max_length", truncation=True, max_length=seq_len,
                                 return_tensors="np")
        feeds.append({"input_ids": batch["input_ids"].astype(np.int32),
                      "attention_mask": batch["attention_mask"].astype(np.int32)})
    return feeds


def _pipeline_embeddings(handle: ModelHandle) -> np.ndarray:
    return np.asarray(handle.torch_module.encode(list(SENTENCES), convert_to_numpy=True), dtype=np.float32)


def _pooling(handle: ModelHandle) -> str:
    pooling = next((m for m in handle.torch_module if type(m).__name__ == "Pooling"), None)
    return pooling.get_config_dict().get("pooling_mode", "mean") if pooling is not None else "mean"


def _normalize(handle: ModelHandle) -> bool:
    return any(type(m).__name__ == "Normalize" for m in handle.torch_module)


def _embedding_size(handle: ModelHandle) -> int:
    module = handle.torch_module
    size = getattr(module, "get_embedding_dimension", None) or module.get_sentence_embedding_dimension
    return int(size())
