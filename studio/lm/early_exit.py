"""Early exit for decoding: each new token leaves the decoder at the first exit layer where it is
confident enough. Confidence is either the model's own final norm + LM head (max softmax probability
≥ threshold) or hidden-state saturation (cosine between the layer's input and output ≥ threshold,
CALM's cheap measure: no LM-head product per check).

The prompt is read at full depth (prefill); then, token by token, the layers run one at a time. At an
exit layer the head scores the hidden state; when it is confident, the remaining layers are skipped
and — so later tokens can still attend to this one — their key/value entries are computed from the
exiting hidden state (state propagation, as in CALM, Schuster et al. 2022): only the K and V
projections of the skipped layers run, a small share of their work.

Each check costs one LM-head product (hidden × vocabulary, often several layers' worth of work), so
exits are offered at a few layers only and the measured tokens/s says whether it paid off.

Works for decoders laid out like Llama (``model.layers[i].self_attn.{k,v}_proj``, ``model.norm``,
``lm_head``, rotary position embeddings): Llama, Mistral, Qwen2/3, SmolLM, Phi-3 style models.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from studio.errors import UnsupportedError
from studio.lm.generate import Generation, GenerationSettings, check_context, eos_ids, prompt_ids, token_gaps_ms
from studio.model import ModelHandle


def layout_problem(module: Any) -> str | None:
    """Why this decoder cannot exit early (None when it can)."""
    backbone = getattr(module, "model", None)
    layers = getattr(backbone, "layers", None)
    if backbone is None or layers is None or not hasattr(module, "lm_head") or not hasattr(backbone, "norm"):
        return "the decoder is not laid out like Llama (model.layers, model.norm, lm_head)"
    attention = getattr(layers[0], "self_attn", None)
    if attention is None or not all(hasattr(attention, n) for n in ("k_proj", "v_proj", "head_dim")):
        return "its attention has no separate k_proj / v_proj"
    if not hasattr(backbone, "rotary_emb") or not hasattr(sys.modules[type(attention).__module__],
                                                          "apply_rotary_pos_emb"):
        return "it does not use rotary position embeddings the way Llama does"
    return None


def parse_exits(text: str, depth: int) -> list[int]:
    """Exit points as numbers of layers run (1…depth-1), from "8,16,24"."""
    try:
        exits = sorted({int(part) for part in str(text).replace(" ", "").split(",") if part})
    except ValueError:
        raise UnsupportedError(f"exit layers '{text}' are not whole numbers", fix="write them like 10,15,20") from None
    bad = [e for e in exits if not 1 <= e < depth]
    if bad or not exits:
        raise UnsupportedError(f"exit layers {bad or text} are outside 1…{depth - 1}",
                               fix=f"this model has {depth} layers: choose exits between 1 and {depth - 1}")
    return exits


def default_exits(depth: int) -> str:
    """Half, two thirds and five sixths of the depth: a few checks, each a chance to save a third or more."""
    return ",".join(str(max(1, round(depth * f))) for f in (1 / 2, 2 / 3, 5 / 6))


class EarlyExitGenerator:
    def __init__(self, handle: ModelHandle, threads: int = 2):
        import torch

        problem = layout_problem(handle.torch_module)
        if problem:
            raise UnsupportedError(f"{handle.name}: early exit needs {problem.split(' ', 1)[1]}")
        self.torch, self.handle, self.threads = torch, handle, threads
        self.module = handle.torch_module
        self.backbone = self.module.model
        self.layers = list(self.backbone.layers)
        self.depth = len(self.layers)
        self.threshold = float(handle.metadata.get("exit_threshold", "0.9"))
        self.confidence = handle.metadata.get("exit_confidence", "softmax")
        self.exits = set(parse_exits(handle.metadata.get("exit_layers", default_exits(self.depth)), self.depth))
        self.rotate = sys.modules[type(self.layers[0].self_attn).__module__].apply_rotary_pos_emb
        self.runtime = (f"PyTorch fp32 early exit ({self.confidence} ≥ {self.threshold}, "
                        f"exits after layers {sorted(self.exits)})")

    def size_bytes(self) -> int:
        return self.handle.size_bytes

    def _cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.module.config)

    def _prefill(self, ids: list[int], cache: Any) -> Any:
        out = self.module(input_ids=self.torch.tensor([ids]), cache=cache, use_cache=True)
        return out.logits[0]

    def _fill_kv(self, index: int, hidden: Any, position_embeddings: Any, cache: Any) -> None:
        """Key/value of a skipped layer from the exiting hidden state, so later tokens can attend here."""
        layer = self.layers[index]
        attention = layer.self_attn
        x = layer.input_layernorm(hidden)
        shape = (*x.shape[:-1], -1, attention.head_dim)
        key = attention.k_proj(x).view(shape)
        if hasattr(attention, "k_norm"):  # Qwen3-style per-head norm before the rotation
            key = attention.k_norm(key)
        key = key.transpose(1, 2)
        value = attention.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = position_embeddings
        _, key = self.rotate(key, key, cos, sin)
        cache.update(key, value, index)

    def step(self, token: int, position: int, cache: Any) -> tuple[Any, int]:
        """(logits of the next token, layers run) for one new token."""
        torch = self.torch
        hidden = self.backbone.embed_tokens(torch.tensor([[token]]))
        positions = torch.tensor([[position]])
        embeddings = self.backbone.rotary_emb(hidden, position_ids=positions)
        for index, layer in enumerate(self.layers):
            before = hidden
            hidden = layer(hidden, attention_mask=None, position_ids=positions, cache=cache, use_cache=True,
                           position_embeddings=embeddings)
            used = index + 1
            if used not in self.exits:
                continue
            if self.confidence == "saturation":
                logits = None
                confident = float(torch.cosine_similarity(before[0, -1], hidden[0, -1], dim=0)) >= self.threshold
            else:
                logits = self.module.lm_head(self.backbone.norm(hidden))[0, -1]
                confident = float(torch.softmax(logits, -1).max()) >= self.threshold
            if confident:
                for skipped in range(used, self.depth):
                    self._fill_kv(skipped, hidden, embeddings, cache)
                if logits is None:
                    logits = self.module.lm_head(self.backbone.norm(hidden))[0, -1]
                return logits, used
        return self.module.lm_head(self.backbone.norm(hidden))[0, -1], self.depth

    def generate(self, prompt: str, settings: GenerationSettings | None = None,
                 on_text: Callable[[str], None] | None = None) -> Generation:
        torch = self.torch
        settings = settings or GenerationSettings()
        torch.set_num_threads(settings.threads or self.threads)
        ids = prompt_ids(self.handle, prompt, settings.chat)[0].tolist()
        check_context(self.handle, len(ids), settings.max_new_tokens)
        tokenizer, eos = self.handle.tokenizer, eos_ids(self.handle.tokenizer)
        generator = torch.Generator().manual_seed(settings.seed)
        tokens: list[int] = []
        stamps: list[float] = []
        layers: list[int] = []
        start = time.perf_counter()
        with torch.inference_mode():
            cache = self._cache()
            logits = self._prefill(ids, cache)[-1]
            used = self.depth
            while len(tokens) < settings.max_new_tokens:
                token = self._choose(logits, settings, generator)
                stamps.append(time.perf_counter())
                layers.append(used)
                if token in eos:
                    break
                tokens.append(token)
                if on_text is not None:
                    on_text(tokenizer.decode(tokens, skip_special_tokens=True))
                if len(tokens) == settings.max_new_tokens:
                    break
                logits, used = self.step(token, len(ids) + len(tokens) - 1, cache)
        end = time.perf_counter()
        decode = ((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0]
                  else None)
        decoded = layers[1:]  # the first token comes from the full-depth prefill
        return Generation(
            prompt=prompt, text=tokenizer.decode(tokens, skip_special_tokens=True), prompt_tokens=len(ids),
            new_tokens=tokens, ttft_ms=round(((stamps[0] if stamps else end) - start) * 1e3, 2),
            decode_tokens_per_s=None if decode is None else round(decode, 2), total_ms=round((end - start) * 1e3, 2),
            token_ms=token_gaps_ms(stamps),
            layers_used=round(float(np.mean(decoded)), 2) if decoded else None,
            method=f"{self.runtime}, {settings.threads or self.threads} thread(s), "
                   f"{'sampling' if settings.sample else 'greedy'}; layers used = mean decoder layers per decoded "
                   f"token (of {self.depth}); decode tokens/s over the tokens after the first")

    def _choose(self, logits: Any, settings: GenerationSettings, generator: Any) -> int:
        torch = self.torch
        if not settings.sample:
            return int(logits.argmax())
        probs = torch.softmax(logits / max(settings.temperature, 1e-5), -1)
        ordered, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(ordered, 0) - ordered < settings.top_p  # the smallest set reaching top_p
        ordered = ordered * keep
        return int(order[torch.multinomial(ordered / ordered.sum(), 1, generator=generator)])

    def teacher_forced_logits(self, sequence: list[int], prefill: int | None = None) -> np.ndarray:
        """Logits at every position: the first ``prefill`` tokens at full depth, then one exit-decoded step
        per token, each fed the given (not the predicted) token."""
        torch = self.torch
        prefill = max(1, min(prefill or 1, len(sequence)))
        with torch.inference_mode():
            cache = self._cache()
            rows = [self._prefill(sequence[:prefill], cache)]
            self.last_layers: list[int] = []
            for position in range(prefill, len(sequence)):
                logits, used = self.step(sequence[position], position, cache)
                rows.append(logits[None])
                self.last_layers.append(used)
        return torch.cat(rows).float().numpy()
