"""``deploy-studio optimize``: replay a recipe on a model, measure baseline and variant, write OUT_DIR.

Everything is built in a staging folder beside OUT_DIR and moved in at the end, so OUT_DIR never
holds half a result; the source model is only ever read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError, UnsupportedError
from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_predictors
from studio.evaluate.frames import judging_frames
from studio.lm.variants import is_language_model
from studio.loaders import load_model
from studio.media import bundled_video
from studio.metrics import summarize_ms
from studio.model import ModelHandle
from studio.recipe import Recipe, apply_recipe, load_recipe, resolved_recipe, save_recipe
from studio.registry import default_registry
from studio.report_text import runs_on_text
from studio.runtime.choice import RuntimeMode, runtime_mode
from studio.sources import take_frames
from studio.tasks import TaskContext
from studio.timing import interleaved_ms

OUTPUT_FILES = ("model.onnx", "model.pt", "model", "report.json", "recipe.toml",
                *(f"segment_{i}.onnx" for i in range(8)))


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise StudioError("exists and is not a folder", path=out_dir, fix="choose another output folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise StudioError("the output folder is not empty", path=out_dir,
                          fix="choose an empty or new folder, or pass --force to replace its results")


def graph_files(handle: ModelHandle) -> list[Path]:
    """The ONNX file(s) that run ``handle``: one graph, or one per segment for an early-exit variant."""
    if runtime_mode(handle) is RuntimeMode.EARLY_EXIT:
        from studio.runtime.early_exit import ensure_segments

        return ensure_segments(handle)
    from studio.runtime.onnx_export import ensure_onnx

    return [ensure_onnx(handle)]


def graph_ops(path: Path) -> dict[str, int]:
    """Operator counts of a graph (how a reader sees that INT8 nodes are really there)."""
    import onnx

    return dict(Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node))


def measure_pair(baseline: ModelHandle, variant: ModelHandle, *, threads: int, runs: int,
                 ctx: TaskContext, runtime: str = "ort",
                 ran_on: dict[str, Any] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Inference latency of both on the same frames, interleaved (alternating order) in one run, in ``runtime``;
    ``ran_on`` (when given) receives the variant backend's ``describe()``: what really ran."""
    from studio.runtime.predictor import make_predictor

    predictors = [make_predictor(h, runtime, threads=threads) for h in (baseline, variant)]
    if ran_on is not None:
        ran_on.update(predictors[1].backend.describe())
    # The model's own frames when given: their sizes decide a rectangular input's cost.
    frames = (ctx.frames.judging_frames(runs + 3, ctx)[0] if ctx.frames is not None
              else take_frames(bundled_video("bikes.mp4"), runs + 3))
    frames = (frames * (1 + (runs + 3) // max(len(frames), 1)))[:runs + 3]  # a short set is timed again
    # the first 3 frames warm both sessions up
    timings = interleaved_ms(predictors, frames, warmup=3,
                             on_input=lambda index: ctx.progress(index / len(frames), "measuring latency"))
    return summarize_ms(timings[0]), summarize_ms(timings[1])


def judged_fidelity(baseline: ModelHandle, variant: ModelHandle, threads: int, frames: int, ctx: TaskContext,
                    runtime: str = "ort", side: str = "judging") -> dict:
    """The variant against the baseline on up to ``frames`` judging frames, both in ``runtime``; ``side``
    "choosing": on frames held out of the calibration side instead (``choosing_frames``), for a choice whose
    result the judging side then reports."""
    from studio.evaluate.frames import choosing_frames
    from studio.runtime.predictor import make_predictor

    base = make_predictor(baseline, runtime, threads=threads, conf=TARGET_CONF)
    candidate = make_predictor(variant, runtime, threads=threads, conf=PREDICTION_CONF)
    images, note = (choosing_frames if side == "choosing" else judging_frames)(frames, ctx)
    result = compare_predictors(base, candidate, images, ctx)
    return result | {"frame_set": note}


def _side(handle: ModelHandle, graphs: Path | list[Path], latency: dict[str, float]) -> dict[str, Any]:
    graphs = [graphs] if isinstance(graphs, Path) else graphs
    ops: Counter[str] = Counter()
    for graph in graphs:
        ops.update(graph_ops(graph))
    return {"name": handle.display_name, "file": str(graphs[0]),
            "size_mb": round(sum(g.stat().st_size for g in graphs) / 1e6, 3), "params": handle.params,
            "gflops": None if handle.gflops is None else round(handle.gflops, 3), "latency_ms": latency,
            "ops": dict(ops)}


def true_accuracy(handle: ModelHandle, labels_dir: Path, threads: int = 2) -> dict[str, Any]:
    """mAP of ``handle`` against a labelled folder (YOLO or COCO format), by its task's own IoU when the labels
    are its task's (polygons, keypoints, oriented boxes), read with the keypoint shape its decoder uses."""
    from studio.evaluate.labelled import labelled_map, load_labelled
    from studio.runtime.predictor import make_predictor

    predictor = make_predictor(handle, "ort", threads=threads, conf=PREDICTION_CONF)
    items = load_labelled(Path(labels_dir), handle.labels, task=str(handle.task),
                          kpt_shape=getattr(predictor.options, "kpt_shape", None))
    return labelled_map(predictor, items) | {"labels": str(labels_dir)}


def run_optimize(model_spec: str, recipe_path: Path, out_dir: Path, *, force: bool = False, threads: int = 1,
                 runs: int = 20, fidelity_frames_count: int = 25, trust: bool = False,
                 labels_dir: Path | None = None, frames: Path | None = None, runtime: str = "ort",
                 ctx: TaskContext | None = None) -> dict[str, Any]:
    recipe = resolved_recipe(load_recipe(Path(recipe_path)), default_registry())  # checked before any work
    _check_out_dir(Path(out_dir).expanduser().resolve(), force)
    ctx = ctx or TaskContext()
    if frames is not None:
        from studio.data import FrameSet

        ctx.frames = FrameSet.open(frames)
    report, _ = optimize_model(load_model(model_spec, trust=trust), recipe, out_dir, force=force, threads=threads,
                               runs=runs, fidelity_frames_count=fidelity_frames_count, labels_dir=labels_dir, ctx=ctx,
                               runtime=runtime)
    return report


def optimize_model(baseline: ModelHandle, recipe: Recipe, out_dir: Path, *, force: bool = False, threads: int = 1,
                   runs: int = 20, fidelity_frames_count: int = 25, labels_dir: Path | None = None,
                   quick: bool = False, ctx: TaskContext | None = None,
                   runtime: str = "ort") -> tuple[dict[str, Any], ModelHandle]:
    """(report, variant): ``recipe`` applied to ``baseline``, measured against it in ``runtime`` (the variant's
    ONNX graph in onnxruntime or OpenVINO, its PyTorch module in torch), published into ``out_dir``."""
    ctx = ctx or TaskContext()
    out_dir = Path(out_dir).expanduser().resolve()
    _check_out_dir(out_dir, force)
    registry = default_registry()
    recipe = resolved_recipe(recipe, registry)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # The pid in the name lets a parent that saw this process killed remove what it left (subprocess_job).
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-{os.getpid()}-", dir=out_dir.parent))
    try:
        ctx.workdir = staging / "work"
        recipe_ctx = ctx.sub(0.0, 0.7)
        variant = apply_recipe(baseline, recipe, registry, recipe_ctx)
        ctx.reports.extend(recipe_ctx.reports)
        result = staging / "result"
        result.mkdir()
        if is_language_model(baseline):
            from studio.lm.optimize import language_report
            from studio.lm.publish import write_language_model

            report = language_report(baseline, variant, threads=threads, quick=quick, ctx=ctx.sub(0.7, 1.0))
            written = write_language_model(variant, result / "model")
            from studio.machine import cpu_description

            report |= {"model": baseline.display_name, "recipe": recipe.as_dict(), "steps": ctx.reports,
                       "machine": cpu_description(),
                       "output": str(out_dir / "model") if written else str(out_dir / "recipe.toml")}
            save_recipe(recipe, result / "recipe.toml")
            _write_json(result / "report.json", report)
            _publish(result, out_dir)
            return report, variant
        base_graph, variant_graphs = graph_files(baseline)[0], graph_files(variant)
        if runtime != "ort" and runtime_mode(variant) is not RuntimeMode.PLAIN:
            raise UnsupportedError(f"a {runtime_mode(variant).value} variant is measured as its segments on "
                                   "onnxruntime only", fix="drop --runtime, or use --runtime ort")
        ran_on: dict[str, Any] = {}
        base_latency, variant_latency = measure_pair(baseline, variant, threads=threads, runs=runs,
                                                     ctx=ctx.sub(0.7, 0.85), runtime=runtime, ran_on=ran_on)
        fidelity = judged_fidelity(baseline, variant, threads, fidelity_frames_count, ctx.sub(0.85, 1.0), runtime)
        accuracy = ({"baseline": true_accuracy(baseline, labels_dir), "variant": true_accuracy(variant, labels_dir)}
                    if labels_dir else None)
        names = (["model.onnx"] if len(variant_graphs) == 1
                 else [f"segment_{i}.onnx" for i in range(len(variant_graphs))])
        publish_graphs(variant, recipe, variant_graphs, [result / name for name in names])
        save_recipe(recipe, result / "recipe.toml")
        if variant.torch_module is not None:  # pruned, factorised, fine-tuned: keep the PyTorch model too
            from studio.checkpoint import save_checkpoint

            save_checkpoint(variant, result / "model.pt", recipe.as_dict())
        report = _report(baseline, variant, base_graph, [result / n for n in names], base_latency, variant_latency,
                         fidelity, recipe, ctx, threads, runs, out_dir, ran_on)
        report["warnings"] += [fidelity["evidence"]["warning"]] if fidelity["evidence"].get("warning") else []
        if accuracy:
            report["accuracy"] = accuracy
        if (result / "model.pt").exists():
            report["pytorch_model"] = str(out_dir / "model.pt")
        _write_json(result / "report.json", report)
        _publish(result, out_dir)
        return report, variant
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_graphs(variant: ModelHandle, recipe: Recipe, graphs: list[Path], targets: list[Path]) -> None:
    """Copy the variant's graphs to ``targets``, each carrying the variant's metadata, so that the published file
    re-opens as the model it is (labels, task, decoder, pre-processing), not as a bare graph. The graphs are the
    studio's cache or the source's own file: only the copies are written to."""
    import json

    from studio.artifact_metadata import artifact_metadata, write_onnx_metadata

    meta = artifact_metadata(variant.replace(metadata={**variant.metadata, "recipe": json.dumps(recipe.as_dict())}))
    for source, target in zip(graphs, targets, strict=True):
        shutil.copyfile(source, target)
        write_onnx_metadata(target, meta)


def _report(baseline, variant, base_graph, variant_graphs, base_latency, variant_latency, fidelity, recipe, ctx,
            threads, runs, out_dir, ran_on: dict[str, Any]) -> dict[str, Any]:
    speedup = base_latency["p50"] / variant_latency["p50"]
    # A step's own warnings (e.g. a search's "target met" on thin evidence) belong in the report's list.
    warnings = [f"{step['plugin']}: {w}" for step in ctx.reports for detail in step.get("details", [])
                for w in detail.get("warnings", [])]
    if speedup < 1.0:
        warnings.append(f"the variant is slower than the baseline here ({speedup:.2f}× of its speed)")
    from studio.machine import cpu_description

    frames_used = ctx.frames.describe() if ctx.frames is not None else {"source": "bundled media"}
    return {
        "model": baseline.display_name,
        "recipe": recipe.as_dict(),
        "frames": frames_used,
        "output": str(out_dir / variant_graphs[0].name),
        "files": [str(out_dir / g.name) for g in variant_graphs],
        "baseline": _side(baseline, base_graph, base_latency),
        "variant": _side(variant, variant_graphs, variant_latency) | {"file": str(out_dir / variant_graphs[0].name)},
        "speedup_p50": round(speedup, 3),
        "size_ratio": round(sum(g.stat().st_size for g in variant_graphs) / base_graph.stat().st_size, 4),
        "fidelity": fidelity,
        "steps": ctx.reports,
        "warnings": warnings,
        "method": {
            "latency": f"{runs_on_text(ran_on)}, {threads} thread(s), {runs} frames of "
                       f"{'the judging side of ' + frames_used['source'] if ctx.frames is not None else 'bikes.mp4'}"
                       " after 3 warm-up, baseline and variant interleaved in alternating order, pre + inference + "
                       "post per frame",
            "machine": cpu_description(),
            "runtime": ran_on,
            "size": "bytes of each ONNX file (the baseline is its float ONNX graph)",
            "gflops": baseline.gflops_method,
        },
    }


def _write_json(path: Path, data: Any) -> None:
    import json

    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _publish(result: Path, out_dir: Path) -> None:
    """Move the finished files into ``out_dir``: one rename for a new folder, else one per file."""
    if not out_dir.exists():
        os.rename(result, out_dir)
        return
    for name in OUTPUT_FILES:
        if (out_dir / name).is_dir():  # a folder (a language model's files) cannot be replaced by a rename
            shutil.rmtree(out_dir / name)
        if (result / name).exists():
            os.replace(result / name, out_dir / name)
        elif (out_dir / name).exists():
            (out_dir / name).unlink()  # a stale file from an earlier result would now be misleading
