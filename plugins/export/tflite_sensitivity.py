"""Which ops of a TFLite file must stay float in INT8: found by measuring, not by their names.

The same search as the ONNX mixed-INT8 plugin (``plugins.quantize.mixed_int8``), in ai-edge-quantizer:

1. Units: the ops grouped by the module path their output tensor names carry (litert-torch names a tensor
   after the PyTorch module that made it: ``…/Detect_22/Sequential_0/…;12``). The stage that holds the
   outputs is split one level deeper (a head's box and class branches, DFL, mask, keypoint and angle
   branches, prototypes, its own arithmetic), and ops outside every stage (a wrapper's scaling, the final
   concatenation) are units of their own. Same-named modules met in separate runs (``cv2[0]`` and
   ``cv3[0]`` are both ``Sequential_0``) stay separate units.
2. Candidates: the units nearest the outputs, at most ``max_candidates``, where decoding arithmetic lives;
   the rest of the network is quantized and is not searched (its fidelity shows in the full-INT8 figure).
3. One calibration (min-max ranges of every tensor) serves every candidate file.
4. Each candidate alone in INT8, the rest float, scored against the FP32 file on frames of the
   calibration side that calibration never saw (``studio.calibration.calibration_and_choosing_frames``)
   with the task's fidelity metric; most harmful first. The judging frames judge only the result.
5. From the full INT8 file, the most harmful units are kept float one at a time until the target is met
   (units whose INT8 alone cost nothing are not tried: keeping them float buys nothing measured).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.model import ModelHandle
from studio.tasks import TaskContext

OUTPUT_UNIT = "(outputs)"


@dataclass
class OpScope:
    index: int
    op: str
    scope: str  # what ai-edge-quantizer's recipe regexes are matched against
    path: tuple[str, ...]  # module path, each segment's last dotted part ("Detect_22")


@dataclass
class Unit:
    name: str
    ops: list[OpScope] = field(default_factory=list)

    @property
    def regex(self) -> str:
        """Matches exactly these ops' scopes (each ends with ';', so no scope is a prefix of another)."""
        return "^(?:" + "|".join(re.escape(op.scope) for op in self.ops) + ")$"


def _module_path(scope: str) -> tuple[str, ...]:
    first = scope.split(";")[0]
    if "/" not in first and not first.startswith(("ultralytics.", "torch.", "_")):
        return ()  # a signature's output tensor, named after the output
    return tuple(segment.rsplit(".", 1)[-1] for segment in first.split("/"))


def op_scopes(path: Path) -> list[OpScope]:
    """Every op of the main subgraph with the scope string the quantizer's recipe sees."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = tfl.read_model(str(path))
    subgraph = model.subgraphs[0]
    rows = []
    for index, op in enumerate(subgraph.operators):
        code = model.operatorCodes[op.opcodeIndex].builtinCode
        name = tfl.TFL_OP_CODE_TO_NAME.get(code)
        scope = tfl.get_op_scope(op, subgraph.tensors)
        rows.append(OpScope(index, str(name or code), scope, _module_path(scope)))
    return rows


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0] if paths else ()
    for path in paths[1:]:
        size = 0
        while size < min(len(prefix), len(path)) and prefix[size] == path[size]:
            size += 1
        prefix = prefix[:size]
    return prefix


def group_units(ops: list[OpScope]) -> list[Unit]:
    """Units in graph order (see the module docstring); an op's unit is its stage, deeper for the last stage."""
    stages = [op.path for op in ops if len(op.path) > 1]
    base = _common_prefix(stages)
    last_stage = next((op.path[:len(base) + 1] for op in reversed(ops) if len(op.path) > len(base)), None)

    def key(op: OpScope) -> str:
        if not op.path:
            return OUTPUT_UNIT
        if len(op.path) <= len(base):
            return "/".join(op.path) + " [own ops]"
        stage = op.path[:len(base) + 1]
        if stage == last_stage:
            return "/".join(op.path[len(base):len(base) + 2]) + ("" if len(op.path) > len(base) + 1 else
                                                                  " [own ops]")
        return "/".join(stage[len(base):])

    units: list[Unit] = []
    seen: dict[str, int] = {}
    for op in ops:
        name = key(op)
        if units and units[-1].name.split(" #")[0] == name:
            units[-1].ops.append(op)
            continue
        seen[name] = seen.get(name, 0) + 1
        # an own-ops unit is one unit however its runs interleave with its submodules'
        if name.endswith("[own ops]") or name == OUTPUT_UNIT:
            existing = next((u for u in units if u.name == name), None)
            if existing is not None:
                existing.ops.append(op)
                continue
        units.append(Unit(name if seen[name] == 1 else f"{name} #{seen[name]}", [op]))
    return units


def candidates(units: list[Unit], limit: int) -> list[Unit]:
    """The ``limit`` units whose last op is nearest the outputs (decoding sits at the end of a graph)."""
    return sorted(units, key=lambda u: -max(op.index for op in u.ops))[:limit]


class TfliteScorer:
    """Fidelity of candidate INT8 files against the FP32 file on a fixed frame set (baseline run once)."""

    def __init__(self, model: ModelHandle, float_file: Path, backend: Callable[[Path], Any],
                 input_hw: tuple[int, int], images: list[np.ndarray], note: str):
        from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF
        from studio.runtime.decoders import DECODERS
        from studio.runtime.predictor import decode_options
        from studio.runtime.preprocess import prepare

        self.note = note
        self.prepared = [prepare(f, model.required_image_input(), input_hw, rect=False) for f in images]
        self.decode = DECODERS.get(model.decoder, DECODERS["tensor"])
        self.labels, self.backend = model.labels, backend
        # decoded as the export's verification decodes (kpt_shape, mask channels, NMS-free heads)
        self.reference_opts = decode_options(model, TARGET_CONF)
        self.candidate_opts = decode_options(model, PREDICTION_CONF)
        self.baseline = self._results(float_file, self.reference_opts)

    def _results(self, path: Path, opts: Any) -> list[Any]:
        run = self.backend(path).run
        return [self.decode(run(tensor), geometry, self.labels, opts) for tensor, geometry in self.prepared]

    def score(self, path: Path, with_interval: bool = False) -> dict[str, Any]:
        from studio.evaluate.fidelity import compare_results

        return compare_results(self.baseline, self._results(path, self.candidate_opts), with_interval=with_interval)

    def __call__(self, path: Path) -> float:
        return float(self.score(path)["value"])


def rank_units(units: list[Unit], score_only: Callable[[Unit], float], baseline: float,
               ctx: TaskContext) -> list[dict[str, Any]]:
    """Fidelity drop when only each unit is INT8, most harmful first (the rows of the ONNX plugin's ranking,
    ``plugins.quantize.sensitivity.rank_units``; plugin packages may not import each other)."""
    rows: list[dict[str, Any]] = []
    for index, unit in enumerate(units):
        ctx.progress(index / len(units), f"sensitivity {index + 1}/{len(units)}: {unit.name}")
        ctx.check_cancelled()
        value = score_only(unit)
        rows.append({"unit": unit.name, "ops": len(unit.ops), "fidelity_alone": round(value, 4),
                     "drop": round(baseline - value, 4)})
    rows.sort(key=lambda r: (-r["drop"], r["unit"]))
    return rows


def search_int8(source: Path, target: Path, calibration: Any, static_steps: list[dict[str, Any]],
                scorer: TfliteScorer, judge: TfliteScorer, workdir: Path, ctx: TaskContext, *,
                target_fidelity: float, max_candidates: int) -> dict[str, Any]:
    """Write ``target``: ``source`` in INT8 with the fewest harmful units kept float to reach the target on
    ``scorer``'s frames; ``judge`` (other frames) gives the figure reported."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    static = static_steps[0]

    def build(name: str, *, only: Unit | None = None, keep: tuple[Unit, ...] = ()) -> Path:
        steps = [dict(static, regex=only.regex)] if only is not None else [dict(static)]
        steps += [{"regex": u.regex, "operation": "*", "algorithm_key": AlgorithmName.NO_QUANTIZE.value,
                   "op_config": {}} for u in keep]
        engine = quantizer.Quantizer(str(source))
        engine.load_quantization_recipe(steps)
        path = workdir / name
        engine.quantize(calibration, enable_progress_report=False).export_model(str(path), overwrite=True)
        return path

    units = group_units(op_scopes(source))
    pool = candidates(units, max_candidates)
    by_name = {u.name: u for u in pool}
    full = build("full_int8.tflite")
    full_fidelity = fidelity = scorer(full)
    ceiling = scorer(source)  # the FP32 file against itself (mAP50 tops out at 0.995)
    rows: list[dict[str, Any]] = []
    if fidelity < target_fidelity:
        rows = rank_units(pool, lambda unit: scorer(build("probe.tflite", only=unit)), ceiling, ctx.sub(0.0, 0.8))
    kept: list[Unit] = []
    final = full
    for row in rows:
        if fidelity >= target_fidelity or row["drop"] <= 0:
            break
        ctx.progress(0.8 + 0.2 * len(kept) / max(len(rows), 1), f"keeping {row['unit']} in float")
        ctx.check_cancelled()
        kept.append(by_name[row["unit"]])
        final = build(f"mixed_{len(kept)}.tflite", keep=tuple(kept))
        fidelity = scorer(final)
    for row in rows:
        row["status"] = "kept in float" if any(u.name == row["unit"] for u in kept) else "quantized"
    judged_full = judge(full)  # before the move: ``final`` may be the full INT8 file itself
    final.replace(target)
    result = judge.score(target, with_interval=True)
    judged = float(result["value"])
    # The figures reported are the judging side's, the full INT8 file's beside the result's; the choosing
    # side's are kept apart: they made the choice, so they flatter it.
    return {"target": target_fidelity, "fidelity_float": judge(source), "fidelity_full_int8": judged_full,
            "fidelity_final": judged, "fidelity_final_interval": result.get("interval"),
            "metric": result.get("metric"), "target_met": judged >= target_fidelity,
            "judging_frames": judge.note,
            "choosing": {"frames": scorer.note, "fidelity_float": ceiling, "fidelity_full_int8": full_fidelity,
                         "fidelity_final": fidelity, "target_met": fidelity >= target_fidelity},
            "kept_in_float": [u.name for u in kept],
            "kept_ops": sum(len(u.ops) for u in kept), "ops": sum(len(u.ops) for u in units),
            "units": len(units), "candidates": [u.name for u in pool], "sensitivity": rows,
            "evidence": result.get("evidence"),
            "method": f"units ranked and kept float by fidelity ({result.get('metric')}) on {scorer.note} "
                      f"against the FP32 .tflite; candidates: the {len(pool)} of {len(units)} op units nearest the "
                      "outputs; drop = fidelity of the FP32 file − fidelity when only that unit is INT8; one "
                      f"calibration for every candidate; the final fidelity judged on {judge.note}"}


def unit_table(path: Path) -> list[tuple[str, int, str]]:
    """(unit, op count, op types) of a file: what the search would see (for reading a model by hand)."""
    return [(u.name, len(u.ops), ",".join(sorted({op.op for op in u.ops}))) for u in group_units(op_scopes(path))]

