"""Compression variants side by side: size, params, latency ratio to FP32 (same run), fidelity.

For each model the plugins build every variant of its plan (quantization, pruning with and without
recovery, pruning + INT8, low-rank, early exit at two thresholds, the video cascade), then all are
timed round-robin on the same bikes.mp4 frames (every variant once per frame, order rotating) at 1
and 2 threads, and scored against FP32 on the fixed fidelity frame set.

    .venv/bin/python bench/optimize.py [--models zoo:yolov8s-fall zoo:yolov3-tiny-coco zoo:efficientnet-lite0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_predictors
from studio.evaluate.frames import fidelity_frames
from studio.loaders import load_model
from studio.media import bundled_video
from studio.optimize import graph_files
from studio.plugin_api import settings_from_dict
from studio.registry import default_registry
from studio.runtime.choice import RuntimeMode, runtime_mode
from studio.runtime.predictor import make_predictor
from studio.sources import take_frames
from studio.tasks import TaskContext

# (label, recipe steps) per model; every variant is built by the plugins from a fresh baseline.
RECOVER = {"recovery_steps": 100, "recovery_batch": 2}
DETECTOR = [
    ("int8 static", [("quantize.static_int8", {"outlier_report": False})]),
    ("int8 mixed", [("quantize.mixed_int8", {})]),
    ("int8 dynamic", [("quantize.dynamic_int8", {"ops": "all"})]),
    ("fp16", [("quantize.fp16", {})]),
    ("pruned 30%", [("prune.channels", {"ratio": 0.3})]),
    ("pruned 30% + recovery", [("prune.channels", {"ratio": 0.3, **RECOVER})]),
    ("pruned 50%", [("prune.channels", {"ratio": 0.5})]),
    ("pruned 50% + recovery", [("prune.channels", {"ratio": 0.5, **RECOVER})]),
    ("pruned 50% + int8", [("prune.channels", {"ratio": 0.5}), ("quantize.mixed_int8", {"target": 0.0})]),
    ("low-rank (rank ratio 0.5)", [("lowrank.svd", {"mode": "ratio", "rank_ratio": 0.5})]),
]
CASCADE = [("video cascade", [("early_exit.video_cascade", {"escalate_below": 0.3, "reuse_below": 4.0})])]
CLASSIFIER = [
    ("int8 static", [("quantize.static_int8", {"outlier_report": False})]),
    ("pruned 30%", [("prune.channels", {"ratio": 0.3})]),
    ("low-rank (rank ratio 0.5)", [("lowrank.svd", {"mode": "ratio", "rank_ratio": 0.5})]),
    ("early exit", [("early_exit.classifier", {"steps": 300})]),
]
PLANS = {"zoo:yolov8s-fall": DETECTOR + CASCADE, "zoo:yolov3-tiny-coco": DETECTOR,
         "zoo:efficientnet-lite0": CLASSIFIER}
EXIT_THRESHOLDS = (0.4, 0.8)


def _apply(base, steps, workdir: Path):
    registry = default_registry()
    handle, reports = base, []
    for plugin_id, settings in steps:
        plugin = registry.get(plugin_id)
        ctx = TaskContext(workdir=workdir)
        handle = plugin.apply(handle, settings_from_dict(plugin, settings, plugin.settings_version), ctx)
        reports += ctx.reports
    return handle, reports


def _note(label: str, reports: list[dict], seconds: float) -> str:
    note = f"built in {seconds:.0f} s"
    for report in reports:
        if "kept_in_float" in report and "sensitivity" in report:
            note += f"; kept in float: {', '.join(report['kept_in_float']) or 'nothing'}"
        if "fidelity_after_recovery" in report:
            note += (f"; fidelity (torch) before recovery {report['fidelity_before_recovery']['value']:.3f}, "
                     f"after {report['fidelity_after_recovery']['value']:.3f}")
        if "path_share" in report:
            note += f"; path share {report['path_share']}, measured fidelity {report['fidelity']['value']:.3f}"
    return note


def build(model_spec: str, workdir: Path) -> list[tuple[str, object, str]]:
    import json

    base = load_model(model_spec)
    rows = [("fp32", base, "")]
    for index, (label, steps) in enumerate(PLANS[model_spec]):
        start = time.perf_counter()
        variant, reports = _apply(base, steps, workdir / str(index))
        note = _note(label, reports, time.perf_counter() - start)
        if runtime_mode(variant) is RuntimeMode.EARLY_EXIT:
            for threshold in EXIT_THRESHOLDS:
                settings = json.dumps({"threshold": threshold})
                rows.append((f"{label} @ {threshold}", variant.replace(
                    metadata={**variant.metadata, "runtime_settings": settings}), note))
            continue
        rows.append((label, variant, note))
    return rows


def latencies(rows, threads: int, frames: list[np.ndarray]) -> list[float]:
    predictors = [make_predictor(h, "ort", threads=threads) for _, h, _ in rows]
    times: list[list[float]] = [[] for _ in rows]
    for index, frame in enumerate(frames):
        count = len(predictors)
        for offset in range(count):
            which = (index + offset) % count  # rotate who goes first
            start = time.perf_counter()
            predictors[which](frame)
            if index >= 3:
                times[which].append((time.perf_counter() - start) * 1e3)
    return [float(np.median(t)) for t in times]


def fidelity(rows) -> list[float]:
    base = rows[0][1]
    frames = fidelity_frames(25)
    reference = make_predictor(base, "ort", threads=2, conf=TARGET_CONF)
    values = []
    for _, handle, _ in rows:
        candidate = make_predictor(handle, "ort", threads=2, conf=PREDICTION_CONF)
        result = compare_predictors(reference, candidate, frames)
        values.append(f"{result['metric']} {result['value']:.3f}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PLANS))
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    frames = take_frames(bundled_video("bikes.mp4"), args.frames + 3)
    print("| model | variant | size MB | params | p50 1 thread | ratio to fp32 | p50 2 threads | ratio to fp32 "
          "| fidelity vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            rows = build(spec, Path(tmp) / spec.replace(":", "_"))
            one, two = latencies(rows, 1, frames), latencies(rows, 2, frames)
            scores = fidelity(rows)
            for i, (label, handle, note) in enumerate(rows):
                size = sum(f.stat().st_size for f in graph_files(handle)) / 1e6
                print(f"| {spec} | {label} | {size:.1f} | {handle.params / 1e6:.2f} M | {one[i]:.1f} ms | "
                      f"{one[0] / one[i]:.2f}× | {two[i]:.1f} ms | {two[0] / two[i]:.2f}× | {scores[i]} |")
                if note:
                    notes.append(f"{spec} {label}: {note}")
    print()
    print(f"Latency: median of {args.frames} bikes.mp4 frames (640×272, letterboxed) after 3 warm-up, end to end "
          "(pre + inference + post), onnxruntime CPU, all variants round-robin in one run. Fidelity on bus.jpg, "
          "zidane.jpg and 23 bikes.mp4 frames: detectors mAP50 of the variant (conf ≥ 0.001) against FP32's "
          "detections (conf ≥ 0.25; the float model scores 0.995 against itself), classifiers top-1 agreement.")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
