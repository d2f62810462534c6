"""INT8 with a quantization-aware fine-tune: for a model whose post-training INT8 misses its target.

A copy of the PyTorch module runs with simulated INT8 (``fake_quant``: the weights and the Conv/Linear
inputs rounded as onnxruntime's static QDQ will round them, input ranges measured on the same
calibration frames) and is fine-tuned toward the float model by the engine's recovery trainer (the
pruning distillation loss, judged on held-out fidelity *with the simulation on*, best weights kept).
Then the simulation is removed and the float weights that learned to live with it go through the
studio's ordinary static INT8 path, so the result is the same QDQ ONNX graph every other INT8 variant is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plugins.quantize.common import common_reasons, needs_frames, reduce_range_choice
from studio.model import ModelHandle
from studio.plugin_api import Kind, option
from studio.recovery.settings import RecoverySettings
from studio.tasks import TaskContext

JUDGED_FRAMES = 25  # as many judging frames as the optimize pipeline's default


@dataclass
class _QatOwnSettings:
    calibration: Path | None = option(None, label="Calibration images or video",
                                      help="An image folder or a video; empty uses the calibration side of the "
                                           "model's frames (or the bundled media)")
    samples: int = option(32, label="Calibration frames", min=8, max=2048)
    per_channel: bool = option(True, label="Per-channel weights",
                               help="Per-channel is simulated exactly; per-tensor only approximately "
                                    "(BatchNorm is folded into the weights after the fine-tune)")
    activations: Literal["uint8", "int8"] = option(
        "uint8", label="Activation type", help="uint8 suits x86 CPUs (VNNI), int8 suits ARM")
    reduce_range: Literal["auto", "on", "off"] = option(
        "auto", label="7-bit weights (reduce_range)",
        help="auto: on when this CPU has no VNNI, where onnxruntime's u8s8 kernels can saturate")
    exclude: list[str] = option([], label="Keep in float (node names or patterns)",
                                help="Passed to the INT8 step, e.g. /model.22/* (the fine-tune still "
                                     "simulates INT8 on every Conv/Linear)")
    compare_plain: bool = option(True, label="Also judge plain static INT8",
                                 help="Quantize the model without the fine-tune too and report both "
                                      "fidelities on the judging frames (one more INT8 build)")


@dataclass
class QatSettings(RecoverySettings, _QatOwnSettings):
    """The INT8 step's settings first, then the fine-tune's (the shared recovery settings, QAT defaults)."""

    recovery_steps: int = option(200, label="Fine-tune steps", min=1, max=20000,
                                 help="Distillation toward the float model with INT8 simulated; held-out "
                                      "fidelity of the simulated model is judged every 25 steps, best kept")
    recovery_lr: float = option(3e-5, label="Fine-tune learning rate", min=1e-7, max=1e-2,
                                help="Small: the weights only need to move within a rounding step")
    recovery_batchnorm: Literal["train", "frozen"] = option(
        "frozen", label="BatchNorm during the fine-tune",
        help="frozen: the statistics the export folds into the weights stay the ones the simulation used")
    recovery_recalibrate: bool = option(False, label="Re-estimate BatchNorm statistics first",
                                        help="Off for QAT: nothing was removed, the float statistics are right")


def static_settings(settings: QatSettings) -> Any:
    """The static INT8 step's settings from the QAT settings (MinMax: the ranges the simulation used; the stem
    quantized too, as the simulation quantizes every Conv — the exported graph is the one that was tuned)."""
    from plugins.quantize.static_int8 import StaticInt8Settings

    return StaticInt8Settings(calibration=settings.calibration, samples=settings.samples, method="minmax",
                              per_channel=settings.per_channel, activations=settings.activations,
                              exclude=list(settings.exclude), outlier_report=False,
                              reduce_range=settings.reduce_range, float_stem=False)


class Qat:
    id = "quantize.qat"
    title = "INT8 with quantization-aware fine-tune"
    kind = Kind.QUANTIZE
    Settings = QatSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        reasons = common_reasons(model) or needs_frames(model)
        if not reasons and model.torch_module is None:
            reasons = ["it has no PyTorch module to fine-tune (load the original .pt, not an ONNX export)"]
        return reasons

    def apply(self, model: ModelHandle, settings: QatSettings, ctx: TaskContext) -> ModelHandle:
        from plugins.quantize.static_int8 import StaticInt8
        from studio.torch_variant import torch_variant

        module, report = fine_tune(model, settings, ctx.sub(0.0, 0.8))
        tuned = torch_variant(model, module, suffix="qat", note="fine-tuned under simulated INT8")
        static = static_settings(settings)
        variant = StaticInt8().apply(tuned, static, ctx.sub(0.8, 0.9))
        if settings.compare_plain:
            report["judged"] = _compare(model, StaticInt8().apply(model, static, ctx.sub(0.9, 0.95)), variant,
                                        ctx.sub(0.95, 1.0))
        ctx.add_report({"qat": report})
        ctx.progress(1.0, "done")
        return variant  # named <model>-qat-int8: the static step's suffix on the fine-tuned handle's


def fine_tune(model: ModelHandle, settings: QatSettings, ctx: TaskContext) -> tuple[Any, dict[str, Any]]:
    """(a float copy of the model's module fine-tuned under simulated INT8, the report)."""
    from plugins.quantize.common import calibration_inputs
    from plugins.quantize.fake_quant import FakeQuant
    from studio.recovery.distill import recover

    module = copy.deepcopy(model.torch_module).eval()
    simulated = FakeQuant(module, per_channel=settings.per_channel, reduce_range=reduce_range_choice(settings)[0],
                          activations=settings.activations)
    # The frames and pre-processing the INT8 step calibrates on: the simulated ranges are the exported ones.
    tensors, info = calibration_inputs(model, settings.calibration, settings.samples, ctx.sub(0.0, 0.02))
    simulated.calibrate(tensors, ctx.sub(0.02, 0.05))
    simulated.activate()
    try:
        training = recover(model, module, settings, Qat.id, ctx.sub(0.05, 1.0), steps=settings.recovery_steps)
    finally:
        simulated.remove()
    report = {"simulated_int8": simulated.summary(), "ranges_from": info,
              "fidelity_simulated_before": training["fidelity_start"],
              "fidelity_simulated_after": training["fidelity_best"], "training": training}
    return module, report


def _compare(model: ModelHandle, plain: ModelHandle, qat: ModelHandle, ctx: TaskContext) -> dict[str, Any]:
    """Both INT8 graphs against the float model on the judging frames, as the optimize pipeline judges."""
    from studio.optimize import judged_fidelity

    scores = {"plain_static_int8": judged_fidelity(model, plain, 2, JUDGED_FRAMES, ctx.sub(0.0, 0.5)),
              "qat_int8": judged_fidelity(model, qat, 2, JUDGED_FRAMES, ctx.sub(0.5, 1.0))}
    return {name: {"value": score["value"], "metric": score["metric"], "interval": score.get("interval"),
                   "frame_set": score["frame_set"]}
            for name, score in scores.items()}
