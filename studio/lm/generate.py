"""Text generation on the PyTorch model with its KV cache, timed token by token.

Decoding is transformers' own ``generate`` (greedy, or sampling with temperature/top-p); a streamer
records when each token arrives, so time to first token (prefill + first step) and decode tokens/s
(the tokens after the first, over the time after the first) are measured, not estimated.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from studio.errors import BadInputError, UnsupportedError
from studio.model import ModelHandle, Task, task_noun


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    sample: bool = False  # greedy unless asked
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    chat: bool = True  # wrap the prompt in the model's chat template when it has one
    threads: int | None = None


@dataclass
class Generation:
    prompt: str
    text: str
    prompt_tokens: int
    new_tokens: list[int] = field(default_factory=list)
    ttft_ms: float = 0.0
    decode_tokens_per_s: float | None = None
    total_ms: float = 0.0
    method: str = ""
    token_ms: list[float] = field(default_factory=list)  # gap before each token after the first
    layers_used: float | None = None  # mean decoder layers per token (early-exit decoding)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["new_token_count"] = len(self.new_tokens)
        return data


def prompt_ids(handle: ModelHandle, prompt: str, chat: bool) -> Any:
    tokenizer = handle.tokenizer
    if chat and getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
        return encoded["input_ids"]
    return tokenizer(prompt, return_tensors="pt")["input_ids"]


def check_context(handle: ModelHandle, prompt_tokens: int, max_new_tokens: int) -> None:
    context = int(handle.metadata.get("context_length") or 0)
    if context and prompt_tokens + max_new_tokens > context:
        raise BadInputError(f"the prompt is {prompt_tokens} tokens; with {max_new_tokens} new tokens that exceeds "
                            f"{handle.name}'s context of {context} tokens",
                            fix="shorten the prompt or ask for fewer new tokens")


def token_gaps_ms(stamps: list[float]) -> list[float]:
    """Milliseconds between consecutive tokens: each decode step's latency."""
    return [round((b - a) * 1e3, 3) for a, b in itertools.pairwise(stamps)]


def eos_ids(tokenizer: Any) -> set[int]:
    value = getattr(tokenizer, "eos_token_id", None)
    if value is None:
        return set()
    return {int(v) for v in value} if isinstance(value, (list, tuple, set)) else {int(value)}


class _Clock:
    """A transformers streamer that timestamps every generated token (the prompt arrives first)."""

    def __init__(self, on_token: Callable[[int], None] | None):
        self.stamps: list[float] = []
        self.tokens: list[int] = []
        self.prompt_seen = False
        self.on_token = on_token

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        now = time.perf_counter()
        for token in value.reshape(-1).tolist():
            self.stamps.append(now)
            self.tokens.append(int(token))
            if self.on_token is not None:
                self.on_token(int(token))

    def end(self) -> None:
        pass


def generate(handle: ModelHandle, prompt: str, settings: GenerationSettings | None = None,
             on_text: Callable[[str], None] | None = None) -> Generation:
    """Generate from ``prompt``; ``on_text`` receives the decoded text so far after each token."""
    import torch

    settings = settings or GenerationSettings()
    if handle.task != Task.GENERATE or handle.torch_module is None or handle.tokenizer is None:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model, not a text generator",
                               fix="open a causal language model (a GGUF file or a …ForCausalLM folder)")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    ids = prompt_ids(handle, prompt, settings.chat)
    check_context(handle, int(ids.shape[1]), settings.max_new_tokens)
    tokenizer = handle.tokenizer
    streamed: list[int] = []
    eos = eos_ids(tokenizer)

    def on_token(token: int) -> None:
        if token in eos:  # the end-of-sequence token ends the text; it is not part of it
            return
        streamed.append(token)
        if on_text is not None:
            on_text(tokenizer.decode(streamed, skip_special_tokens=True))

    clock = _Clock(on_token)
    options: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.sample,
                               "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
    if settings.sample:
        torch.manual_seed(settings.seed)
        options |= {"temperature": settings.temperature, "top_p": settings.top_p}
    else:
        options |= {"temperature": None, "top_p": None, "top_k": None}
    start = time.perf_counter()
    with torch.inference_mode():
        handle.torch_module.generate(ids, attention_mask=torch.ones_like(ids), streamer=clock, **options)
    end = time.perf_counter()
    stamps = clock.stamps
    decode = ((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0]
              else None)
    threads = settings.threads or torch.get_num_threads()
    return Generation(
        prompt=prompt, text=tokenizer.decode(streamed, skip_special_tokens=True), prompt_tokens=int(ids.shape[1]),
        new_tokens=streamed, ttft_ms=round(((stamps[0] if stamps else end) - start) * 1e3, 2),
        decode_tokens_per_s=None if decode is None else round(decode, 2), total_ms=round((end - start) * 1e3, 2),
        token_ms=token_gaps_ms(stamps),
        method=f"PyTorch fp32, transformers generate with KV cache, {threads} thread(s), "
               f"{'sampling' if settings.sample else 'greedy'}; time to first token = prompt in → first token out; "
               "decode tokens/s over the tokens after the first (perf_counter per streamed token)",
    )
