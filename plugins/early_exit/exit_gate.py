"""The exit gate: per exit, a logistic regression that predicts "this exit's top-1 agrees with the final layer".

Fitted on the training side (the frames the heads learned from, not augmented) with that agreement as
the label and ``studio.runtime.exit_score.features`` of the exit's logits as inputs; the threshold is then
chosen on the choosing frames, which the gate never saw, so a gate that is over-confident on its own
frames only moves the threshold, not the reported figures. Newton's method with an L2 penalty on
standardised features (a few features, a few hundred frames: exact and instant, no extra dependency); the
standardisation is folded into the weights so the runtime computes one dot product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.train_data import spread

GATE_FRAMES = 1024  # the training side is scored up to this many frames (spread over all of it)
L2 = 1.0  # ridge penalty on standardised weights: keeps a gate finite when one exit (nearly) always agrees


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """(weights, bias) on the raw features; the penalty is applied to standardised ones."""
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-9, std, np.inf)  # a constant feature gets weight 0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    ridge = np.diag([l2] * (z.shape[1] - 1) + [0.0])  # the bias is not penalised
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        gradient = z.T @ (p - y) + ridge @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + ridge + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - (weights * mean).sum())


def exit_logits(net: Any, frames: list[np.ndarray], model: ModelHandle, batch: int = 32) -> list[np.ndarray]:
    """Every exit's logits and the final logits for ``frames`` (torch, no augmentation): (frames, classes) each."""
    import torch

    from studio.train_data import plain_batch

    size = model.required_image_input().size
    device = next(net.parameters()).device
    parts: list[list[np.ndarray]] = []
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            outputs = net.eval().all_logits(plain_batch(frames[start:start + batch], model, size).to(device))
            parts.append([o.float().cpu().numpy() for o in outputs])
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def fit_gates(net: Any, frames: list[np.ndarray], model: ModelHandle) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one gate per exit, the report): fitted on ``frames`` (the training side)."""
    from studio.runtime.exit_score import FEATURES, features

    frames = spread(frames, GATE_FRAMES)
    logits = exit_logits(net, frames, model)
    final = logits[-1].argmax(1)
    gates, agreement = [], []
    for index, exit_logits_ in enumerate(logits[:-1]):
        previous = logits[index - 1].argmax(1) if index else [None] * len(frames)
        x = np.stack([features(row, None if p is None else int(p)) for row, p in zip(exit_logits_, previous,
                                                                                      strict=True)])
        y = (exit_logits_.argmax(1) == final).astype(float)
        weights, bias = fit_logistic(x, y)
        gates.append({"weights": [round(float(w), 6) for w in weights], "bias": round(bias, 6)})
        agreement.append(round(float(y.mean()), 4))
    return gates, {"features": list(FEATURES), "frames": len(frames), "agreement_on_these_frames": agreement,
                   "gates": gates, "fitted_on": "the training side (the heads' own frames, not augmented); "
                                                "label: the exit's top-1 equals the final layer's"}
