"""Batches for recovery training: the training side's frames, augmented, pre-processed as inference does.

Light augmentation (crops, flips, brightness and contrast) keeps a student from memorising a few
frames. On a GPU, batches are built in worker processes (a torch DataLoader) so that a training step
never waits for one thread to crop and resize 32 frames; on the CPU they are built in the training
process, which has no cores to spare.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np

from studio.model import ModelHandle
from studio.runtime.preprocess import prepare

CHOOSING_RUNS = 8  # the training side's frames are cut into this many contiguous runs …
CHOOSING_HELD_OUT = (1, 5)  # … and these runs choose (best checkpoint, exit threshold) instead of training

Item = TypeVar("Item")


def choosing_split(frames: list[Item], runs: int = CHOOSING_RUNS,
                   held_out: tuple[int, ...] = CHOOSING_HELD_OUT) -> tuple[list[Item], list[Item]]:
    """(training frames, choosing frames): a few whole contiguous runs of the training side are held out to
    choose what training chooses (the best checkpoint, a threshold), so the judging side chooses nothing
    and the figures reported on it are not flattered by a choice made on the same frames. Whole runs,
    because neighbouring video frames are near-duplicates and a choice made on a training frame's twin
    would look too good. ``runs``/``held_out``: how many runs, and which of them choose."""
    if len(frames) < 4:
        return frames, frames[-1:]  # too few to split: choose on the last one (the report says how many)
    edges = np.linspace(0, len(frames), runs + 1).astype(int)
    training: list[Item] = []
    choosing: list[Item] = []
    for run in range(runs):
        (choosing if run in held_out else training).extend(frames[edges[run]:edges[run + 1]])
    if not choosing or not training:  # fewer frames than runs: the held-out runs came out empty
        return frames, frames[-1:]
    return training, choosing


def spread(items: list[Item], count: int) -> list[Item]:
    """Up to ``count`` of ``items``, evenly spaced over all of them (first and last included)."""
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, num=count).astype(int)]


def augment_params(shape: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int, bool, float, float]:
    """(top, left, crop height, crop width, flip, gain, bias) of one augmentation of a frame of ``shape``."""
    height, width = shape
    scale = rng.uniform(0.7, 1.0)
    crop_h, crop_w = int(height * scale), int(width * scale)
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    flip = bool(rng.random() < 0.5)
    gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    return int(top), int(left), crop_h, crop_w, flip, float(gain), float(bias)


def apply_augment(frame: np.ndarray, params: tuple[int, int, int, int, bool, float, float]) -> np.ndarray:
    import cv2

    top, left, crop_h, crop_w, flip, gain, bias = params
    out = frame[top:top + crop_h, left:left + crop_w]
    if flip:
        out = out[:, ::-1]
    return cv2.convertScaleAbs(np.ascontiguousarray(out), alpha=gain, beta=bias)


def augment(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (70–100 % of each side), a horizontal flip half the time, brightness and contrast."""
    return apply_augment(frame, augment_params(frame.shape[:2], rng))


def augmented_batch(frames: list[np.ndarray], handle: ModelHandle, size: tuple[int, int], count: int,
                    rng: np.random.Generator) -> Any:
    """``count`` augmented frames drawn with replacement, as one NCHW float tensor."""
    import torch

    spec = handle.required_image_input()
    picks = rng.integers(0, len(frames), size=count)
    return torch.from_numpy(np.concatenate(
        [prepare(augment(frames[i], rng), spec, size, rect=False)[0] for i in picks]))


def plain_batch(frames: list[np.ndarray], handle: ModelHandle, size: tuple[int, int]) -> Any:
    """The frames as they are (no augmentation): a fixed held-out batch to measure a loss on."""
    import torch

    spec = handle.required_image_input()
    return torch.from_numpy(np.concatenate([prepare(f, spec, size, rect=False)[0] for f in frames]))


class Batches:
    """Batch ``i`` is always the same augmented batch (seeded by ``(seed, i)``), whichever process builds
    it: a run is reproducible with or without worker processes, on any device."""

    def __init__(self, frames: list[np.ndarray], handle: ModelHandle, size: tuple[int, int], batch: int, seed: int,
                 count: int):
        self.frames, self.handle, self.size = frames, handle, size
        self.batch, self.seed, self.count = batch, seed, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        rng = np.random.default_rng([self.seed, index])
        return augmented_batch(self.frames, self.handle, self.size, self.batch, rng)


def batch_stream(batches: Batches, workers: int, start: int = 0) -> tuple[Any, str]:
    """(iterator over ``batches`` in order from ``start``, how they are made): worker processes when
    ``workers`` > 0."""
    if workers <= 0:
        return (batches[i] for i in range(start, len(batches))), "built in the training process"
    import torch

    # Batches is a map-style dataset by duck typing (__len__, __getitem__), so that this module imports no torch.
    dataset = cast("torch.utils.data.Dataset[Any]", batches)
    remaining = torch.utils.data.Subset(dataset, range(start, len(batches)))
    loader = torch.utils.data.DataLoader(remaining, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=4, pin_memory=torch.cuda.is_available())
    return iter(loader), f"built by {workers} worker processes"
