"""How faithfully a variant reproduces its baseline on the same frames.

Detectors: the baseline's detections (conf ≥ 0.25) are the targets, the variant's (conf ≥ 0.001)
the predictions; mAP50 and mAP50-95 over the frame set. Segmentation, pose and oriented-box models are
judged by their task's own IoU (``studio.evaluate.task_iou``: mask IoU, OKS, probiou) — ``mask_map50``,
``pose_map50``, ``obb_map50`` — with the box mAP50 beside it: masks that fall apart under INT8 while their
boxes hold must show. Classifiers: top-1 agreement and top-5 overlap. Tensor models: cosine similarity
of the flattened outputs. Each result carries its evidence (frames, targets) and a bootstrap interval over
frames (``studio.evaluate.evidence``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.evaluate.evidence import bootstrap_interval, evidence
from studio.evaluate.task_map import FrameScore, frame_score, summary
from studio.runtime.results import Classification, Detections

TARGET_CONF = 0.25  # the baseline's operating point: what the user would see as its detections
PREDICTION_CONF = 0.001  # the variant's full ranking, as mAP evaluation needs


def detection_fidelity(baseline: list[Detections], variant: list[Detections], *,
                       with_interval: bool = True) -> dict[str, Any]:
    return detection_summary([frame_score(b, v) for b, v in zip(baseline, variant, strict=True)],
                             with_interval=with_interval)


def detection_summary(scores: list[FrameScore], *, with_interval: bool = True) -> dict[str, Any]:
    result = summary(scores, unit="baseline", with_interval=with_interval)
    by = f"{result['iou']}; box map50 beside it" if "iou" in result else "box IoU"
    return result | {"method": f"variant detections (conf ≥ {PREDICTION_CONF}) scored against the baseline's "
                               f"(conf ≥ {TARGET_CONF}) as targets, Ultralytics ap_per_class; "
                               f"{result['metric']} matched by {by}"}


def classification_fidelity(baseline: list[Classification], variant: list[Classification], *,
                            with_interval: bool = True) -> dict[str, Any]:
    pairs = list(zip(baseline, variant, strict=True))
    agree = np.array([int(b.class_ids[0]) == int(v.class_ids[0]) for b, v in pairs], float)
    top5 = np.mean([len(set(b.class_ids[:5].tolist()) & set(v.class_ids[:5].tolist())) / 5 for b, v in pairs])
    top1 = round(float(agree.mean()), 4)
    interval = bootstrap_interval(lambda rows: float(agree[rows].mean()), len(agree)) if with_interval else None
    return {"metric": "top1_agreement", "value": top1, "top1_agreement": top1,
            "top5_overlap": round(float(top5), 4), "frames": len(pairs), "interval": interval,
            "evidence": evidence(len(pairs), len(pairs), "frames"),
            "method": "share of frames whose top-1 class equals the baseline's; mean top-5 set overlap"}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def tensor_fidelity(baseline: list[list[np.ndarray]], variant: list[list[np.ndarray]], *,
                    with_interval: bool = True) -> dict[str, Any]:
    values = np.array([cosine(b[0], v[0]) for b, v in zip(baseline, variant, strict=True)])
    interval = bootstrap_interval(lambda rows: float(values[rows].mean()), len(values)) if with_interval else None
    return {"metric": "cosine", "value": round(float(np.mean(values)), 5), "min": round(float(np.min(values)), 5),
            "frames": len(values), "interval": interval, "evidence": evidence(len(values), len(values), "frames"),
            "method": "mean cosine similarity of the first output, flattened"}


def compare_predictors(baseline_predictor: Any, variant_predictor: Any, frames: list[np.ndarray],
                       ctx: Any | None = None, *, with_interval: bool = True) -> dict[str, Any]:
    """Run both predictors on ``frames`` and score the variant against the baseline. Detections are reduced to
    their matches frame by frame, so no frame's masks outlive it."""
    base_results, variant_results, scores = [], [], []
    for index, frame in enumerate(frames):
        if ctx is not None:
            ctx.progress(index / len(frames), "measuring fidelity")
        base, variant = baseline_predictor(frame).result, variant_predictor(frame).result
        if isinstance(base, Detections) and isinstance(variant, Detections):
            scores.append(frame_score(base, variant))
        else:
            base_results.append(base)
            variant_results.append(variant)
    if scores:
        return detection_summary(scores, with_interval=with_interval)
    return compare_results(base_results, variant_results, with_interval=with_interval)


def compare_results(base_results: list[Any], variant_results: list[Any], *,
                    with_interval: bool = True) -> dict[str, Any]:
    """Score already computed results (same frames, same order) by the kind of result they are.

    ``with_interval=False`` skips the bootstrap (a search scoring hundreds of candidates).
    """
    first = base_results[0]
    if isinstance(first, Detections):
        return detection_fidelity(base_results, variant_results, with_interval=with_interval)
    if isinstance(first, Classification):
        return classification_fidelity(base_results, variant_results, with_interval=with_interval)
    return tensor_fidelity([r.arrays for r in base_results], [r.arrays for r in variant_results],
                           with_interval=with_interval)
