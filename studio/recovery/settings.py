"""The recovery settings every compression plugin that trains shares (pruning, low rank, QAT).

A settings class lists its own fields first and inherits these after them:
``class Settings(RecoverySettings, _OwnSettings)`` (a dataclass takes base fields in reverse MRO order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.plugin_api import option


@dataclass
class RecoverySettings:
    recovery_steps: int = option(0, label="Recovery steps (0: none)", min=0, max=20000,
                                 help="Re-estimate BatchNorm, then fine-tune toward the unpruned model's "
                                      "outputs on the training side of the model's frames; held-out fidelity "
                                      "is judged every 25 steps and the best weights are kept")
    recovery_epochs: float = option(0.0, label="Recovery epochs (0: the steps decide)", min=0.0, max=1000.0,
                                    help="A budget in passes over the training frames instead of steps: steps = "
                                         "epochs × training frames ÷ batch (each batch drawn at random from them, "
                                         "augmented); when set, recovery runs even with steps at 0")
    recovery_lr: float = option(1e-4, label="Recovery learning rate", min=1e-6, max=1e-1,
                                help="AdamW, warm-up then cosine decay")
    recovery_imgsz: int = option(320, label="Recovery input size", min=64, max=1280,
                                 help="Smaller is faster; used for models that accept any input size")
    recovery_batch: int = option(8, label="Recovery batch", min=1, max=256)
    recovery_batchnorm: Literal["train", "frozen"] = option(
        "train", label="BatchNorm during recovery",
        help="train: statistics follow the training batches (what lets a pruned detector recover); "
             "frozen: the re-estimated statistics stay fixed")
    recovery_ema: float = option(0.0, label="Recovery weight averaging (EMA decay, 0: off)", min=0.0, max=0.999,
                                 help="Judge and keep an exponential moving average of the weights and BatchNorm "
                                      "statistics (decay ramped up over the first steps) instead of the last step's")
    recovery_minutes: float = option(0.0, label="Recovery time limit (minutes, 0: none)", min=0.0, max=1440.0)
    recovery_device: Literal["auto", "cpu", "cuda", "mps"] = option(
        "auto", label="Recovery device", help="auto: a GPU when torch sees one (CUDA, Apple MPS), else the CPU")
    recovery_recalibrate: bool = option(True, label="Re-estimate BatchNorm statistics first",
                                        help="Helps detectors; can hurt a classifier when the frames are "
                                             "far from its training data")
    recovery_frames: Path | None = option(None, label="Recovery frames",
                                          help="An image folder or a video; empty uses the training side of the "
                                               "model's frames (or the bundled media)")
    recovery_features: Literal["cwd", "mse", "off"] = option(
        "cwd", label="Feature distillation (detectors)",
        help="cwd: channel-wise distillation of the maps entering the detection head; mse: variance-scaled "
             "MSE of the same maps; off: outputs only")
    recovery_labels: bool = option(True, label="Use labels when the model's frames have them",
                                   help="A YOLO folder, data.yaml or COCO json (detectors), or class folders "
                                        "ROOT/<split>/<class>/*.jpg (classifiers) as the model's frames: the "
                                        "model's own loss on the labelled training frames is mixed in (when they "
                                        "are at least half of the training side's images)")


def recovery_wanted(settings: RecoverySettings) -> bool:
    """Whether a plugin's settings ask for recovery: a step budget, or an epoch budget."""
    return settings.recovery_steps > 0 or settings.recovery_epochs > 0
