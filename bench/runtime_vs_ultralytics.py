"""The studio's ONNX Runtime FP32 path against Ultralytics' own PyTorch predict, end to end per frame.

Same model, same frames (bikes.mp4, decoded up front), same thread count, same conf/iou. Each pair
runs the two back to back in alternating order, so the machine's noise falls on both alike; the
figure is the median over pairs of (Ultralytics time / studio time), plus each side's median.

    .venv/bin/python bench/runtime_vs_ultralytics.py [--model zoo:yolov8s-fall] [--pairs 40] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from studio.loaders import load_model
from studio.media import bundled_video
from studio.runtime.predictor import Predictor, make_backend
from studio.runtime.ultralytics_runner import UltralyticsRunner
from studio.sources import take_frames


def measure(model: str, threads: int, pairs: int, imgsz: int, warmup: int = 5) -> dict:
    handle = load_model(model)
    cv2.setNumThreads(threads)
    frames = take_frames(bundled_video("bikes.mp4"), pairs + warmup)
    studio = Predictor(handle, make_backend(handle, "ort", threads=threads), imgsz=imgsz)
    reference = UltralyticsRunner(handle, threads=threads, imgsz=imgsz)

    def studio_ms(frame):
        start = time.perf_counter()
        studio(frame)
        return (time.perf_counter() - start) * 1e3

    def reference_ms(frame):
        return reference(frame)[2]  # wall time of predict()

    for frame in frames[:warmup]:
        studio_ms(frame), reference_ms(frame)
    ours, theirs = [], []
    for index, frame in enumerate(frames[warmup:]):
        if index % 2:
            theirs.append(reference_ms(frame))
            ours.append(studio_ms(frame))
        else:
            ours.append(studio_ms(frame))
            theirs.append(reference_ms(frame))
    ratios = np.asarray(theirs) / np.asarray(ours)
    return {
        "threads": threads, "imgsz": imgsz, "pairs": len(ours), "input_shape": list(studio.last_input.shape),
        "studio_ort_ms_p50": round(float(np.median(ours)), 2),
        "ultralytics_torch_ms_p50": round(float(np.median(theirs)), 2),
        "speedup_median_of_pairs": round(float(np.median(ratios)), 3),
        "speedup_p10_p90": [round(float(np.percentile(ratios, 10)), 3), round(float(np.percentile(ratios, 90)), 3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:yolov8s-fall")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(args.model, threads, args.pairs, args.imgsz) for threads in args.threads]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.model}, bikes.mp4 frames, end to end per frame (pre + infer + post), interleaved pairs")
    print("| threads | input | studio ORT FP32 p50 | Ultralytics predict p50 | speed-up (median of pairs, p10–p90) |")
    print("|---|---|---|---|---|")
    for r in rows:
        shape = "×".join(map(str, r["input_shape"][2:]))
        print(f"| {r['threads']} | {shape} | {r['studio_ort_ms_p50']} ms | {r['ultralytics_torch_ms_p50']} ms | "
              f"{r['speedup_median_of_pairs']}× ({r['speedup_p10_p90'][0]}–{r['speedup_p10_p90'][1]}) |")


if __name__ == "__main__":
    main()
