"""Where frames come from: an image, a folder of images, a video file or a camera, behind one iterator.

Every source yields BGR ``uint8`` frames and is closed after use. Failures name the source and say
what to do; opening a camera is bounded in time so that a missing device never hangs the app.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from studio.errors import BadInputError, StudioError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
CAMERA_OPEN_TIMEOUT_S = 5.0


def read_image(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8) if path.exists() else None
    if data is None:
        raise BadInputError("no such image", path=path, fix="check the path")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise BadInputError("not a readable image (OpenCV could not decode it)", path=path,
                            fix=f"give a {', '.join(sorted(IMAGE_SUFFIXES))} file")
    return image


class ImageSource:
    def __init__(self, paths: list[Path], name: str):
        self.paths, self.name = paths, name
        self.skipped: list[Path] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        single = len(self.paths) == 1
        for path in self.paths:
            try:
                yield read_image(path)
            except BadInputError:
                if single:
                    raise
                self.skipped.append(path)  # a folder keeps going past a bad file, and counts it

    def close(self) -> None:
        pass


class VideoSource:
    """A video file, or a camera when ``spec`` is an integer index."""

    def __init__(self, capture: cv2.VideoCapture, name: str, path: Path | None = None):
        self.capture, self.name, self.path = capture, name, path
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        yielded = 0
        while True:
            ok, frame = self.capture.read()
            if not ok or frame is None:
                self._check_ended_cleanly(yielded)
                return
            yielded += 1
            yield frame

    def _check_ended_cleanly(self, yielded: int) -> None:
        """A camera that stops delivering was unplugged or taken; a file that ends well before the frame
        count its header declares is truncated. Both stop the preview with the reason, not silently."""
        if self.path is None:
            raise StudioError(f"{self.name} stopped delivering frames after {yielded} (unplugged, or taken by "
                              "another program)", fix="reconnect it, then press Play")
        # Headers of some containers estimate the count: only a clear shortfall (over 10 %) is an error.
        if self.frame_count > 0 and yielded < 0.9 * self.frame_count:
            raise BadInputError(f"the video ended at frame {yielded} of the {self.frame_count} its header declares: "
                                "the file is truncated or damaged", path=self.path,
                                fix="copy the file again; press Play to watch what is there")

    def close(self) -> None:
        self.capture.release()


def open_video(path: Path) -> VideoSource:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise BadInputError("not a readable video (OpenCV could not open it)", path=path,
                            fix=f"give a {', '.join(sorted(VIDEO_SUFFIXES))} file")
    ok, _ = capture.read()
    if not ok:
        capture.release()
        raise BadInputError("the video has no readable frame", path=path, fix="check the file is not truncated")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return VideoSource(capture, path.name, path)


def open_camera(index: int, timeout_s: float = CAMERA_OPEN_TIMEOUT_S) -> VideoSource:
    """Open camera ``index``; gives up after ``timeout_s`` instead of hanging on a bad device."""
    box: dict[str, cv2.VideoCapture] = {}
    opener = threading.Thread(target=lambda: box.setdefault("cap", cv2.VideoCapture(index)), daemon=True)
    opener.start()
    opener.join(timeout_s)
    capture = box.get("cap")
    if capture is None or not capture.isOpened():
        if capture is not None:
            capture.release()
        reason = "did not answer in time" if opener.is_alive() else "cannot be opened"
        raise StudioError(f"camera {index} {reason}",
                          fix=f"check a camera is connected (/dev/video{index}) and free, or pass a video file")
    return VideoSource(capture, f"camera {index}")


def open_source(spec: str | Path):
    """An image, a folder of images, a video file, or a camera index ("0" or "camera:0")."""
    text = str(spec)
    if text.isdigit() or text.startswith("camera:"):
        return open_camera(int(text.removeprefix("camera:")))
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise BadInputError("the folder holds no images", path=path,
                                fix=f"put {', '.join(sorted(IMAGE_SUFFIXES))} files in it")
        return ImageSource(images, path.name)
    if not path.exists():
        raise BadInputError("no such file or folder", path=path, fix="check the path, or give a camera index")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return open_video(path)
    return ImageSource([path], path.name)


def take_frames(spec: str | Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a source (fewer when it is shorter), decoded up front."""
    source = open_source(spec)
    try:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) >= count:
                break
        return frames
    finally:
        source.close()
