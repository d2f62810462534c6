"""One way to run any language-model handle, whatever made it (see ``studio.lm.variants``).

* ``text_generator(handle)`` → an object whose ``generate(prompt, settings, on_text)`` returns a timed
  ``Generation`` (PyTorch, onnxruntime-genai or early-exit decoding);
* ``token_logits(handle)`` → ``f(token ids) -> (len, vocab) logits``, one teacher-forced pass, for
  agreement and perplexity;
* ``text_encoder(handle)`` → an object whose ``encode(sentences)`` returns (N, D) embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from studio.errors import UnsupportedError
from studio.lm.generate import Generation, GenerationSettings, generate
from studio.lm.variants import lm_runtime
from studio.model import ModelHandle, Task, task_noun


class TorchGenerator:
    def __init__(self, handle: ModelHandle, threads: int = 2):
        self.handle, self.threads = handle, threads
        self.runtime = "PyTorch fp32"

    def size_bytes(self) -> int:
        return self.handle.size_bytes

    def generate(self, prompt: str, settings: GenerationSettings | None = None,
                 on_text: Callable[[str], None] | None = None) -> Generation:
        from dataclasses import replace

        settings = replace(settings or GenerationSettings())  # a copy: the caller's settings stay as given
        settings.threads = settings.threads or self.threads
        return generate(self.handle, prompt, settings, on_text)


def _needs_generator(handle: ModelHandle) -> None:
    if handle.task != Task.GENERATE:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model, not a text generator",
                               fix="open a causal language model (a GGUF file or a …ForCausalLM folder)")


def text_generator(handle: ModelHandle, threads: int = 2) -> Any:
    _needs_generator(handle)
    runtime = lm_runtime(handle)
    if runtime == "genai":
        from pathlib import Path

        from studio.lm.genai import GenaiGenerator

        return GenaiGenerator(handle, Path(handle.metadata["genai_folder"]), threads=threads)
    if runtime == "early_exit":
        from studio.lm.early_exit import EarlyExitGenerator

        return EarlyExitGenerator(handle, threads=threads)
    return TorchGenerator(handle, threads)


def token_logits(handle: ModelHandle, threads: int = 2) -> Callable[..., np.ndarray]:
    """``f(sequence, prefill=None)``: logits at every position of a token sequence, teacher-forced (in one
    pass; an early-exit model reads ``prefill`` tokens at full depth, then decodes the rest token by token)."""
    _needs_generator(handle)
    runtime = lm_runtime(handle)
    if runtime == "genai":
        generator = text_generator(handle, threads)
        og = generator.og

        def genai_logits(sequence: list[int], prefill: int | None = None) -> np.ndarray:
            params = og.GeneratorParams(generator.model)
            params.set_search_options(max_length=len(sequence) + 1)
            runner = og.Generator(generator.model, params)
            runner.append_tokens([sequence])
            return np.asarray(runner.get_output("logits"))[0].astype(np.float32)

        return genai_logits
    if runtime == "early_exit":
        return text_generator(handle, threads).teacher_forced_logits
    import torch

    torch.set_num_threads(threads)

    def torch_logits(sequence: list[int], prefill: int | None = None) -> np.ndarray:
        with torch.inference_mode():
            return handle.torch_module(torch.tensor([sequence])).logits[0].float().numpy()

    return torch_logits


class TorchEncoder:
    def __init__(self, handle: ModelHandle, threads: int = 2):
        self.handle, self.threads = handle, threads
        self.runtime = "PyTorch fp32 (sentence-transformers)"

    def encode(self, sentences: list[str]) -> np.ndarray:
        import torch

        from studio.lm.embed import embed

        torch.set_num_threads(self.threads)
        return embed(self.handle, sentences)


def text_encoder(handle: ModelHandle, threads: int = 2) -> Any:
    if handle.task != Task.EMBED:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model, not a text encoder",
                               fix="open a sentence-transformers folder (zoo:minilm-l6)")
    if lm_runtime(handle) == "ort_encoder":
        from studio.lm.encoder_onnx import OrtEncoder

        return OrtEncoder(handle, threads=threads)
    return TorchEncoder(handle, threads)
