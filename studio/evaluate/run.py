"""``deploy-studio evaluate``: true accuracy on a labelled folder, and/or a recipe's fidelity against the
model on the judging side of its frames — each figure with its evidence, interval and where it was measured."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.tasks import TaskContext


def evaluate_model(model: str, *, labels: str | None = None, recipe: str | None = None, frames: str | None = None,
                   fidelity_frames: int = 50, threads: int = 2, trust: bool = False,
                   ctx: TaskContext | None = None) -> dict[str, Any]:
    from studio.data import FrameSet
    from studio.lm.variants import is_language_model
    from studio.loaders import load_model
    from studio.machine import cpu_description

    if labels is None and recipe is None:
        raise StudioError("nothing to evaluate", fix="give a labelled folder (true mAP), or --recipe R to judge the "
                                                     "variant it makes against the model (with --frames PATH)")
    ctx = ctx or TaskContext()
    ctx.frames = FrameSet.open(frames) if frames else None
    handle = load_model(model, trust=trust)
    if is_language_model(handle):
        raise StudioError(f"{handle.name} is a language model: 'evaluate' judges image models",
                          fix="use 'deploy-studio optimize' (perplexity, agreement) for language models")
    report: dict[str, Any] = {"model": handle.display_name, "machine": cpu_description(),
                              "frames": ctx.frames.describe() if ctx.frames else {"source": "bundled media"}}
    with tempfile.TemporaryDirectory(prefix="deploy-studio-evaluate-") as workdir:
        ctx.workdir = Path(workdir)
        variant = _variant(handle, recipe, ctx) if recipe else None
        if labels:
            from studio.optimize import true_accuracy

            report["accuracy"] = {"baseline": true_accuracy(handle, Path(labels), threads=threads)}
            report |= report["accuracy"]["baseline"]  # the model's own figures at the top, as before --recipe
            if variant is not None:
                report["accuracy"]["variant"] = true_accuracy(variant, Path(labels), threads=threads)
        if variant is not None:
            report["variant"] = variant.display_name
            from studio.optimize import judged_fidelity

            report["fidelity"] = judged_fidelity(handle, variant, threads, fidelity_frames, ctx.sub(0.7, 1.0))
    return report


def _variant(handle: Any, recipe: str, ctx: TaskContext) -> Any:
    from studio.recipe import apply_recipe, load_recipe, resolved_recipe
    from studio.registry import default_registry

    registry = default_registry()
    return apply_recipe(handle, resolved_recipe(load_recipe(Path(recipe)), registry), registry, ctx.sub(0.0, 0.7))

