"""INT8 with the most sensitive units kept in float until a fidelity target is met.

1. Calibrate once (onnxruntime's calibration cache), 2. rank units by the fidelity drop of
quantizing each alone (``sensitivity``), 3. start from the full INT8 graph and keep the most harmful
units in float, one at a time, until fidelity against the float model reaches the target. Nothing is
hard-coded per model: the head of a YOLO detector is found because measuring it shows the damage.

Steps 2 and 3 choose on the calibration side (``studio.calibration.calibration_and_choosing_frames``:
runs held out of calibration from the model's own frames, the calibration frames themselves for the thin
bundled media); the judging side only judges the result, so the reported fidelity is not flattered by a
choice made on its own frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from plugins.quantize.common import (
    FLOAT_STEM_HELP,
    TensorReader,
    common_reasons,
    needs_frames,
    prepared_float_graph,
)
from plugins.quantize.sensitivity import quant_units, rank_units
from plugins.quantize.static_int8 import quantize_static_graph
from plugins.quantize.stem import keep_stem_float
from studio.calibration import calibration_and_choosing_frames, model_inputs
from studio.evaluate.frames import judging_frames
from studio.model import ModelHandle, Task
from studio.plugin_api import VISION, Kind, Provides, option
from studio.tasks import TaskContext
from studio.variants import onnx_variant


@dataclass
class MixedInt8Settings:
    target: float = option(0.9, label="Fidelity target", min=0.0, max=1.0,
                           help="mAP50 against the float model (detectors; by mask IoU / OKS / probiou for "
                                "segmentation, pose, OBB), top-1 agreement (classifiers)",
                           search=(0.85, 0.99))
    granularity: Literal["block", "node"] = option(
        "block", label="Sensitivity unit",
        help="block: a module's weights or its other ops; node: each layer with weights alone (about twice the "
             "probes), so that one small layer can stay float where block would keep a whole module")
    fidelity_frames: int = option(12, label="Frames to choose and judge on", min=2, max=27,
                                  help="calibration-side frames to choose what stays float on, and as many "
                                       "judging frames for the reported fidelity")
    calibration: Path | None = option(None, label="Calibration images or video",
                                      help="An image folder or a video; empty uses the bundled media")
    samples: int = option(32, label="Calibration frames", min=8, max=2048)
    method: Literal["minmax", "entropy", "percentile"] = option("minmax", label="Calibration method")
    per_channel: bool = option(True, label="Per-channel weights")
    activations: Literal["uint8", "int8"] = option("uint8", label="Activation type")
    float_stem: bool = option(True, label="Keep the first layer float", help=FLOAT_STEM_HELP)
    reduce_range: Literal["auto", "on", "off"] = option(
        "auto", label="7-bit weights (reduce_range)",
        help="auto: on when this CPU has no VNNI, where onnxruntime's u8s8 kernels can saturate; "
             "on: for a model that will run on such CPUs (AVX2, AVX-512 without VNNI)")
    reference: Literal["input", "original"] = option(
        "original", label="Judge against",
        help="input: the float model this step quantizes; original: the model the recipe started from, when an "
             "earlier step (pruning, recovery) changed it — the units its answers need stay float, not only "
             "those the input's own answers need")


class _Scorer:
    """Fidelity of candidate graphs against a reference on a fixed frame set (its results computed once):
    the float model itself, or the model the recipe started from."""

    def __init__(self, model: ModelHandle, float_graph: Path, frames: list[np.ndarray], note: str,
                 reference: ModelHandle | None = None):
        from studio.evaluate.fidelity import TARGET_CONF
        from studio.runtime.predictor import make_predictor

        self.model = model
        self.frames, self.note = frames, note
        self.threads = min(4, os.cpu_count() or 1)
        judge_by = (make_predictor(reference, "ort", threads=self.threads, conf=TARGET_CONF) if reference is not None
                    else self._predictor(float_graph, conf=TARGET_CONF))
        self.baseline = [judge_by(f).result for f in self.frames]

    def _predictor(self, graph: Path, conf: float):
        from studio.runtime.backends import OrtBackend
        from studio.runtime.predictor import Predictor

        return Predictor(self.model, OrtBackend(graph, threads=self.threads), conf=conf)

    def __call__(self, graph: Path) -> float:
        return self.score(graph, with_interval=False)["value"]

    def score(self, graph: Path, with_interval: bool = True) -> dict[str, Any]:
        """The whole fidelity result (evidence, and the bootstrap interval when asked) of one graph."""
        from studio.evaluate.fidelity import PREDICTION_CONF, compare_results

        predictor = self._predictor(graph, conf=PREDICTION_CONF)
        return compare_results(self.baseline, [predictor(f).result for f in self.frames], with_interval=with_interval)


class MixedInt8:
    id = "quantize.mixed_int8"
    title = "INT8 mixed precision (sensitivity-driven)"
    kind = Kind.QUANTIZE
    # Preferred for detectors: plain INT8 of a YOLO head (pixel boxes and 0-1 scores on one scale) finds
    # nothing, so the sensitivity search keeps the units that need it in float.
    provides = (Provides("int8", VISION, preferred_for=(Task.DETECT, Task.SEGMENT, Task.POSE)),)
    Settings = MixedInt8Settings
    settings_version = 3

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 judged against its own float input (there was no reference); versions 1 and 2 quantized
        # the stem too.
        if version < 2:
            data = {**data, "reference": "input"}
        if version < 3:
            data = {**data, "float_stem": False}
        return data

    def check(self, model: ModelHandle) -> list[str]:
        return common_reasons(model) or needs_frames(model)

    def apply(self, model: ModelHandle, settings: MixedInt8Settings, ctx: TaskContext) -> ModelHandle:
        import onnx

        float_graph = prepared_float_graph(model, ctx.sub(0.0, 0.02))
        stem = keep_stem_float(float_graph) if settings.float_stem else None
        always_float = (stem or {}).get("nodes", [])
        graph = onnx.load(str(float_graph), load_external_data=False).graph
        frames, info, choosing, choosing_note = calibration_and_choosing_frames(
            settings.calibration, settings.samples, settings.fidelity_frames, ctx.sub(0.02, 0.05))
        tensors = model_inputs(model, frames)
        cache = float_graph.with_name("calibration.json")
        reader = TensorReader(graph.input[0].name, tensors, ctx.sub(0.05, 0.15))
        workdir = float_graph.parent

        def build(name: str, exclude: tuple[str, ...] = (), only: list[str] | None = None) -> Path:
            reader.rewind()
            return quantize_static_graph(float_graph, workdir / name, reader, settings, cache=cache,
                                         exclude=[*always_float, *exclude], only=only)

        full = build("full_int8.onnx")  # also fills the calibration cache; "full": all but the float stem
        reference = _reference(model, settings, ctx)
        scorer = _Scorer(model, float_graph, choosing, choosing_note, reference)
        units: dict[str, list[str]] = {}
        for unit, nodes in quant_units(graph, settings.granularity).items():
            if rest := [n for n in nodes if n not in always_float]:  # the stem is float already: not ranked
                units[unit] = rest
        # the float graph against the reference: itself (mAP50 tops out at 0.995), or what the float input
        # keeps of the original, which no unit kept float can raise: then that is as far as the search goes
        ceiling = scorer(float_graph)
        goal = settings.target if reference is None else min(settings.target, ceiling)
        rows = rank_units(units, lambda nodes: scorer(build("probe.onnx", only=nodes)), ceiling, ctx.sub(0.15, 0.85))
        kept: list[str] = []
        fidelity = full_fidelity = scorer(full)
        final = full
        for row in rows:
            if fidelity >= goal:
                break
            ctx.progress(0.85 + 0.15 * len(kept) / len(rows), f"keeping {row['unit']} in float")
            kept.append(row["unit"])
            final = build(f"mixed_{len(kept)}.onnx", exclude=tuple(n for u in kept for n in units[u]))
            fidelity = scorer(final)
        for row in rows:
            row["status"] = "kept in float" if row["unit"] in kept else "quantized"
        ctx.progress(0.99, "judging the result on the judging side")
        judge = _Scorer(model, float_graph, *judging_frames(settings.fidelity_frames, ctx), reference)
        # with its evidence and interval: "target met" on 6 boxes is a hint
        final_result = judge.score(final)
        judged = final_result["value"]
        from plugins.quantize.common import reduce_range_choice

        # The figures reported are the judging side's; the choosing side's made the choice, so they flatter it.
        against = ("the float model this step quantized" if reference is None
                   else f"{reference.name}, the model the recipe started from")
        ctx.add_report({"calibration": info, "target": settings.target, "against": against,
                        "goal": goal if goal < settings.target else None,
                        "fidelity_metric": final_result["metric"],
                        "fidelity_float": judge(float_graph),
                        "reduce_range": reduce_range_choice(settings)[1],
                        "fidelity_full_int8": judge(full),
                        "fidelity_final": judged, "target_met": judged >= settings.target,
                        "choosing": {"frames": scorer.note, "fidelity_float": ceiling,
                                     "fidelity_full_int8": full_fidelity, "fidelity_final": fidelity,
                                     "target_met": fidelity >= settings.target},
                        "fidelity_final_interval": final_result.get("interval"),
                        "evidence": final_result["evidence"],
                        "warnings": [final_result["evidence"]["warning"]] if final_result["evidence"]["thin"] else [],
                        "kept_in_float": kept, "float_stem": stem, "sensitivity": rows,
                        "judging_frames": judge.note,
                        "method": f"units ranked and kept in float by fidelity on {scorer.note} against {against} "
                                  "(drop = fidelity of the float graph − fidelity when only that unit is INT8), "
                                  "until the target is met or, when the float graph itself is below it, the float "
                                  f"graph's own figure; the final fidelity judged on {judge.note}"})
        ctx.progress(1.0, "done")
        note = (f"INT8 mixed: {len(kept)} unit(s) kept in float"
                + (" and the first layer" if always_float else "")
                + f", fidelity {judged:.3f} on judging frames (target {settings.target})")
        return onnx_variant(model, final, suffix="int8mixed", note=note)


def _reference(model: ModelHandle, settings: MixedInt8Settings, ctx: TaskContext) -> ModelHandle | None:
    """The model to judge against other than the float input itself, or None (``reference`` setting)."""
    source = getattr(ctx, "source_model", None)
    if settings.reference == "input" or source is None or source is model:
        return None
    return source
