"""Teacher-forced token agreement: how often a variant predicts the reference model's next token.

The reference (FP32 PyTorch) generates greedily from each prompt; every variant then reads the
prompt plus the reference's tokens in one forward pass, and at each of those positions its argmax
is compared with the reference's next token. Unlike free-running comparison, one early difference
does not make every later token "wrong".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.lm.generate import GenerationSettings, generate, prompt_ids
from studio.model import ModelHandle

PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three fruits.",
    "Explain what a CPU does in one sentence.",
    "How many days are in a week?",
    "Give a synonym for happy.",
    "What colour is the sky on a clear day?",
    "Name a famous scientist.",
    "Translate 'good morning' into Spanish.",
    "What is two plus two?",
)


def reference_continuations(handle: ModelHandle, prompts: tuple[str, ...] = PROMPTS,
                            tokens: int = 32) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, greedy continuation) pairs from the FP32 PyTorch model."""
    pairs = []
    for prompt in prompts:
        ids = prompt_ids(handle, prompt, chat=True)[0].tolist()
        result = generate(handle, prompt, GenerationSettings(max_new_tokens=tokens))
        pairs.append((ids, result.new_tokens))
    return pairs


def argmax_of(logits_of: Any) -> Any:
    """A ``predict(sequence, prompt_length)`` from a ``studio.lm.runners.token_logits`` function."""
    return lambda sequence, prefill=None: logits_of(sequence, prefill).argmax(-1)


def agreement(predict: Any, pairs: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
    """Share of reference tokens the variant predicts, teacher-forced, over every pair.

    ``predict(sequence, prompt_length)`` returns the argmax token at every position."""
    hits = total = 0
    for prompt, continuation in pairs:
        if not continuation:
            continue
        sequence = prompt + continuation
        predicted = predict(sequence, len(prompt))  # an early-exit model reads the prompt at full depth
        # the prediction at position i is the token at i + 1: compare over the continuation
        start = len(prompt) - 1
        expected = np.asarray(continuation)
        got = np.asarray(predicted[start:start + len(continuation)])
        hits += int((got == expected).sum())
        total += len(continuation)
    return {"agreement": round(hits / max(total, 1), 4), "tokens": total, "prompts": len(pairs),
            "method": "teacher-forced: the variant reads prompt + the FP32 model's greedy tokens; share of positions "
                      "where its argmax is the FP32 model's next token"}
