"""Static INT8 with the stem quantized (settings version 1) against the stem kept float (version 2), per model.

Each model (pruned by ``--ratio`` first, without recovery: speed does not depend on the weights) is quantized
both ways on the bundled calibration frames; every variant is timed interleaved with the unpruned float model on
onnxruntime (p50 of ``--runs``), and the two ways alternate ``--repeats`` times so that drift on a shared host
shows as spread rather than as a difference.

    .venv/bin/python bench/int8_stem.py [--models zoo:yolov3-tiny-coco zoo:yolov8s-fall ...] [--ratio 0.5]
        [--threads 1] [--runs 40] [--repeats 2]

Prints a markdown table (README, "The stem stays float").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from studio.loaders import load_model
from studio.machine import cpu_line
from studio.optimize import measure_pair
from studio.recipe import Recipe, Step, apply_recipe
from studio.registry import default_registry
from studio.tasks import TaskContext

MODELS = ["zoo:yolov3-tiny-coco", "zoo:yolov8s-fall", "zoo:efficientnet-lite0", "zoo:yolo11n-pose"]
WAYS = {"stem INT8 (v1)": 1, "stem float (v2)": 2}


def _speedups(name: str, args) -> tuple[dict[str, list[float]], list[str]]:
    registry = default_registry()
    base = load_model(name)
    model = base
    if args.ratio:
        prune = Recipe((Step("prune.channels", {"ratio": args.ratio}, 4),))
        model = apply_recipe(base, prune, registry, TaskContext(workdir=Path(tempfile.mkdtemp())))
    found: dict[str, list[float]] = {way: [] for way in WAYS}
    stem: list[str] = []
    for _ in range(args.repeats):
        for way, version in WAYS.items():
            ctx = TaskContext(workdir=Path(tempfile.mkdtemp()))
            recipe = Recipe((Step("quantize.static_int8", {"outlier_report": False}, version),))
            variant = apply_recipe(model, recipe, registry, ctx)
            base_latency, variant_latency = measure_pair(base, variant, threads=args.threads, runs=args.runs, ctx=ctx)
            found[way].append(base_latency["p50"] / variant_latency["p50"])
            report = next(d for d in ctx.reports[-1]["details"] if "float_stem" in d)
            if report["float_stem"]:
                stem = report["float_stem"]["nodes"]
    return found, stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--ratio", type=float, default=0.5, help="prune first by this ratio (0: the model as is)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for name in args.models:
        found, stem = _speedups(name, args)
        cells = [" / ".join(f"{s:.2f}×" for s in found[way]) for way in WAYS]
        rows.append(f"| {name} | {args.ratio:.0%} | {' | '.join(cells)} | {', '.join(f'`{n}`' for n in stem)} |")
        print(rows[-1], flush=True)
    print(f"\nmeasured on: {cpu_line()}; onnxruntime {args.threads} thread(s), p50 of {args.runs} interleaved runs "
          f"against the unpruned float model, {args.repeats} alternations\n")
    print(f"| model | pruned | {' | '.join(WAYS)} | kept float |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
