"""What the plugins that train something (distillation recovery, early-exit heads) share."""

from __future__ import annotations

from typing import Any

import numpy as np


def optimise(optimiser: Any, loss: Any, losses: list[float]) -> None:
    """One optimiser step on ``loss``; its value is kept for the report."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    losses.append(loss.item())


def loss_trend(losses: list[float]) -> tuple[float | None, float | None]:
    """Mean loss over the first and the last tenth of training (None when nothing was trained)."""
    if not losses:
        return None, None
    tenth = max(1, len(losses) // 10)
    return round(float(np.mean(losses[:tenth])), 5), round(float(np.mean(losses[-tenth:])), 5)
