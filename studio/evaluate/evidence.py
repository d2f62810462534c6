"""How much a fidelity figure rests on: its evidence (frames, targets) and a bootstrap interval.

A figure measured on a dozen boxes reads like a verdict and is not one: every fidelity result carries
the count it was measured on, a 95 % percentile-bootstrap interval over frames (frames are the unit
that was sampled, so they are what is resampled), and a warning when the count is below
``MIN_TARGETS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MIN_TARGETS = 50  # fewer targets (boxes; frames for classifiers) than this: a hint, not a verdict
RESAMPLES = 200
LEVEL = 0.95
SEED = 0
OWN_FRAMES_FIX = ("give frames of the model's own domain: --frames PATH on the command line, or "
                  "'Frames for judging and calibration' in the window")


def bootstrap_interval(statistic: Callable[[np.ndarray], float], frames: int,
                       resamples: int = RESAMPLES) -> dict[str, Any] | None:
    """The central ``LEVEL`` interval of ``statistic(frame indices)`` over frames drawn with replacement."""
    if frames < 2:
        return None  # one frame resampled is always itself: no interval to speak of
    rng = np.random.default_rng(SEED)
    values = [statistic(rng.integers(0, frames, frames)) for _ in range(resamples)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"low": round(float(low), 4), "high": round(float(high), 4), "level": LEVEL,
            "method": f"percentile bootstrap over the {frames} frames, {resamples} resamples, seed {SEED}"}


def evidence(frames: int, count: int, unit: str) -> dict[str, Any]:
    """What a figure was measured on, and whether that is enough to judge by."""
    result: dict[str, Any] = {"frames": frames, "count": count, "unit": unit, "enough_at": MIN_TARGETS,
                              "thin": count < MIN_TARGETS}
    if result["thin"]:
        result["warning"] = (f"thin evidence: {count} {unit} on {frames} frames (fewer than {MIN_TARGETS}): "
                             f"a hint, not a verdict; {OWN_FRAMES_FIX}")
    return result


METRIC_LABELS = {"mask_map50": "mask mAP50", "pose_map50": "pose mAP50 (OKS)", "obb_map50": "OBB mAP50 (probiou)"}


def metric_label(metric: str) -> str:
    """How a report names a fidelity metric: the task metrics spelled out, the others by their key."""
    return METRIC_LABELS.get(metric, metric)


def interval_text(result: dict[str, Any]) -> str:
    """'0.74 [0.52–0.88] on 26 baseline boxes in 12 frames' for a fidelity result."""
    text = f"{result.get('value')}"
    interval = result.get("interval")
    if interval:
        text += f" [{interval['low']}–{interval['high']}]"
    proof = result.get("evidence")
    if proof:
        text += f" on {proof['count']} {proof['unit']}" + (f" in {proof['frames']} frames"
                                                            if proof["unit"] != "frames" else "")
        if proof["thin"]:
            text += " (thin evidence)"
    return text
