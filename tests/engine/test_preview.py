"""The live pipeline on a real model and the bundled video: newest frame only, rings filling, A/B counts."""

from __future__ import annotations

import time

import numpy as np
import pytest

from studio.disagreement import unmatched_boxes
from studio.errors import StudioError
from studio.media import bundled_video
from studio.preview import Lane, LivePreview
from studio.ring import Ring
from studio.runtime.results import Detections


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_slow_model_drops_frames_instead_of_queueing_them(fall_handle):
    # Two lanes at one thread each: ~80 ms per frame against a 25 fps video played at its own rate.
    lanes = [Lane.create(name, fall_handle, threads=1) for name in ("A", "B")]
    lane = lanes[0]
    preview = LivePreview(str(bundled_video("bikes.mp4")), lanes, pace=True).start()
    try:
        _wait_for(lambda: preview.processed >= 8)
    finally:
        assert preview.stop()
    assert preview.error is None
    assert preview.processed >= 8 and preview.dropped > 0  # the video outruns the models: frames dropped
    assert preview.processed + preview.dropped <= preview.source_frames
    timings = lane.timings.last()
    assert len(timings["infer"]) == preview.processed and (timings["infer"] > 0).all()
    assert np.allclose(timings["total"], timings["pre"] + timings["infer"] + timings["post"])
    snapshot = preview.latest()
    assert snapshot.frame.shape == (272, 640, 3) and len(snapshot.predictions) == 2
    assert lane.model_mb is not None and len(preview.memory) >= 1


def test_an_unpaced_file_is_read_as_fast_as_the_model_takes_it(fall_handle):
    lane = Lane.create("A", fall_handle, threads=1)
    preview = LivePreview(str(bundled_video("bikes.mp4")), [lane], pace=False).start()
    try:
        _wait_for(lambda: preview.processed >= 10)
    finally:
        assert preview.stop()
    assert preview.dropped == 0  # no frame decoded only to be thrown away
    assert preview.source_frames - preview.processed <= 2  # at most the one waiting and the one being read


def test_ab_runs_both_variants_on_the_same_frames(fall_handle, tmp_path):
    from studio.sources import take_frames

    frame = take_frames(bundled_video("bikes.mp4"), 1)[0]
    lanes = [Lane.create(name, fall_handle, threads=1, warmup_frame=frame) for name in ("A", "B")]
    preview = LivePreview(str(bundled_video("bikes.mp4")), lanes, pace=True).start()
    try:
        _wait_for(lambda: preview.processed >= 5)
    finally:
        preview.stop()
    assert lanes[0].frames == lanes[1].frames == preview.processed
    assert preview.disagreement_total == 0  # the same model twice agrees on every box
    assert preview.latest().disagreements == 0 and lanes[0].fps() is not None


def test_a_missing_source_is_reported_not_raised(fall_handle, tmp_path):
    preview = LivePreview(str(tmp_path / "nope.mp4"), [Lane.create("A", fall_handle)]).start()
    _wait_for(lambda: preview.error is not None, timeout=10)
    assert preview.stop() and "nope.mp4" in preview.error and "no such file" in preview.error


def test_the_preview_needs_a_model():
    with pytest.raises(StudioError, match="at least one model"):
        LivePreview("x.mp4", [])


def test_ring_keeps_the_newest_rows_in_order():
    ring = Ring(("value",), capacity=4)
    for i in range(6):
        ring.append(float(i), at=100.0 + i)
    rows = ring.last(now=105.0)
    assert rows["value"].tolist() == [2.0, 3.0, 4.0, 5.0] and rows["t"].tolist() == [-3.0, -2.0, -1.0, 0.0]
    assert ring.last(1.5, now=105.0)["value"].tolist() == [4.0, 5.0]
    assert ring.percentiles("value")["p50"] == 3.5 and ring.written == 6


def test_unmatched_boxes_counts_both_sides():
    labels = ("a", "b")
    a = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                   np.array([0, 1]), labels)
    b = Detections(np.array([[1, 1, 10, 10], [50, 50, 60, 60]], np.float32), np.array([0.9, 0.5], np.float32),
                   np.array([0, 1]), labels)
    assert unmatched_boxes(a, a) == 0
    assert unmatched_boxes(a, b) == 2  # one match; one box on each side without a partner
    assert unmatched_boxes(a, Detections.empty(labels)) == 2
