"""The score an early-exit classifier compares with its threshold, the same on every runtime.

``softmax``: the exit head's top softmax probability. ``gate``: a per-exit logistic regression on cheap
features of the head's logits that predicts "this exit's top-1 agrees with the final layer's" (fitted by
the plugin). A head trained to imitate a 1000-class teacher rarely puts more than 0.2 on any class, so its
top probability orders frames badly; the gate combines several views of the logits (and whether this exit
agrees with the one before, the strongest hint once there is one) into a probability of agreement, so one
threshold means the same at every exit. Plain numpy: onnxruntime and torch runs score identically.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURES = ("top probability", "margin of the top two probabilities", "normalised entropy",
            "margin of the top two logits", "agrees with the previous exit")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.reshape(-1).astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def top_probability(logits: np.ndarray) -> float:
    return float(_softmax(logits).max())


def features(logits: np.ndarray, previous: int | None) -> np.ndarray:
    """The gate's inputs for one sample; ``previous``: the earlier exit's top-1 class (None at the first exit)."""
    z = logits.reshape(-1).astype(np.float64)
    p = _softmax(z)
    second, first = np.partition(p, -2)[-2:]
    z_second, z_first = np.partition(z, -2)[-2:]
    entropy = float(-(p * np.log(np.maximum(p, 1e-12))).sum() / np.log(len(p)))
    agrees = 0.0 if previous is None else float(int(z.argmax()) == previous)
    return np.array([first, first - second, entropy, z_first - z_second, agrees])


def exit_score(logits: np.ndarray, gate: dict[str, Any] | None, previous: int | None) -> float:
    """The score at one exit: the top probability without a gate, else the gate's probability of agreement."""
    if gate is None:
        return top_probability(logits)
    value = float(np.dot(gate["weights"], features(logits, previous)) + gate["bias"])
    return float(1.0 / (1.0 + np.exp(-np.clip(value, -50.0, 50.0))))


def exit_scores(logits: list[np.ndarray], gates: list[dict[str, Any]] | None) -> list[float]:
    """Scores of every exit (the last, final one excluded) of one sample, in running order."""
    scores, previous = [], None
    for index, item in enumerate(logits):
        scores.append(exit_score(item, gates[index] if gates else None, previous))
        previous = int(item.argmax())
    return scores
