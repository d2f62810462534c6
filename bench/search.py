"""The search against the hand-made variants: does ``deploy-studio search`` find something at least as fast at the
same fidelity, and do its latency figures (timed while other trials build) agree with ``deploy-studio bench`` of
the same variant run alone?

1. ``deploy-studio search`` of the model with ``--spec`` (default ``bench/search_fall.toml``: input size ×
   FP16 / static INT8 / mixed INT8, 30 minutes, target 0.95) on local Ray with ``--workers`` workers.
2. The README's hand-made variants (FP16, static INT8, mixed INT8 at its defaults) built and judged alone by the
   same trial code on the same frames, each timed in the same way.
3. The search's best variant and the other front points published as ONNX files and timed by the
   ``deploy-studio bench`` CLI alone: their p50 against the figure the parallel search measured.

    .venv/bin/python bench/search.py [--model zoo:yolov8s-fall] [--spec bench/search_fall.toml]
        [--minutes 30] [--workers 2] [--frames "$(.venv/bin/python bench/media.py)"] [--out DIR]

Prints markdown tables (README "Search") and writes ``bench.json`` into the output folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from studio.machine import cpu_line
from studio.recipe import Recipe, Step, parse_recipe
from studio.search.driver import Search
from studio.search.payload import pack
from studio.search.spec import load_spec
from studio.search.trial import run_trial

HERE = Path(__file__).resolve().parent
HAND_MADE = {  # the README's compression table (bench/optimize.py), at each plugin's defaults
    "fp16": Recipe((Step("quantize.fp16", {}),)),
    "int8 static": Recipe((Step("quantize.static_int8", {}),)),
    "int8 mixed": Recipe((Step("quantize.mixed_int8", {}),)),
}


def hand_made_rows(model: str, spec, frames: str | None) -> list[dict]:
    packed_model, model_blob = pack(model)
    packed_data, data_blob = pack(frames) if frames else (None, None)
    rows = []
    for name, recipe in HAND_MADE.items():
        job = {"number": 0, "recipe": recipe.as_dict(), "spec": spec.as_dict(), "model": vars(packed_model),
               "data": vars(packed_data) if packed_data else None}
        result = run_trial(job, model_blob, data_blob)
        fidelity = result.get("fidelity") or result.get("quick_fidelity") or {}
        rows.append({"variant": name, "state": result["state"], "fidelity": fidelity.get("value"),
                     "metric": fidelity.get("metric"), "latency_p50_ms": (result.get("latency_ms") or {}).get("p50"),
                     "size_mb": result.get("size_mb"), "error": result.get("error") or result.get("reason")})
    return rows


def bench_alone(model: str, recipe_dict: dict, frames: str | None, spec, folder: Path) -> dict:
    """The variant published as an ONNX file, then `deploy-studio bench` of that file in its own process."""
    from studio.loaders import load_model
    from studio.optimize import graph_files, publish_graphs
    from studio.recipe import apply_recipe
    from studio.registry import default_registry
    from studio.tasks import TaskContext

    recipe = parse_recipe(recipe_dict)
    ctx = TaskContext(workdir=folder / "work")
    if frames:
        from studio.data import FrameSet

        ctx.frames = FrameSet.open(frames)
    variant = apply_recipe(load_model(model), recipe, default_registry(), ctx) if recipe.steps else load_model(model)
    graphs = graph_files(variant)
    target = folder / "model.onnx"
    publish_graphs(variant, recipe, graphs[:1], [target])
    command = [sys.executable, "-m", "studio.cli", "bench", str(target), "--runs", str(spec.runs), "--threads",
               str(spec.threads), "--runtime", spec.runtime, "--json"] + (["--frames", frames] if frames else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=True)
    report = json.loads(done.stdout)
    return {"p50": report["latency_ms"]["total"]["p50"], "input_shape": report["input_shape"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:yolov8s-fall")
    parser.add_argument("--spec", default=str(HERE / "search_fall.toml"))
    parser.add_argument("--minutes", type=float, default=None, help="replaces the spec's budget.minutes")
    parser.add_argument("--trials", type=int, default=None, help="replaces the spec's budget.trials")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--front", type=int, default=3, help="front points re-timed alone (the best first)")
    args = parser.parse_args()
    spec = load_spec(Path(args.spec))
    if args.minutes is not None or args.trials is not None:
        spec = dataclasses.replace(spec, minutes=args.minutes if args.minutes is not None else spec.minutes,
                                   trials=args.trials if args.trials is not None else spec.trials)
    out = Path(args.out or tempfile.mkdtemp(prefix="search-bench-"))
    started = time.monotonic()

    def show(row: dict) -> None:
        print(f"trial {row['number']}: {row['state']} {row.get('fidelity')} {row.get('latency_p50_ms')} ms "
              f"{row['summary']} {row.get('error') or ''}", file=sys.stderr, flush=True)

    summary = Search(args.model, spec, out / "search", workers=args.workers,
                     data=Path(args.frames) if args.frames else None, on_trial=show).run()
    search_minutes = (time.monotonic() - started) / 60
    hand = hand_made_rows(args.model, spec, args.frames)
    base_ms = summary["baseline"]["latency_p50_ms"]
    front = sorted((r for r in summary["trials"] if r["on_front"]), key=lambda r: r["latency_p50_ms"])
    alone = []
    for row in front[: args.front]:
        folder = out / f"alone-{row['number']:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        measured = bench_alone(args.model, row["recipe"], args.frames, spec, folder)
        alone.append({"number": row["number"], "summary": row["summary"], "search_p50": row["latency_p50_ms"],
                      "alone_p50": measured["p50"], "input_shape": measured["input_shape"],
                      "ratio": round(row["latency_p50_ms"] / measured["p50"], 3)})
    result = {"machine": cpu_line(), "model": args.model, "spec": spec.as_dict(), "workers": args.workers,
              "frames": args.frames or "bundled media", "search_minutes": round(search_minutes, 1),
              "summary": summary, "hand_made": hand, "alone": alone}
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{args.model}, {cpu_line()}; search {search_minutes:.1f} min, {args.workers} workers, "
          f"{len(summary['trials'])} trials ({summary['counts']}); results in {out}\n")
    print("| trial | variant | fidelity | p50 ms | speed-up | size MB | front |\n|---|---|---|---|---|---|---|")
    for row in sorted(summary["trials"], key=lambda r: (r["state"] != "complete", r["latency_p50_ms"] or 1e9)):
        fidelity = "—" if row["fidelity"] is None else f"{row['metric']} {row['fidelity']:.3f}"
        latency = "—" if row["latency_p50_ms"] is None else f"{row['latency_p50_ms']:.1f}"
        speed = "—" if row.get("speedup") is None else f"{row['speedup']:.2f}×"
        size = "—" if row["size_mb"] is None else f"{row['size_mb']:.1f}"
        state = "" if row["state"] == "complete" else f" ({row['state']})"
        print(f"| {row['number']} | {row['summary']}{state} | {fidelity} | {latency} | {speed} | {size} | "
              f"{'★' if row['on_front'] else ''} |")
    print(f"\nthe model itself: {base_ms} ms p50\n\n| hand-made | fidelity | p50 ms | speed-up |\n|---|---|---|---|")
    for row in hand:
        speed = f"{base_ms / row['latency_p50_ms']:.2f}×" if base_ms and row["latency_p50_ms"] else "—"
        fidelity = "—" if row["fidelity"] is None else f"{row['metric']} {row['fidelity']:.3f}"
        print(f"| {row['variant']} ({row['state']}) | {fidelity} | {row['latency_p50_ms']} | {speed} |")
    print("\n| front point | search p50 ms (parallel) | bench alone p50 ms | ratio |\n|---|---|---|---|")
    for row in alone:
        print(f"| {row['number']}: {row['summary']} | {row['search_p50']:.2f} | {row['alone_p50']:.2f} | "
              f"{row['ratio']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
