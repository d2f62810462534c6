"""Sentence embeddings with the encoder's own pooling and normalisation (sentence-transformers)."""

from __future__ import annotations

import numpy as np

from studio.errors import UnsupportedError
from studio.model import ModelHandle, Task, task_noun
from studio.vectors import unit_rows


def embed(handle: ModelHandle, sentences: list[str], batch_size: int = 16) -> np.ndarray:
    """(N, D) float32 embeddings, L2-normalised when the model's pipeline normalises."""
    if handle.task != Task.EMBED or handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model, not a text encoder",
                               fix="open a sentence-transformers folder (zoo:minilm-l6)")
    if not sentences:
        raise UnsupportedError("no sentences to embed", fix="give at least one sentence")
    vectors = handle.torch_module.encode(sentences, batch_size=batch_size, convert_to_numpy=True,
                                         show_progress_bar=False)
    return np.asarray(vectors, np.float32)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = unit_rows(vectors)
    return unit @ unit.T
