"""The model's own frames: a folder (images and videos, searched recursively, so a YOLO dataset folder
works as it is), one video, or an Ultralytics ``data.yaml`` (the images of every split it lists), split
into a calibration side and a judging side that share no frame.

Whole files go to one side (by a stable hash of their path inside the folder, so adding a file never
moves another); a lone video is cut into five contiguous segments, the 2nd and 4th judging, with a
guard gap at every boundary so that two sides never hold neighbouring, near-identical frames. Frames
are read lazily and spread over each side's whole length — never "the first N frames".

Without frames of the user's own, calibration and judging use the bundled media (``studio.calibration``
and ``studio.evaluate.frames`` keep those sets disjoint).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from studio.errors import BadInputError
from studio.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image

JUDGING_BUCKETS = 4  # of 10: the judging side's share of the files
VIDEO_SEGMENTS = 5
JUDGING_SEGMENTS = (1, 3)
GAP_SECONDS = 0.5  # frames this close to the other side's segment are used by neither


@dataclass(frozen=True)
class Span:
    """Frames ``start``..``stop`` (exclusive) of one file; an image is the span 0..1."""

    path: Path
    start: int
    stop: int

    @property
    def length(self) -> int:
        return max(self.stop - self.start, 0)


@dataclass(frozen=True)
class FrameSet:
    """A user's frames for judging and calibration, split once, deterministically."""

    path: Path
    judging: tuple[Span, ...]
    calibration: tuple[Span, ...]
    how: str  # how the split was made, for reports
    # A search's view (``for_search``): the runs it chooses on, already taken out of ``calibration``
    held_for_search: tuple[Span, ...] = ()

    @classmethod
    def open(cls, spec: str | Path) -> FrameSet:
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise BadInputError("no such frames file or folder", path=path,
                                fix="give a folder of images or videos, a video file or a data.yaml")
        base, files = _files(path)
        if not files:
            raise BadInputError("no images or videos here", path=path,
                                fix=f"give a folder with {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))} files")
        if len(files) == 1 and files[0].suffix.lower() in VIDEO_SUFFIXES:
            judging, calibration = _split_video(files[0])
            how = (f"one video in {VIDEO_SEGMENTS} contiguous segments, segments "
                   f"{' and '.join(str(s + 1) for s in JUDGING_SEGMENTS)} judge, the others calibrate, "
                   f"{GAP_SECONDS} s left out at each boundary")
        else:
            judging, calibration = _split_files(base, files)
            how = f"whole files by a stable hash of their name, about {JUDGING_BUCKETS * 10} % judge"
        if not judging or not calibration:
            raise BadInputError("too few frames to split into a calibration side and a judging side", path=path,
                                fix="give at least two images, or a video of a few seconds")
        return cls(path, tuple(judging), tuple(calibration), how)

    def for_search(self) -> FrameSet:
        """The frames as a search trial sees them: the runs the search chooses on (``calibrating_and_choosing``)
        taken out of the calibration side, so that no step of a trial — calibration, QAT, recovery training,
        labels — has seen the frames its variant is chosen on. Mixed INT8 inside the trial chooses on the
        same runs."""
        if self.held_for_search:
            return self
        kept, held = hold_out(self.calibration)
        if set(kept) & set(held):  # too few frames to cut: nothing could be held apart
            return self
        return dataclasses.replace(self, calibration=kept, held_for_search=held)

    @functools.cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.path)

    @property
    def training_fingerprint(self) -> str:
        """What a training run on these frames is keyed by: the files, and whether a search's choosing runs are
        out of the calibration side (a view that trains on fewer frames must not resume a plain run)."""
        return self.fingerprint + (" search view" if self.held_for_search else "")

    def sides(self) -> dict[str, Any]:
        """How the frames were split and how much each side holds (no file is read: cheap enough for the GUI)."""
        sides = {"source": str(self.path), "split": self.how, "judging": _side_summary(self.judging),
                 "calibration": _side_summary(self.calibration)}
        if self.held_for_search:
            sides["held_for_search"] = _side_summary(self.held_for_search)
        return sides

    def describe(self) -> dict[str, Any]:
        """``sides`` plus the fingerprint of the files (for every report)."""
        return self.sides() | {"fingerprint": self.fingerprint}

    def judging_frames(self, count: int, ctx: Any = None) -> tuple[list[np.ndarray], str]:
        frames = read_spread(self.judging, count, ctx)
        return frames, f"{len(frames)} frames spread over the judging side of {self.path.name} ({self.how})"

    def calibration_frames(self, count: int, ctx: Any = None) -> tuple[list[np.ndarray], str]:
        frames = read_spread(self.calibration, count, ctx)
        apart = ", less the runs the search chooses on" if self.held_for_search else ""
        return frames, f"{len(frames)} frames spread over the calibration side of {self.path.name}{apart}"

    def calibrating_and_choosing(self) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
        """The calibration side as (what calibrates, what a search chooses on): two whole contiguous runs of
        eight held out (``hold_out``), so a choice is made on frames that neither calibrated nor judge. In a
        search's view those runs are already out of the calibration side, and the search's own choice is made
        on them too."""
        if self.held_for_search:
            return self.calibration, self.held_for_search
        return hold_out(self.calibration)

    def choosing_frames(self, count: int, ctx: Any = None) -> tuple[list[np.ndarray], str]:
        frames = read_spread(self.calibrating_and_choosing()[1], count, ctx)
        return frames, (f"{len(frames)} frames of {self.path.name} held out of calibration (two runs of the "
                        "calibration side)")


def hold_out(spans: tuple[Span, ...]) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """(kept, held out): the spans' frames, in order, cut into ``CHOOSING_RUNS`` equal runs, the runs of
    ``CHOOSING_HELD_OUT`` held out — by position, as ``studio.train_data.choosing_split`` cuts a list, but
    on spans, so that nothing is read to make the cut. Too few frames to cut: the last span is held out and
    also kept."""
    from studio.train_data import CHOOSING_HELD_OUT, CHOOSING_RUNS

    total = sum(s.length for s in spans)
    if total < 4:
        return spans, spans[-1:]
    edges = np.linspace(0, total, CHOOSING_RUNS + 1).astype(int)
    kept: list[Span] = []
    held: list[Span] = []
    offset = 0  # position of the span's first frame among all the spans' frames
    for span in spans:
        start = span.start
        while start < span.stop:
            run = min(int(np.searchsorted(edges, offset + start - span.start, side="right")) - 1, CHOOSING_RUNS - 1)
            stop = min(span.stop, span.start + int(edges[run + 1]) - offset)
            (held if run in CHOOSING_HELD_OUT else kept).append(Span(span.path, start, stop))
            start = stop
        offset += span.length
    return tuple(kept), tuple(held)


def _media_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES else []
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _files(path: Path) -> tuple[Path, list[Path]]:
    """(the folder names are taken relative to, the media files) of a folder, a file or a data.yaml."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return _dataset_files(path)
    return (path if path.is_dir() else path.parent), _media_files(path)


def _dataset_files(path: Path) -> tuple[Path, list[Path]]:
    """The images of an Ultralytics data.yaml: every split it names (folders, or .txt lists of images)."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(errors="replace")) or {}
    except yaml.YAMLError as exc:
        raise BadInputError(f"not a readable data.yaml ({type(exc).__name__})", path=path,
                            fix="give an Ultralytics dataset yaml (path:, train:, val:) or an image folder") from None
    if not isinstance(spec, dict):
        raise BadInputError("not an Ultralytics data.yaml (no mapping)", path=path, fix="give a dataset yaml")
    root = Path(str(spec.get("path") or path.parent)).expanduser()
    root = root if root.is_absolute() else (path.parent / root)
    files: set[Path] = set()
    for split in ("train", "val", "test"):
        entries = spec.get(split) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            where = root / str(entry)
            if where.suffix == ".txt" and where.is_file():
                lines = [line.strip() for line in where.read_text(errors="replace").splitlines() if line.strip()]
                files.update(p for p in ((root / line).resolve() for line in lines) if p.is_file())
            elif where.exists():
                files.update(_media_files(where.resolve()))
    return root.resolve(), sorted(files)


def _name(file: Path, base: Path) -> str:
    return file.relative_to(base).as_posix() if file.is_relative_to(base) else file.as_posix()


def _bucket(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10


def _split_files(base: Path, files: list[Path]) -> tuple[list[Span], list[Span]]:
    names = {f: _name(f, base) for f in files}  # relative: the split survives moving the folder
    judging = [f for f in files if _bucket(names[f]) < JUDGING_BUCKETS]
    calibration = [f for f in files if f not in judging]
    # A handful of files may all hash to one side: move the one nearest the boundary so both have some.
    if len(files) >= 2 and not judging:
        judging = [min(calibration, key=lambda f: _bucket(names[f]))]
        calibration.remove(judging[0])
    elif len(files) >= 2 and not calibration:
        calibration = [max(judging, key=lambda f: _bucket(names[f]))]
        judging.remove(calibration[0])
    return [_file_span(f) for f in judging], [_file_span(f) for f in calibration]


def _file_span(path: Path) -> Span:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return Span(path, 0, video_length(path)[0])
    return Span(path, 0, 1)


def video_length(path: Path) -> tuple[int, float]:
    """(frames, fps) from the container; 0 frames for a file OpenCV cannot read."""
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), float(capture.get(cv2.CAP_PROP_FPS) or 25.0)
    finally:
        capture.release()


def _split_video(path: Path) -> tuple[list[Span], list[Span]]:
    total, fps = video_length(path)
    if total < VIDEO_SEGMENTS * 2:
        raise BadInputError(f"the video has {total} readable frames: too few to split", path=path,
                            fix="give a longer video or a folder of images")
    edges = np.linspace(0, total, VIDEO_SEGMENTS + 1).astype(int)
    gap = min(round(GAP_SECONDS * fps), int((edges[1] - edges[0]) // 4))
    judging: list[Span] = []
    calibration: list[Span] = []
    for index in range(VIDEO_SEGMENTS):
        start, stop = int(edges[index]), int(edges[index + 1])
        start += gap if index > 0 else 0
        stop -= gap if index < VIDEO_SEGMENTS - 1 else 0
        (judging if index in JUDGING_SEGMENTS else calibration).append(Span(path, start, stop))
    return judging, calibration


def _side_summary(spans: tuple[Span, ...]) -> dict[str, int]:
    return {"files": len({s.path for s in spans}), "frames": sum(s.length for s in spans)}


def read_spread(spans: tuple[Span, ...], count: int, ctx: Any = None) -> list[np.ndarray]:
    """``count`` frames evenly spread over the concatenated spans (all of them when there are fewer)."""
    total = sum(s.length for s in spans)
    if total == 0:
        return []
    positions = np.unique(np.linspace(0, total - 1, num=min(count, total)).astype(int))
    wanted: dict[Path, list[int]] = {}
    offset = 0
    for span in spans:
        inside = positions[(positions >= offset) & (positions < offset + span.length)] - offset + span.start
        if inside.size:
            wanted.setdefault(span.path, []).extend(int(i) for i in inside)
        offset += span.length
    frames: list[np.ndarray] = []
    for path, indices in wanted.items():
        if ctx is not None:
            ctx.check_cancelled()
        frames += _read_indices(path, indices)
    return frames


def _read_indices(path: Path, indices: list[int]) -> list[np.ndarray]:
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        try:
            return [read_image(path)]
        except BadInputError:
            return []  # an unreadable image in a folder is skipped, as a folder source does
    capture = cv2.VideoCapture(str(path))
    frames, position = [], 0
    try:
        for index in sorted(indices):
            if index - position > 50:  # far ahead: seek rather than decode every frame in between
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                position = index
            while position < index and capture.grab():
                position += 1
            ok, frame = capture.read()
            if not ok:
                break  # the container promised more frames than it holds
            frames.append(frame)
            position += 1
        return frames
    finally:
        capture.release()


SAMPLED_FILES = 256  # files whose content is sampled into the fingerprint (all names and sizes always are)
SAMPLE_BYTES = 1 << 16


def fingerprint(path: Path) -> str:
    """A short hash of every file's name and size, and the first and last 64 KiB of up to 256 files spread
    over the set: recorded in reports so that a figure can be traced to the frames it was measured on,
    without reading a whole dataset or video collection for each report."""
    digest = hashlib.sha256()
    base, files = _files(path)
    sampled = {int(i) for i in np.linspace(0, len(files) - 1, num=min(SAMPLED_FILES, len(files)))} if files else set()
    for index, file in enumerate(files):
        size = file.stat().st_size
        digest.update(f"{_name(file, base)}:{size}".encode())
        if index in sampled:
            with file.open("rb") as handle:
                digest.update(handle.read(SAMPLE_BYTES))
                if size > 2 * SAMPLE_BYTES:
                    handle.seek(-SAMPLE_BYTES, 2)
                    digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:16]
