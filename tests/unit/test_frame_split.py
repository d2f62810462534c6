"""The model's own frames: a folder, a data.yaml or one video split into calibration and judging sides
(studio.data), on tiny generated images and a 50-frame video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from studio.data import FrameSet, Span, fingerprint, read_spread
from studio.errors import BadInputError


def _image(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))
    return path


def _folder(root: Path, count: int) -> Path:
    for index in range(count):
        _image(root / f"img_{index:03d}.png", index)
    return root


def _names(spans: tuple[Span, ...]) -> set[str]:
    return {span.path.name for span in spans}


def test_a_folder_is_split_by_whole_files_into_two_disjoint_sides(tmp_path):
    frames = FrameSet.open(_folder(tmp_path / "cams", 30))
    judging, calibration = _names(frames.judging), _names(frames.calibration)
    assert judging and calibration and not judging & calibration
    assert judging | calibration == {f"img_{i:03d}.png" for i in range(30)}
    assert all((span.start, span.stop, span.length) == (0, 1, 1) for span in frames.judging + frames.calibration)
    assert 5 <= len(judging) <= 20  # about 40 %: a hash, so not exact
    assert frames.sides()["judging"] == {"files": len(judging), "frames": len(judging)}
    assert frames.sides()["split"] == "whole files by a stable hash of their name, about 40 % judge"


def test_the_split_is_stable_when_files_are_added_or_the_folder_moves(tmp_path):
    before = FrameSet.open(_folder(tmp_path / "a", 30))
    _image(tmp_path / "a" / "zz_new.png", 200)
    after = FrameSet.open(tmp_path / "a")
    assert _names(before.judging) <= _names(after.judging)
    assert _names(before.calibration) <= _names(after.calibration)
    moved = FrameSet.open((tmp_path / "a").rename(tmp_path / "b"))
    assert _names(moved.judging) == _names(after.judging)


def test_hidden_folders_and_other_files_are_not_frames(tmp_path):
    root = _folder(tmp_path / "set", 6)
    _image(root / ".thumbnails" / "t.png", 1)
    (root / "labels.txt").write_text("0 0.5 0.5 0.1 0.1")
    _image(root / "nested" / "deep.jpg", 9)
    frames = FrameSet.open(root)
    assert _names(frames.judging + frames.calibration) == {f"img_{i:03d}.png" for i in range(6)} | {"deep.jpg"}


def test_two_images_make_one_per_side(tmp_path):
    frames = FrameSet.open(_folder(tmp_path / "two", 2))
    assert len(frames.judging) == 1 and len(frames.calibration) == 1


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root / "missing", "no such frames file or folder"),
    (lambda root: root, "no images or videos here"),
    (lambda root: _image(root / "one.png", 3).parent, "too few frames to split"),
])
def test_unusable_frame_sources_are_refused(tmp_path, make, message):
    with pytest.raises(BadInputError, match=message):
        FrameSet.open(make(tmp_path))


def test_an_ultralytics_data_yaml_reads_every_split_it_lists(tmp_path):
    _folder(tmp_path / "ds" / "images" / "train", 5)
    _image(tmp_path / "ds" / "images" / "val" / "v.png", 1)
    _image(tmp_path / "ds" / "extra" / "listed.png", 2)
    _image(tmp_path / "ds" / "unlisted" / "u.png", 3)
    (tmp_path / "ds" / "test.txt").write_text("extra/listed.png\n\nextra/missing.png\n")
    spec = tmp_path / "ds" / "data.yaml"
    spec.write_text("path: .\ntrain: images/train\nval: [images/val]\ntest: test.txt\nnames: {0: person}\n")
    frames = FrameSet.open(spec)
    expected = {f"img_{i:03d}.png" for i in range(5)} | {"v.png", "listed.png"}
    assert _names(frames.judging + frames.calibration) == expected
    spec.write_text("- not\n- a mapping\n")
    with pytest.raises(BadInputError, match="no mapping"):
        FrameSet.open(spec)


def test_a_lone_video_is_cut_into_segments_with_guard_gaps(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (16, 16))
    for index in range(50):
        writer.write(np.full((16, 16, 3), index * 5, np.uint8))
    writer.release()
    frames = FrameSet.open(path)
    # 5 segments of 10 frames; the 2nd and 4th judge; 2 frames (min(0.5 s × 10 fps, 10 // 4)) left out per boundary
    assert [(s.start, s.stop) for s in frames.judging] == [(12, 18), (32, 38)]
    assert [(s.start, s.stop) for s in frames.calibration] == [(0, 8), (22, 28), (42, 50)]
    judged, described = frames.judging_frames(4)
    assert len(judged) == 4 and judged[0].shape == (16, 16, 3)
    assert described == f"4 frames spread over the judging side of clip.avi ({frames.how})"


def test_frames_are_spread_over_the_whole_side_never_the_first_n(tmp_path):
    paths = [_image(tmp_path / f"f{i}.png", i * 10) for i in range(10)]
    spans = tuple(Span(p, 0, 1) for p in paths)
    picked = read_spread(spans, 4)
    assert [int(frame[0, 0, 0]) for frame in picked] == [0, 30, 60, 90]
    assert len(read_spread(spans, 50)) == 10 and read_spread((), 5) == []
    (tmp_path / "f3.png").write_bytes(b"not an image")
    assert [int(frame[0, 0, 0]) for frame in read_spread(spans, 4)] == [0, 60, 90]  # an unreadable file is skipped


def test_the_fingerprint_follows_names_and_contents(tmp_path):
    root = _folder(tmp_path / "set", 4)
    first = fingerprint(root)
    assert first == fingerprint(root) and len(first) == 16
    _image(root / "img_001.png", 77)  # same name, same size, other pixels
    changed = fingerprint(root)
    assert changed != first
    (root / "img_001.png").rename(root / "renamed.png")
    assert fingerprint(root) != changed
    assert FrameSet.open(root).describe()["fingerprint"] == fingerprint(root)
