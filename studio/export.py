"""``deploy-studio export``: one model (or the variant a recipe makes) to several formats, each verified.

One pipeline for vision and language models. What can be exported is the capability table the plugins
declare (``studio.capabilities``): every refusal it implies comes before any work. A precision an
exporter does not make itself comes from the quantizer the registry names for it, as a recipe step.
Every format is written by its exporter plugin into a staging folder inside OUT_DIR (``_export_one``:
staging, timing, size) and renamed into place only after its own runtime has re-opened it and its
parity has been measured, and only when every requested format succeeded (a refusal or failure of the
third format leaves the first two unwritten); an existing output is replaced only with ``force``;
nothing is ever written beside the source model. A recipe whose last steps quantized the ONNX graph reaches a
converter that cannot take such a graph (TFLite, CoreML) through its float variant: the converter makes the
same precision itself, calibrated again in its own format, and the item says so (``requantized``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from studio import capabilities
from studio.atomic import publish
from studio.child_python import pid_alive
from studio.errors import StudioError, UnsupportedError
from studio.loaders import load_model
from studio.model import ModelHandle
from studio.plugin_api import LANGUAGE, settings_from_dict
from studio.recipe import Recipe, apply_recipe, load_recipe, resolved_recipe
from studio.registry import default_registry
from studio.reports import ExportItem, ExportReport
from studio.tasks import TaskContext


def _target(out_dir: Path, model: ModelHandle, exporter: Any) -> Path:
    return out_dir / f"{model.name}{capabilities.suffix(exporter, capabilities.model_kind(model))}"


def _makes_precision(exporter: Any, model: ModelHandle, precision: str) -> bool:
    """Whether ``exporter`` makes ``precision`` itself from the float variant (else a quantizer step does)."""
    entry = capabilities.row(exporter, capabilities.model_kind(model), model.task)
    return entry is not None and precision in entry.native


def _check_destination(out_dir: Path, model: ModelHandle, exporters: list[Any], force: bool) -> None:
    for source in model.source_paths:  # a language model's source may be the folder itself
        if out_dir.resolve() in (Path(source).resolve().parent, Path(source).resolve()):
            raise StudioError("refusing to write beside the source model", path=out_dir,
                              fix="choose another output folder (-o)")
    taken = [_target(out_dir, model, e) for e in exporters if _target(out_dir, model, e).exists()]
    if taken and not force:
        raise StudioError(f"{', '.join(p.name for p in taken)} already exist(s)", path=out_dir,
                          fix="pass --force to replace, or choose another folder")


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of exports that were killed (their process is gone) are removed."""
    for folder in out_dir.glob(".export-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _refusal(model: ModelHandle, exporters: list[Any], precision: str, registry: Any) -> UnsupportedError | None:
    """The first reason the table gives not to export ``model`` at ``precision`` to ``exporters``."""
    kind = capabilities.model_kind(model)
    found = capabilities.precision_refusal(kind, precision, registry)
    for exporter in exporters:
        found = found or capabilities.refusal(exporter, kind, precision, model.task, registry)
    return found


def run_export(model_spec: str, formats: list[str], out_dir: Path, *, precision: str = "fp32",
               recipe_path: Path | None = None, force: bool = False, trust: bool = False,
               frames: Path | None = None, settings: dict[str, dict[str, Any]] | None = None,
               ctx: TaskContext | None = None) -> ExportReport:
    """``settings``: exporter settings by format over their defaults (``{"tflite": {"int8_search_units": 4}}``);
    the precision is always ``precision``'s."""
    ctx = ctx or TaskContext()
    settings = settings or {}
    if frames is not None:  # INT8 calibration and every parity check then use the model's own frames
        from studio.data import FrameSet

        ctx.frames = FrameSet.open(frames)
    registry = default_registry()
    unknown = capabilities.precision_refusal(None, precision, registry)
    if unknown is not None:
        raise unknown
    model = load_model(model_spec, trust=trust)
    steps = list(load_recipe(Path(recipe_path)).steps) if recipe_path else []
    exporters = capabilities.exporters_for(formats, registry)
    refused = _refusal(model, exporters, precision, registry)
    if refused is not None:
        raise refused
    stray = sorted(set(settings) - {e.format for e in exporters})
    if stray:
        raise StudioError(f"settings given for {', '.join(stray)}, which is not exported",
                          fix=f"give settings only for {', '.join(e.format for e in exporters)}")
    if any("precision" in given for given in settings.values()):
        raise StudioError("the precision is not an exporter setting here", fix="give it as the export's precision")
    # Converters that set their precision themselves (OpenVINO, TFLite, CoreML) start from the float
    # variant; the others get the variant the precision's quantizer makes.
    float_recipe = resolved_recipe(Recipe(tuple(steps)), registry)
    needed = [] if all(_makes_precision(e, model, precision) for e in exporters) else \
        capabilities.precision_steps(model, precision, registry, recipe=steps)
    recipe = resolved_recipe(Recipe(tuple(steps + needed)), registry)
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_destination(out_dir, model, exporters, force)
    for exporter in exporters:  # every refusal that needs no work comes before any file is written
        settings_from_dict(exporter, settings.get(exporter.format), exporter.settings_version)
        if _makes_precision(exporter, model, precision) and not float_recipe.steps:
            # a converter from the model as loaded: ask it now
            reasons = exporter.check(model)
            if reasons:
                raise UnsupportedError(f"{exporter.title} cannot export {model.name}: {'; '.join(reasons)}")
        # A format that cannot take this model at this precision (INT8 TFLite of RT-DETR) says so before any work.
        reasons = getattr(exporter, "precision_reasons", lambda *_: [])(model, precision)
        if reasons:
            raise UnsupportedError(f"{exporter.title} cannot export {model.name}: {'; '.join(reasons)}")
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out_dir))
    try:
        ctx.workdir = staging / "work"
        variants: dict[str, ModelHandle] = {}
        requant = _trailing_quantization(steps, model, registry) if precision == "fp32" else None

        def variant_for(quantized: bool | str) -> ModelHandle:
            """The quantized (True) or float (False) variant, or "stripped": the recipe without its trailing
            quantizer steps (what a converter that quantizes in its own format starts from)."""
            key = str(quantized)
            if key not in variants:
                if quantized is True or quantized is False:
                    chosen = recipe if quantized else float_recipe
                else:
                    assert requant is not None, "a stripped variant exists only for a recipe that quantizes"
                    chosen = resolved_recipe(Recipe(tuple(steps[:requant[0]])), registry)
                built = apply_recipe(model, chosen, registry, ctx.sub(0.0, 0.3)) if chosen.steps else model
                variants[key] = built.replace(metadata={**built.metadata, "recipe": json.dumps(chosen.as_dict())})
            return variants[key]

        written: list[tuple[Path, ExportItem]] = []
        for index, exporter in enumerate(exporters):
            native = _makes_precision(exporter, model, precision)
            variant = variant_for(not native and bool(needed))
            reference, made_at, overrides = _reference(model, variant_for), precision, (
                {**settings.get(exporter.format, {}), **({"precision": precision} if native else {})})
            reasons = exporter.check(variant)
            if reasons and requant is not None and _makes_precision(exporter, model, requant[1]):
                # The recipe quantized an ONNX graph this converter cannot take (TFLite and CoreML quantize
                # from a float model): it gets the float variant and makes the same precision itself,
                # calibrated again in its own format, judged against that float variant.
                variant = reference = variant_for("stripped")
                made_at, overrides = requant[1], {**overrides, "precision": requant[1]}
                reasons = exporter.check(variant)
            if reasons:
                raise UnsupportedError(f"{exporter.title} cannot export {variant.name}: {'; '.join(reasons)}")
            share = 0.3 + 0.7 * index / len(exporters), 0.3 + 0.7 * (index + 1) / len(exporters)
            produced, item = _export_one(exporter, variant, reference, model, out_dir, staging, made_at, overrides,
                                         ctx.sub(*share))
            if made_at != precision and requant is not None:
                item["requantized"] = (f"the recipe's {', '.join(s.plugin for s in steps[requant[0]:])} made an "
                                       f"ONNX graph {exporter.title} cannot convert; it quantized the float variant "
                                       f"to {made_at} itself, calibrated again in its own format")
            written.append((produced, item))
        # All or nothing: files are published only once every format has been written and verified.
        for produced, item in written:
            publish(produced, Path(item["path"]))
        measured = _measured_with(ctx)
        return {"model": model.display_name, "precision": precision, "recipe": recipe.as_dict(),
                "exports": [item for _, item in written], "frames": measured["frames"], "machine": measured["machine"]}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _trailing_quantization(steps: list[Any], model: ModelHandle, registry: Any) -> tuple[int, str] | None:
    """Where a recipe's trailing quantizer steps start and the precision they make (INT8, FP16…), or None."""
    from studio.plugin_api import Kind

    cut = len(steps)
    while cut and getattr(registry.plugins.get(steps[cut - 1].plugin), "kind", None) == Kind.QUANTIZE:
        cut -= 1
    if cut == len(steps):
        return None
    for precision in capabilities.provided(capabilities.model_kind(model), registry):
        if any(capabilities.step_makes(step, precision, capabilities.model_kind(model), registry)
               for step in steps[cut:]):
            return cut, precision
    return None


def _reference(model: ModelHandle, variant_for: Any) -> ModelHandle:
    """What an export is verified against: a vision export against its float variant's graph; a language
    export against the PyTorch model as loaded (an onnxruntime variant has no PyTorch form left to compare)."""
    return model if capabilities.model_kind(model) == LANGUAGE else variant_for(False)


def _measured_with(ctx: TaskContext) -> dict[str, Any]:
    """The frames the checks ran on and the CPU they ran on (INT8 parity depends on both)."""
    from studio.machine import cpu_description

    return {"frames": ctx.frames.describe() if ctx.frames is not None else {"source": "bundled media"},
            "machine": cpu_description()}


def _export_one(exporter: Any, variant: ModelHandle, reference: ModelHandle, model: ModelHandle, out_dir: Path,
                staging: Path, precision: str, overrides: dict[str, Any], ctx: TaskContext) -> tuple[Path, ExportItem]:
    """One format, written into ``staging``: where it was written there, and its report item (the exporter's
    own report plus its final path, size and time)."""
    settings = settings_from_dict(exporter, overrides, exporter.settings_version)
    target = _target(out_dir, model, exporter)
    produced = staging / target.name
    # ``reference`` goes to exporters that ask for it (the contract's optional keyword), so an exporter
    # written to the four-argument contract keeps working.
    extra = {"reference": reference} if "reference" in inspect.signature(exporter.export).parameters else {}
    start = time.perf_counter()
    details = exporter.export(variant, settings, produced, ctx, **extra)
    seconds = time.perf_counter() - start
    size = (sum(f.stat().st_size for f in produced.rglob("*") if f.is_file()) if produced.is_dir()
            else produced.stat().st_size)
    # The exporter's details are its own keys (parity, runtime, …): the item is typed by the ones readers use.
    return produced, cast(ExportItem, {"format": exporter.format, "path": str(target), "precision": precision,
                                       "size_mb": round(size / 1e6, 3), "export_seconds": round(seconds, 2),
                                       **details})
