"""``deploy-studio export``: one model (or the variant a recipe makes) to several formats, each verified.

Every format is written into a staging folder inside OUT_DIR and renamed into place only after its
own runtime has re-opened it and its parity has been measured, and only when every requested format
succeeded (a refusal or failure of the third format leaves the first two unwritten); an existing output is replaced only
with ``force``; nothing is ever written beside the source model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from studio.child_python import pid_alive
from studio.errors import StudioError, UnsupportedError
from studio.lm.variants import is_language_model
from studio.loaders import load_model
from studio.model import ModelHandle, Task
from studio.plugin_api import settings_from_dict
from studio.recipe import Recipe, Step, apply_recipe, load_recipe, resolved_recipe
from studio.registry import default_registry
from studio.tasks import TaskContext

PRECISIONS = ("fp32", "fp16", "int8", "int4")
LANGUAGE_TARGETS = {"onnx": "-onnx", "tflite": ".tflite", "coreml": ".mlpackage"}  # name suffix per format


def _exporters(formats: list[str]) -> list[Any]:
    from studio.plugin_api import Kind

    available = {getattr(p, "format", p.id): p for p in default_registry().by_kind(Kind.EXPORT)}
    missing = [f for f in formats if f not in available]
    if missing:
        raise UnsupportedError(f"no exporter for {', '.join(missing)}",
                               fix=f"available formats: {', '.join(sorted(available))}")
    return [available[f] for f in formats]


def _precision_steps(model: ModelHandle, precision: str) -> list[Step]:
    if precision == "fp16":
        return [Step("quantize.fp16", {}, 1)]
    if precision == "int8":  # detectors need the sensitivity search (a plain INT8 YOLO head finds nothing)
        detector = model.task in (Task.DETECT, Task.SEGMENT, Task.POSE)
        plugin = "quantize.mixed_int8" if detector else "quantize.static_int8"
        return [Step(plugin, {}, 1)]
    return []


def _target(out_dir: Path, model: ModelHandle, exporter: Any) -> Path:
    return out_dir / f"{model.name}{exporter.suffix}"


def _check_destination(out_dir: Path, model: ModelHandle, exporters: list[Any], force: bool) -> None:
    for source in model.source_paths:
        if out_dir.resolve() == Path(source).resolve().parent:
            raise StudioError("refusing to write beside the source model", path=out_dir,
                              fix="choose another output folder (-o)")
    taken = [_target(out_dir, model, e) for e in exporters if _target(out_dir, model, e).exists()]
    if taken and not force:
        raise StudioError(f"{', '.join(p.name for p in taken)} already exist(s)", path=out_dir,
                          fix="pass --force to replace, or choose another folder")


def _publish(produced: Path, target: Path) -> None:
    """Atomic for a file (rename over); for a folder the old one is moved aside first, then removed."""
    if target.is_dir() and not target.is_symlink():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
        os.replace(produced, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(produced, target)


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of exports that were killed (their process is gone) are removed."""
    for folder in out_dir.glob(".export-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def run_export(model_spec: str, formats: list[str], out_dir: Path, *, precision: str = "fp32",
               recipe_path: Path | None = None, force: bool = False, trust: bool = False,
               frames: Path | None = None, ctx: TaskContext | None = None) -> dict[str, Any]:
    ctx = ctx or TaskContext()
    if frames is not None:  # INT8 calibration and every parity check then use the model's own frames
        from studio.data import FrameSet

        ctx.frames = FrameSet.open(frames)
    if precision not in PRECISIONS:
        raise UnsupportedError(f"unknown precision '{precision}'", fix=f"choose one of {', '.join(PRECISIONS)}")
    registry = default_registry()
    model = load_model(model_spec, trust=trust)
    steps = list(load_recipe(Path(recipe_path)).steps) if recipe_path else []
    if is_language_model(model):
        return _run_language_export(model, steps, formats, Path(out_dir), precision, force, ctx)
    if precision == "int4":
        raise UnsupportedError("INT4 export is for language models (weight-only MatMulNBits)",
                               fix="export vision models at fp32, fp16 or int8")
    exporters = _exporters(formats)
    recipe = resolved_recipe(Recipe(tuple(steps + _precision_steps(model, precision))), registry)
    # Converters from PyTorch (TFLite, CoreML) set their precision themselves, from the float variant.
    float_recipe = resolved_recipe(Recipe(tuple(steps)), registry)
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_destination(out_dir, model, exporters, force)
    for exporter in exporters:  # every refusal that needs no work comes before any file is written
        settings_from_dict(exporter, {}, exporter.settings_version)
        own = getattr(exporter, "native_precisions", None)
        if own is not None and precision not in own:
            raise UnsupportedError(f"{precision.upper()} {exporter.title} is not available yet",
                                   fix=f"export {precision} to onnx or openvino, or {'/'.join(own)} to "
                                       f"{exporter.format}")
        if own is not None and not float_recipe.steps:  # a converter from the model as loaded: ask it now
            reasons = exporter.check(model)
            if reasons:
                raise UnsupportedError(f"{exporter.title} cannot export {model.name}: {'; '.join(reasons)}")
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out_dir))
    try:
        ctx.workdir = staging / "work"
        variants: dict[bool, ModelHandle] = {}

        def variant_for(native: bool) -> ModelHandle:
            if native not in variants:
                chosen = float_recipe if native else recipe
                built = apply_recipe(model, chosen, registry, ctx.sub(0.0, 0.3)) if chosen.steps else model
                extra = {"recipe": json.dumps(chosen.as_dict())}
                if not native and precision != "fp32":  # parity of an FP16/INT8 graph is measured against FP32
                    from studio.runtime.onnx_export import ensure_onnx

                    extra["reference_graph"] = str(ensure_onnx(variant_for(True)))
                variants[native] = built.replace(metadata={**built.metadata, **extra})
            return variants[native]

        reports = []
        for index, exporter in enumerate(exporters):
            own = getattr(exporter, "native_precisions", None)
            native = own is not None
            variant = variant_for(native)
            reasons = exporter.check(variant)
            if reasons:
                raise UnsupportedError(f"{exporter.title} cannot export {variant.name}: {'; '.join(reasons)}")
            share = 0.3 + 0.7 * index / len(exporters), 0.3 + 0.7 * (index + 1) / len(exporters)
            overrides = {"precision": precision} if native else {}
            reports.append(_export_one(exporter, variant, model, out_dir, staging, precision, overrides,
                                       ctx.sub(*share)))
        # All or nothing: files are published only once every format has been written and verified.
        for report in reports:
            _publish(report.pop("_produced"), Path(report["path"]))
        return {"model": model.display_name, "precision": precision, "recipe": recipe.as_dict(), "exports": reports,
                **_measured_with(ctx)}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_language_export(model: ModelHandle, steps: list[Step], formats: list[str], out_dir: Path,
                         precision: str, force: bool, ctx: TaskContext) -> dict[str, Any]:
    """A language model (or its recipe's variant) as an ONNX folder, TFLite or CoreML file, each verified."""
    unknown = [f for f in formats if f not in LANGUAGE_TARGETS]
    if unknown:
        raise UnsupportedError(f"{', '.join(unknown)} export of a language model is not available",
                               fix=f"export a language model to {', '.join(LANGUAGE_TARGETS)}")
    if precision != "fp32" and set(formats) - {"onnx"}:
        raise UnsupportedError(f"{precision.upper()} language models are exported to ONNX only here",
                               fix="export TFLite/CoreML at fp32, or ONNX at int8/int4")
    if precision == "fp16":
        raise UnsupportedError("FP16 language models are not exported on CPU", fix="choose fp32, int8 or int4")
    out_dir = out_dir.expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {f: out_dir / f"{model.name}{LANGUAGE_TARGETS[f]}" for f in formats}
    for source in model.source_paths:
        if out_dir == Path(source).resolve().parent or out_dir == Path(source).resolve():
            raise StudioError("refusing to write beside the source model", path=out_dir,
                              fix="choose another output folder (-o)")
    taken = [t for t in targets.values() if t.exists()]
    if taken and not force:
        raise StudioError(f"{', '.join(p.name for p in taken)} already exist(s)", path=out_dir,
                          fix="pass --force to replace, or choose another folder")
    registry = default_registry()
    recipe = resolved_recipe(Recipe(tuple(steps)), registry)
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out_dir))
    try:
        ctx.workdir = staging / "work"
        variant = apply_recipe(model, recipe, registry, ctx.sub(0.0, 0.3)) if recipe.steps else model
        reports = []
        for index, fmt in enumerate(formats):
            part = ctx.sub(0.3 + 0.7 * index / len(formats), 0.3 + 0.7 * (index + 1) / len(formats))
            produced = staging / targets[fmt].name
            start = time.perf_counter()
            if fmt == "onnx":
                from studio.lm.export import export_onnx_folder, onnx_ready

                details = export_onnx_folder(onnx_ready(variant, precision, part), model, produced, part)
            else:
                from studio.lm import mobile_export

                convert = mobile_export.tflite_language if fmt == "tflite" else mobile_export.coreml_language
                details = convert(variant, produced, part)
            size = (sum(f.stat().st_size for f in produced.rglob("*") if f.is_file()) if produced.is_dir()
                    else produced.stat().st_size)
            reports.append({"_produced": produced, "format": fmt, "path": str(targets[fmt]), "precision": precision,
                            "size_mb": round(size / 1e6, 3), "export_seconds": round(time.perf_counter() - start, 2),
                            **details})
        for report in reports:  # all or nothing, as for vision models
            _publish(report.pop("_produced"), Path(report["path"]))
        return {"model": model.display_name, "precision": precision, "recipe": recipe.as_dict(), "exports": reports,
                **_measured_with(ctx)}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _measured_with(ctx: TaskContext) -> dict[str, Any]:
    """The frames the checks ran on and the CPU they ran on (INT8 parity depends on both)."""
    from studio.machine import cpu_description

    return {"frames": ctx.frames.describe() if ctx.frames is not None else {"source": "bundled media"},
            "machine": cpu_description()}


def _export_one(exporter, variant: ModelHandle, model: ModelHandle, out_dir: Path, staging: Path,
                precision: str, overrides: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    settings = settings_from_dict(exporter, overrides, exporter.settings_version)
    produced = staging / f"{model.name}{exporter.suffix}"
    start = time.perf_counter()
    details = exporter.export(variant, settings, produced, ctx)
    seconds = time.perf_counter() - start
    target = _target(out_dir, model, exporter)
    size = (sum(f.stat().st_size for f in produced.rglob("*") if f.is_file()) if produced.is_dir()
            else produced.stat().st_size)
    return {"_produced": produced, "format": exporter.format, "path": str(target), "precision": precision,
            "size_mb": round(size / 1e6, 3), "export_seconds": round(seconds, 2), **details}
