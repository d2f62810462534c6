"""Early exit for classifiers: exit heads trained by self-distillation, the backbone frozen.

Heads (global pool + Linear) read intermediate blocks and learn to imitate the final head's
softened outputs on unlabelled, augmented frames (LGViT's second stage: the backbone never changes,
so the final exit stays exactly the original model). At run time a sample leaves at the first head
whose top probability reaches the threshold. The report measures, over a range of thresholds, the
share of samples leaving at each exit, the mean latency and the top-1 agreement with the full model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.training import loss_trend, optimise
from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, SettingsError, option
from studio.tasks import TaskContext

CURVE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class ClassifierExitSettings:
    exits: str = option("auto", label="Exit after blocks",
                        help="Comma-separated block numbers, or auto (half and three quarters of the depth)")
    threshold: float = option(0.8, label="Exit when the top probability reaches", min=0.05, max=1.0)
    steps: int = option(300, label="Training steps", min=1, max=20000)
    batch: int = option(8, label="Batch", min=1, max=128)
    lr: float = option(1e-3, label="Learning rate", min=1e-6, max=1.0)
    temperature: float = option(2.0, label="Distillation temperature", min=0.5, max=10.0)
    frames: Path | None = option(None, label="Training frames", help="Image folder or video; empty: bundled media")


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


class ClassifierExit:
    id = "early_exit.classifier"
    title = "Early-exit heads (classifier)"
    kind = Kind.EARLY_EXIT
    Settings = ClassifierExitSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        if model.task != Task.CLASSIFY or model.torch_module is None:
            return ["exit heads are trained on a PyTorch classifier"]
        if model.metadata.get("family") != "efficientnet-lite":
            return ["exit heads are built for EfficientNet-Lite classifiers so far"]
        if model.metadata.get("runtime_mode"):
            return [f"it already runs as a {model.metadata['runtime_mode']} variant"]
        return []

    def apply(self, model: ModelHandle, settings: ClassifierExitSettings, ctx: TaskContext) -> ModelHandle:
        import copy

        from studio.nets.early_exit import EarlyExitNet, efficientnet_segments
        from studio.torch_variant import torch_variant

        net = copy.deepcopy(model.torch_module).eval()
        exits = _exits(settings.exits, len(net._blocks))
        early = EarlyExitNet(efficientnet_segments(net, exits, len(model.labels)), settings.threshold)
        training = train_heads(early, model, settings, ctx.sub(0.0, 0.8))
        variant = torch_variant(model, early, suffix="exit", note=f"exit heads after blocks {exits}")
        variant = variant.replace(metadata={**variant.metadata, "runtime_mode": "early_exit",
                                            "runtime_settings": json.dumps({"threshold": settings.threshold})})
        ctx.add_report({"exits_after_blocks": exits, "training": training,
                        "curve": exit_curve(model, variant, ctx.sub(0.8, 1.0))})
        ctx.progress(1.0, "done")
        return variant


def train_heads(early, model: ModelHandle, settings: ClassifierExitSettings, ctx: TaskContext) -> dict[str, Any]:
    import torch
    from torch.nn import functional as F

    from studio.calibration import calibration_frames
    from studio.train_data import augmented_batch

    frames, info = calibration_frames(settings.frames, 64, ctx)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    heads = [segment.head for segment in early.segments if segment.head is not None]
    for param in early.parameters():
        param.requires_grad_(False)
    params = [p for head in heads for p in head.parameters()]
    for param in params:
        param.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=settings.lr)
    temperature, losses = settings.temperature, []
    for step in range(settings.steps):
        ctx.progress(step / settings.steps, f"training exit heads {step + 1}/{settings.steps}")
        inputs = augmented_batch(frames, model, model.image_input.size, settings.batch, rng)
        features, x = [], inputs
        with torch.no_grad():
            for segment in early.segments:
                for part in segment.parts:
                    x = part(x)
                features.append(x)
            teacher = F.softmax(features[-1] / temperature, 1)
        loss = sum(F.kl_div(F.log_softmax(head(f) / temperature, 1), teacher, reduction="batchmean")
                   for head, f in zip(heads, features[:-1], strict=True)) * temperature**2
        optimise(optimiser, loss, losses)
    for param in params:
        param.requires_grad_(False)
    start, end = loss_trend(losses)
    return {"steps": settings.steps, "frames": info, "loss_start": start, "loss_end": end,
            "method": "KL divergence to the final head's outputs at temperature T (×T²), backbone frozen, "
                      "augmented unlabelled frames, AdamW"}


def exit_curve(model: ModelHandle, variant: ModelHandle, ctx: TaskContext, frames: int = 27) -> list[dict]:
    """Per threshold: exit shares, mean latency (from measured per-segment times) and top-1 agreement."""
    from studio.evaluate.frames import judging_frames
    from studio.runtime.backends import OrtBackend
    from studio.runtime.early_exit import ensure_segments
    from studio.runtime.predictor import make_predictor
    from studio.runtime.preprocess import prepare

    sessions = [OrtBackend(path, threads=1) for path in ensure_segments(variant)]
    full = make_predictor(model, "ort", threads=1)
    samples = []
    images = judging_frames(frames, ctx)[0]
    for index, frame in enumerate(images):
        ctx.progress(index / len(images), "measuring exits")
        tensor = prepare(frame, model.image_input, model.image_input.size, False)[0]
        start = time.perf_counter()
        full.backend.run(tensor)
        full_ms = (time.perf_counter() - start) * 1e3
        x, exits = tensor, []
        for segment in sessions:
            start = time.perf_counter()
            outputs = segment.session.run(None, {segment.input_name: x})
            spent = (time.perf_counter() - start) * 1e3
            logits = outputs[-1].reshape(-1)
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            exits.append((spent, float(probabilities.max()), int(probabilities.argmax())))
            x = outputs[0]
        samples.append((full_ms, exits))
    return [_curve_point(threshold, samples) for threshold in CURVE_THRESHOLDS]


def _curve_point(threshold: float, samples: list) -> dict[str, Any]:
    count = len(samples[0][1])
    taken, latency, agree = [0] * count, [], []
    for _, exits in samples:
        final_class = exits[-1][2]
        chosen = next((i for i, (_, top, _) in enumerate(exits[:-1]) if top >= threshold), count - 1)
        taken[chosen] += 1
        latency.append(sum(spent for spent, _, _ in exits[: chosen + 1]))
        agree.append(exits[chosen][2] == final_class)
    full = float(np.mean([full_ms for full_ms, _ in samples]))
    return {"threshold": threshold, "exit_share": [round(t / len(samples), 4) for t in taken],
            "mean_ms": round(float(np.mean(latency)), 3), "full_model_mean_ms": round(full, 3),
            "speedup": round(full / float(np.mean(latency)), 3), "top1_agreement": round(float(np.mean(agree)), 4),
            "method": "onnxruntime 1 thread; each segment timed per sample, latency = segments run until the exit"}
