"""Frame sources: images, folders, video, camera; failures are bounded and named."""

from __future__ import annotations

import shutil
import time

import pytest

from studio.errors import StudioError
from studio.sources import open_source, take_frames


def test_video_yields_every_frame(bikes_path):
    source = open_source(bikes_path)
    try:
        count = sum(1 for _ in source)
    finally:
        source.close()
    assert count == 250
    assert take_frames(bikes_path, 5)[0].shape == (272, 640, 3)


def test_folder_skips_and_counts_bad_images(tmp_path, bus_path):
    shutil.copy(bus_path, tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_text("not an image")
    source = open_source(tmp_path)
    frames = list(source)
    assert len(frames) == 1 and [p.name for p in source.skipped] == ["b.jpg"]


def test_missing_camera_fails_fast_naming_the_index():
    start = time.perf_counter()
    with pytest.raises(StudioError, match="camera 57"):
        open_source("57")
    assert time.perf_counter() - start < 10


def test_empty_folder(tmp_path):
    with pytest.raises(StudioError, match="no images"):
        open_source(tmp_path)
