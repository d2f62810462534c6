"""The exit threshold, chosen for a fidelity target and reported on frames it was not chosen on.

Each frame runs through the variant's ONNX segments on onnxruntime (one thread), every segment timed,
every exit's answer and score kept (the variant's own: its gate's, or the top probability), and through
the full model, timed alternately with it. A threshold's mean latency and top-1 agreement with the full
model then follow for any threshold without running again. The threshold is chosen on the choosing frames
(held out from the training side) as the fastest whose agreement reaches the target; the judging side,
which chose nothing, gives the figures the user reads (with a bootstrap interval and the number of frames).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext

# Candidate thresholds: every 0.05 (a head's top probability over 1000 classes lives low, a gate's
# probability of agreement anywhere), finer near 1, where a strict fidelity target usually lands.
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
              0.92, 0.94, 0.96, 0.98, 0.99)
NEVER = 1.01  # a threshold no probability reaches: every sample runs the whole network
TIMING_REPEATS = 3  # each frame is timed this many times (median), so one scheduler hiccup does not move a mean


@dataclass(frozen=True)
class Sample:
    """One frame: the full model's time, and per segment (time, score, class) in running order; ``top``: each
    segment's top softmax probability (the score a variant without a gate exits on)."""

    full_ms: float
    exits: tuple[tuple[float, float, int], ...]
    top: tuple[float, ...] = ()


def with_softmax(samples: list[Sample]) -> list[Sample]:
    """The same frames scored by the top probability: what the same heads give without their gate."""
    return [Sample(s.full_ms, tuple((ms, top, cls) for (ms, _, cls), top in zip(s.exits, s.top, strict=True)), s.top)
            for s in samples]


def measure(model: ModelHandle, variant: ModelHandle, frames: list[np.ndarray], ctx: TaskContext,
            what: str, repeats: int = TIMING_REPEATS) -> list[Sample]:
    """Per frame: the full model and every segment of the variant timed on onnxruntime, 1 thread."""
    from studio.runtime.backends import OrtBackend
    from studio.runtime.early_exit import ensure_segments
    from studio.runtime.exit_score import exit_scores, top_probability
    from studio.runtime.predictor import make_predictor
    from studio.runtime.preprocess import prepare

    sessions = [OrtBackend(path, threads=1) for path in ensure_segments(variant)]
    full = make_predictor(model, "ort", threads=1)
    image = model.required_image_input()  # exit heads are built for EfficientNet-Lite classifiers only
    gates = getattr(variant.torch_module, "gates", None)
    samples = []
    for index, frame in enumerate(frames):
        ctx.progress(index / max(len(frames), 1), f"measuring exits on the {what} ({index + 1}/{len(frames)})")
        tensor = prepare(frame, image, image.size, False)[0]
        full_ms: list[float] = []
        spent: list[list[float]] = [[] for _ in sessions]
        for _ in range(repeats):
            start = time.perf_counter()
            full.backend.run(tensor)
            full_ms.append((time.perf_counter() - start) * 1e3)
            x, logits = tensor, []
            for position, segment in enumerate(sessions):
                start = time.perf_counter()
                outputs = segment.session.run(None, {segment.input_name: x})
                spent[position].append((time.perf_counter() - start) * 1e3)
                logits.append(outputs[-1])
                x = outputs[0]
        tops = tuple(top_probability(item) for item in logits)
        scores = [*exit_scores(logits[:-1], gates), tops[-1]]  # the final segment's score is never compared
        samples.append(Sample(float(np.median(full_ms)), tuple(
            (float(np.median(times)), score, int(item.argmax()))
            for times, score, item in zip(spent, scores, logits, strict=True)), tops))
    return samples


def _exit_of(sample: Sample, threshold: float) -> int:
    last = len(sample.exits) - 1
    return next((i for i, (_, top, _) in enumerate(sample.exits[:-1]) if top >= threshold), last)


def _arrays(threshold: float, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(exit taken, latency, agreement, full latency) per sample."""
    taken = np.array([_exit_of(s, threshold) for s in samples])
    latency = np.array([sum(t for t, _, _ in s.exits[: e + 1]) for s, e in zip(samples, taken, strict=True)])
    agree = np.array([s.exits[e][2] == s.exits[-1][2] for s, e in zip(samples, taken, strict=True)], dtype=float)
    full = np.array([s.full_ms for s in samples])
    return taken, latency, agree, full


def point(threshold: float, samples: list[Sample]) -> dict[str, Any]:
    """Exit shares, mean latency, speed-up and top-1 agreement at one threshold."""
    taken, latency, agree, full = _arrays(threshold, samples)
    count = len(samples[0].exits)
    return {"threshold": threshold, "exit_share": [round(float(np.mean(taken == i)), 4) for i in range(count)],
            "mean_ms": round(float(latency.mean()), 3), "full_model_mean_ms": round(float(full.mean()), 3),
            "speedup": round(float(full.mean() / latency.mean()), 3), "top1_agreement": round(float(agree.mean()), 4)}


def curve(samples: list[Sample]) -> list[dict[str, Any]]:
    return [point(threshold, samples) for threshold in THRESHOLDS]


def choose(samples: list[Sample], target: float) -> tuple[float | None, list[dict[str, Any]]]:
    """(the fastest threshold whose agreement reaches ``target``, or None; the curve it was chosen from)."""
    points = curve(samples)
    reaching = [p for p in points if p["top1_agreement"] >= target]
    if not reaching:
        return None, points
    # Ties in speed go to the higher (safer) threshold.
    best = min(reaching, key=lambda p: (p["mean_ms"], -p["threshold"]))
    return best["threshold"], points


def judged(threshold: float, samples: list[Sample]) -> dict[str, Any]:
    """The figures at ``threshold`` on the judging side, with bootstrap intervals over frames and the evidence."""
    from studio.evaluate.evidence import bootstrap_interval, evidence

    _, latency, agree, full = _arrays(threshold, samples)
    return point(threshold, samples) | {
        "top1_agreement_interval": bootstrap_interval(lambda idx: float(agree[idx].mean()), len(samples)),
        "speedup_interval": bootstrap_interval(lambda idx: float(full[idx].mean() / latency[idx].mean()),
                                               len(samples)),
        "evidence": evidence(len(samples), len(samples), "frames")}


def separation(samples: list[Sample]) -> list[float | None]:
    """Per exit, how well the score ranks frames whose answer agrees with the final layer above those whose
    answer does not (ROC AUC: 0.5 is chance, 1.0 a perfect ranking; None where one kind is missing)."""
    result: list[float | None] = []
    for index in range(len(samples[0].exits) - 1):
        scores = np.array([s.exits[index][1] for s in samples])
        agree = np.array([s.exits[index][2] == s.exits[-1][2] for s in samples])
        good, bad = scores[agree], scores[~agree]
        if not len(good) or not len(bad):
            result.append(None)
            continue
        # Mann-Whitney: the share of (agreeing, disagreeing) pairs ordered correctly, ties counted half.
        wins = (good[:, None] > bad[None, :]).mean() + 0.5 * (good[:, None] == bad[None, :]).mean()
        result.append(round(float(wins), 4))
    return result
