"""Frames for calibration and distillation: an image folder, a video, or the bundled media.

The default set is disjoint from the fidelity frame set (``studio.evaluate.frames``) so that a
variant is never scored on the frames it was calibrated on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import BadInputError
from studio.media import bundled_video
from studio.model import ModelHandle
from studio.runtime.preprocess import prepare
from studio.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, open_video, read_image


def _spread(count: int, samples: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, count - 1, num=min(samples, count))}) if count else []


def _video_frames(path: Path, samples: int, start: int = 0, step: int | None = None) -> list[np.ndarray]:
    video = open_video(path)
    try:
        total = video.frame_count or 10_000
        stride = step or max(1, total // max(samples, 1))
        frames = []
        for index, frame in enumerate(video):
            if index >= start and (index - start) % stride == 0:
                frames.append(frame)
                if len(frames) >= samples:
                    break
        return frames
    finally:
        video.close()


def _folder_frames(folder: Path, samples: int, ctx: Any) -> tuple[list[np.ndarray], list[str]]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    frames, skipped = [], []
    for index in _spread(len(images), samples):
        if ctx is not None:
            ctx.check_cancelled()
        try:
            frames.append(read_image(images[index]))
        except BadInputError:
            skipped.append(images[index].name)  # a corrupt image is skipped and counted, not fatal
    return frames, skipped


def calibration_frames(source: Path | None, samples: int, ctx: Any = None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Up to ``samples`` BGR frames and a note of where they came from (and what was skipped).

    ``source`` is a step's own setting; without one, the calibration side of the model's frames
    (``ctx.frames``) when the user gave some, else the bundled media. A ``source`` that is the model's
    frames folder itself also gives only its calibration side, so fidelity is never judged on a
    frame that calibrated the model.
    """
    skipped: list[str] = []
    frames_of_model = getattr(ctx, "frames", None)
    if frames_of_model is not None and (source is None or Path(source).expanduser().resolve() == frames_of_model.path):
        frames, note = frames_of_model.calibration_frames(samples, ctx)
        if not frames:
            raise BadInputError("no readable frame on the calibration side", path=frames_of_model.path,
                                fix="give a folder of images or a video with readable frames")
        return frames, {"source": note, "frames": len(frames), "skipped": skipped}
    if source is None:
        # bikes.mp4 frames 5, 15, 25 … (the fidelity set uses 0, 10, 20 …), then Big Buck Bunny.
        frames = _video_frames(bundled_video("bikes.mp4"), min(samples, 25), start=5, step=10)
        if len(frames) < samples:
            frames += _video_frames(bundled_video("bigbuckbunny.mp4"), samples - len(frames))
        name = "bundled bikes.mp4 (frames 5, 15, …) and bigbuckbunny.mp4"
    else:
        source = Path(source).expanduser()
        name = str(source)
        if source.is_dir():
            frames, skipped = _folder_frames(source, samples, ctx)
        elif source.suffix.lower() in VIDEO_SUFFIXES:
            frames = _video_frames(source, samples)
        elif source.exists():
            frames = [read_image(source)]
        else:
            raise BadInputError("no such calibration file or folder", path=source,
                                fix="give an image folder, a video, or leave it empty for the bundled media")
    if not frames:
        raise BadInputError(f"no usable frames ({len(skipped)} unreadable image(s) skipped)", path=name,
                            fix="give a folder of images or a video with readable frames")
    return frames, {"source": name, "frames": len(frames), "skipped": skipped}


def calibration_and_choosing_frames(source: Path | None, samples: int, choosing: int, ctx: Any = None
                                    ) -> tuple[list[np.ndarray], dict[str, Any], list[np.ndarray], str]:
    """(calibration frames, their note, frames to choose on, where those came from).

    A search that keeps units in float until a fidelity target is met makes a choice; made on the judging
    frames, its report would be judged on the frames it was tuned to. So it chooses on the calibration side
    and leaves the judging side to judge the result. From the user's frames (or a calibration source of a
    step's own), two whole contiguous runs of eight are held out of calibration to choose on
    (``studio.train_data.choosing_split``, as recovery chooses its checkpoint). The bundled media have no
    frames to spare (a cartoon fills the calibration set past bikes.mp4's 25 street frames; measured on the
    fall detector's INT8 TFLite, thinning those street frames cost 0.09 mAP50 on the judging side's 17
    boxes), so there the search chooses on the calibration frames themselves: still no judging frame.
    """
    from studio.data import read_spread
    from studio.train_data import choosing_split, spread

    frames_of_model = getattr(ctx, "frames", None)
    if frames_of_model is not None and (source is None or Path(source).expanduser().resolve() == frames_of_model.path):
        kept = frames_of_model.calibrating_and_choosing()[0]
        frames = read_spread(kept, samples, ctx)
        if not frames:
            raise BadInputError("no readable frame on the calibration side", path=frames_of_model.path,
                                fix="give a folder of images or a video with readable frames")
        held, note = frames_of_model.choosing_frames(choosing, ctx)
        info = {"source": f"{len(frames)} frames spread over the calibration side of {frames_of_model.path.name}, "
                          "two runs of eight held out to choose on", "frames": len(frames), "skipped": [],
                "choosing_frames": len(held)}
        return frames, info, held, note
    if source is None:
        frames, info = calibration_frames(None, samples, ctx)
        held = spread(frames, choosing)
        note = f"{len(held)} of the calibration frames ({info['source']}; the bundled media have none to spare)"
        return frames, info | {"choosing_frames": len(held)}, held, note
    # a step's own source: enough that the held-out quarter gives ``choosing`` frames and the rest ``samples``
    frames, info = calibration_frames(source, math.ceil(samples * 4 / 3) + 4 * choosing + 8, ctx)
    calibrating, held = choosing_split(frames)
    calibrating, held = spread(calibrating, samples), spread(held, choosing)
    shared = " (too few frames to hold any out: the last one also calibrated)" if len(frames) < 4 else ""
    note = f"{len(held)} frames of {info['source']} held out of calibration{shared}"
    return calibrating, info | {"frames": len(calibrating), "choosing_frames": len(held)}, held, note


def model_inputs(handle: ModelHandle, frames: list[np.ndarray], fixed_hw: tuple[int, int] | None = None
                 ) -> list[np.ndarray]:
    """Pre-process frames exactly as inference will (same letterbox, same rectangle rule)."""
    spec = handle.required_image_input()
    target, rect = (fixed_hw, False) if fixed_hw else (spec.size, spec.dynamic)
    return [prepare(frame, spec, target, rect)[0] for frame in frames]
