"""Export time, size and parity per format and precision, as ``deploy-studio export`` measures them.

Every cell is one real ``run_export`` into a temporary folder: the converter, the precision step (INT8
calibration, FP16 conversion) and the verification by the format's own runtime all count in the
export time. Prints a Markdown table (the one in README) and, with ``--json``, the full reports.

    .venv/bin/python bench/export.py [--models zoo:yolov8s-fall …] [--precisions fp32 fp16 int8]
                                     [--formats onnx openvino tflite coreml] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from studio import offline
from studio.errors import StudioError
from studio.export import run_export
from studio.reports import with_kind

MODELS = ["zoo:yolov8s-fall", "zoo:yolov3-tiny-coco", "zoo:efficientnet-lite0"]


def _agreement(item: dict) -> str:
    parity = item.get("parity")
    if not parity:
        return "spec valid, needs macOS to run" if not item.get("spec", {}).get("problems") else "spec problems"
    agreement = parity["agreement"]
    return f"{agreement['metric']} {agreement['value']:.3f}"


def _detail(item: dict) -> str:
    if "tensor_dtypes" in item:
        dtypes = item["tensor_dtypes"]
        return ", ".join(f"{count} {name}" for name, count in sorted(dtypes.items()) if name != "int32") + " tensors"
    if "weights" in item:
        return f"{item['weights']['constexpr_dequantize_ops']} int8 weight tensors"
    if "fake_quantize_ops" in item:
        return f"{item['fake_quantize_ops']} FakeQuantize, {item['kept_float']} decoding ops float"
    return item.get("runtime", "").split(" (")[0].split("-")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    parser.add_argument("--formats", nargs="+", default=["onnx", "openvino", "tflite", "coreml"])
    parser.add_argument("--json", type=Path, help="also write every ExportReport here")
    args = parser.parse_args()
    offline.apply()
    reports = []
    print("| model | precision | format | size MB | total s | convert + verify s | max abs diff vs FP32 "
          "| agreement with FP32 | notes |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            for precision in args.precisions:
                for fmt in args.formats:  # one format per run: a refusal of one does not hide the others
                    out = Path(tmp) / f"{spec.replace(':', '_')}-{precision}-{fmt}"
                    try:  # converters print their progress: keep stdout for the table
                        started = time.perf_counter()
                        with contextlib.redirect_stdout(sys.stderr):
                            report = run_export(spec, [fmt], out, precision=precision)
                        wall = time.perf_counter() - started
                    except StudioError as exc:
                        print(f"| {spec} | {precision} | {fmt} | – | – | – | – | refused | {exc} |", flush=True)
                        continue
                    reports.append(report)
                    item = report["exports"][0]
                    parity = with_kind(item["parity"]) if item.get("parity") else None
                    diff = parity["max_abs_diff"] if parity is not None and parity["kind"] == "vision" else None
                    print(f"| {spec} | {precision} | {fmt} | {item['size_mb']:.1f} | {wall:.1f} | "
                          f"{item['export_seconds']:.1f} | "
                          f"{'–' if diff is None else f'{diff:.2g}'} | {_agreement(item)} | {_detail(item)} |",
                          flush=True)
    print()
    print("Total: the whole `run_export` (load, the precision step, conversion, verification); convert + verify: "
          "the exporter alone (for ONNX the INT8/FP16 variant is built before it, for the other formats inside "
          "it). Verification runs 12 bundled frames through the format's own runtime. Agreement: detectors "
          "mAP50 of the export's detections (conf ≥ 0.001) against the source "
          "FP32 ONNX's (conf ≥ 0.25); classifiers top-1 agreement. Max abs diff over raw outputs.")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
