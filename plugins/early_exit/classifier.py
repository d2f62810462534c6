"""Early exit for classifiers: exit heads trained by self-distillation, the backbone frozen.

Heads read intermediate blocks and learn to imitate the final head's softened outputs on unlabelled,
augmented frames (LGViT's second stage: the backbone never changes, so the final exit stays exactly the
original model), trained by the engine's trainer (``exit_training``). At run time a sample leaves at the
first head whose score reaches the threshold: its top probability (``exit_score = "softmax"``) or a gate
fitted on the training side that predicts whether the head agrees with the final layer (``"gate"``,
``exit_gate``). With ``threshold = "auto"`` that threshold is the fastest whose top-1 agreement with the
full model reaches ``target_agreement`` on frames held out from training, and the report gives its speed-up
and agreement on the judging side (``exit_threshold``); with a gate, also what the same heads give on
their top probability, chosen the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, SettingsError, auto_or_number, option
from studio.runtime.choice import RuntimeMode, runtime_mode
from studio.tasks import TaskContext

JUDGING_FRAMES = 256  # the judging side is read up to this many frames (the bundled media give 27)


@dataclass
class ClassifierExitSettings:
    exits: str = option("auto", label="Exit after blocks",
                        help="Comma-separated block numbers, or auto (half and three quarters of the depth)")
    exit_score: Literal["gate", "softmax"] = option(
        "gate", label="Exit score",
        help="gate: a logistic regression on each head's logits (top probability, margins, entropy, agreement with "
             "the previous exit) fitted on the training side to predict agreement with the final layer; softmax: "
             "the head's top probability")
    threshold: str = option("auto", label="Exit when the score reaches",
                            help="auto: the fastest threshold whose top-1 agreement with the full model reaches "
                                 "the target on frames held out from training; or a score in (0, 1], e.g. 0.8")
    target_agreement: float = option(0.95, label="Target top-1 agreement (auto threshold)", min=0.5, max=1.0)
    warm_start: bool = option(True, label="Warm-start the heads on cached features",
                              help="fit each head on the frozen backbone's pooled features of the training frames "
                                   "(seconds) before the augmented training steps")
    steps: int = option(300, label="Training steps", min=1, max=20000)
    epochs: float = option(0.0, label="Training epochs (0: the steps decide)", min=0.0, max=1000.0,
                           help="A budget in passes over the training frames instead of steps: steps = epochs × "
                                "training frames ÷ batch")
    lr: float = option(1e-3, label="Learning rate", min=1e-6, max=1.0, help="AdamW, warm-up then cosine decay")
    batch: int = option(16, label="Batch", min=1, max=256)
    minutes: float = option(0.0, label="Training time limit (minutes, 0: none)", min=0.0, max=1440.0)
    device: Literal["auto", "cpu", "cuda", "mps"] = option(
        "auto", label="Training device", help="auto: a GPU when torch sees one (CUDA, Apple MPS), else the CPU")
    patience: int = option(4, label="Stop after this many evaluations without progress", min=1, max=1000)
    temperature: float = option(2.0, label="Distillation temperature", min=0.5, max=10.0)
    frames: Path | None = option(None, label="Training frames",
                                 help="Image folder or video; empty: the training side of the model's frames "
                                      "(or the bundled media)")


def _exits(setting: str, blocks: int) -> list[int]:
    if setting.strip() == "auto":
        return sorted({blocks // 2 - 1, (3 * blocks) // 4 - 1})
    try:
        chosen = sorted({int(part) for part in setting.split(",") if part.strip()})
    except ValueError:
        raise SettingsError(f"exits: {setting!r} is not a list of block numbers", fix="e.g. 7,11 or auto") from None
    if not chosen or chosen[0] < 0 or chosen[-1] >= blocks - 1:
        raise SettingsError(f"exits: blocks are numbered 0..{blocks - 2} here", fix="e.g. 7,11 or auto")
    return chosen


def fixed_threshold(setting: str) -> float | None:
    """The threshold the user fixed (a probability), or None for auto."""
    return auto_or_number(setting, "threshold", 0.0, 1.0, low_open=True, example="0.8")


class ClassifierExit:
    id = "early_exit.classifier"
    title = "Early-exit heads (classifier)"
    kind = Kind.EARLY_EXIT
    Settings = ClassifierExitSettings
    settings_version = 3

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        # Version 1 trained with its own loop (AdamW lr 1e-3, batch 8) and exited at a fixed 0.8: a replayed
        # recipe keeps its fixed threshold and batch; its steps, lr, temperature and frames mean the same.
        if version < 2:
            data = {"batch": 8, **data, "threshold": str(data.get("threshold", 0.8))}
        # Versions 1 and 2 exited on the top probability (there was no gate) and had no warm start.
        if version < 3:
            data = {**data, "exit_score": "softmax", "warm_start": False}
        return data

    def check(self, model: ModelHandle) -> list[str]:
        if model.task != Task.CLASSIFY or model.torch_module is None:
            return ["exit heads are trained on a PyTorch classifier"]
        if model.metadata.get("family") != "efficientnet-lite":
            return ["exit heads are built for EfficientNet-Lite classifiers so far"]
        mode = runtime_mode(model)
        if mode is not RuntimeMode.PLAIN:
            return [f"it already runs as a {mode} variant"]
        return []

    def apply(self, model: ModelHandle, settings: ClassifierExitSettings, ctx: TaskContext) -> ModelHandle:
        import copy

        from plugins.early_exit.exit_gate import fit_gates
        from plugins.early_exit.exit_training import train_heads
        from studio.nets.early_exit import EarlyExitNet, efficientnet_segments
        from studio.torch_variant import torch_variant

        fixed = fixed_threshold(settings.threshold)
        net = copy.deepcopy(model.torch_module).eval()
        exits = _exits(settings.exits, len(net._blocks))
        early = EarlyExitNet(efficientnet_segments(net, exits, len(model.labels)), fixed or 1.0)
        training, training_frames, choosing = train_heads(early, model, settings, ctx.sub(0.0, 0.75))
        report: dict[str, Any] = {"exits_after_blocks": exits, "exit_score": settings.exit_score, "training": training}
        if settings.exit_score == "gate":
            ctx.progress(0.75, "fitting the exit gates on the training side")
            early.gates, report["gate"] = fit_gates(early, training_frames, model)
        variant = torch_variant(model, early, suffix="exit", note=f"exit heads after blocks {exits}")
        threshold = report_threshold(model, variant, choosing, fixed, settings.target_agreement, report,
                                     ctx.sub(0.8, 1.0))
        early.threshold = threshold
        spec = {"threshold": threshold, "score": settings.exit_score, **({"gates": early.gates} if early.gates else {})}
        variant = variant.replace(metadata={**variant.metadata, "runtime_mode": RuntimeMode.EARLY_EXIT.value,
                                            "runtime_settings": json.dumps(spec)})
        ctx.add_report(report)
        ctx.progress(1.0, "done")
        return variant


def report_threshold(model: ModelHandle, variant: ModelHandle, choosing: list, fixed: float | None, target: float,
                     report: dict[str, Any], ctx: TaskContext) -> float:
    """The threshold the variant runs at (fixed, or chosen on ``choosing``); the report gets the judging-side
    curve and the figures at that threshold."""
    from plugins.early_exit import exit_threshold as th
    from studio.evaluate.frames import judging_frames

    choice_samples: list = []
    if fixed is not None:
        threshold = fixed
    else:
        choice_samples = th.measure(model, variant, choosing, ctx.sub(0.0, 0.4), "choosing frames")
        chosen, points = th.choose(choice_samples, target)
        report["choice"] = {"target_agreement": target, "frames": len(choosing), "curve": points,
                            "separation": th.separation(choice_samples),
                            "on": "choosing frames: contiguous runs of the training side held out from training"}
        if chosen is None:
            # Fidelity first: a target no threshold reaches leaves the full model's answers (never exits early).
            threshold = th.NEVER
            report["warnings"] = [f"no threshold reached top-1 agreement {target} on the {len(choosing)} choosing "
                                  "frames: the variant never exits early (the full model's answers, a little "
                                  "slower); train longer, add exits, or lower target_agreement"]
        else:
            threshold = chosen
    images, judged_on = judging_frames(JUDGING_FRAMES, ctx)
    samples = th.measure(model, variant, images, ctx.sub(0.4, 1.0), "judging frames")
    report["curve"] = th.curve(samples)
    report["chosen"] = th.judged(threshold, samples) | {"how": "fixed by the user" if fixed is not None else
                                                        "auto: fastest reaching the target on the choosing frames"}
    report["separation"] = th.separation(samples)
    report["judged_on"] = judged_on
    if choice_samples and getattr(variant.torch_module, "gates", None):
        report["softmax_same_heads"] = softmax_comparison(choice_samples, samples, target)
    report["method"] = ("onnxruntime 1 thread; the full model and each segment timed per frame (median of "
                        f"{th.TIMING_REPEATS}); latency = the segments run until the exit; agreement = top-1 "
                        "against the full model; separation = ROC AUC of the score for 'this exit agrees with the "
                        "final layer', per exit")
    return threshold


def softmax_comparison(choosing: list, judging: list, target: float) -> dict[str, Any]:
    """The same heads exiting on their top probability, its threshold chosen the same way on the same frames: what
    the gate adds, from the timings already taken."""
    from plugins.early_exit import exit_threshold as th

    choosing, judging = th.with_softmax(choosing), th.with_softmax(judging)
    chosen, _ = th.choose(choosing, target)
    return {"chosen": th.judged(th.NEVER if chosen is None else chosen, judging),
            "reached_target_on_choosing_frames": chosen is not None, "separation": th.separation(judging),
            "choice_separation": th.separation(choosing), "curve": th.curve(judging)}
