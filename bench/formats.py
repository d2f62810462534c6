"""Every format × precision of the zoo's detector and classifier, each run in the runtime that will run it.

The table in the README ("Formats, measured in their own runtimes") is this script's output. Each model's
cells come from ``studio.format_bench`` (``deploy-studio bench MODEL --formats …``): exported (or taken
from --out when an earlier run wrote them), re-opened by path, timed interleaved on the same frames,
judged against the source model on frames nothing was calibrated on, peak memory in a fresh process.

    .venv/bin/python bench/formats.py [--models zoo:yolov8s-fall zoo:efficientnet-lite0]
        [--formats onnx openvino tflite coreml] [--precisions fp32 fp16 int8] [--runs 30] [--threads 1]
        [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from studio import offline
from studio.format_bench import FormatBenchSettings, run_format_bench, table_text

MODELS = ["zoo:yolov8s-fall", "zoo:efficientnet-lite0"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--formats", nargs="+", default=["onnx", "openvino", "tflite", "coreml"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fidelity-frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full reports here")
    args = parser.parse_args()
    offline.apply()
    reports = []
    with tempfile.TemporaryDirectory(prefix="formats-") as scratch:
        for model in args.models:
            out = (args.out or Path(scratch)) / model.replace(":", "_")
            settings = FormatBenchSettings(formats=tuple(args.formats), precisions=tuple(args.precisions), out_dir=out,
                                           threads=args.threads, runs=args.runs, fidelity_frames=args.fidelity_frames)
            report = run_format_bench(model, settings)
            reports.append(report)
            print(f"\n### {report['model']}\n\n{table_text(report)}\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
