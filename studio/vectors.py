"""Row-wise vector helpers shared by the language-model code (embeddings, cosines, retrieval)."""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # a zero row stays zero instead of becoming NaN


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a new array, the input's dtype kept for floats)."""
    vectors = np.asarray(vectors)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), EPS)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    return (unit_rows(a) * unit_rows(b)).sum(axis=1)
