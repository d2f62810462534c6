"""Evidence and bootstrap intervals: what a fidelity figure rests on."""

from __future__ import annotations

import numpy as np
import pytest

from studio.evaluate.evidence import MIN_TARGETS, bootstrap_interval, evidence, interval_text


def test_one_frame_has_no_interval():
    assert bootstrap_interval(lambda idx: 1.0, frames=1) is None
    assert bootstrap_interval(lambda idx: 1.0, frames=0) is None


def test_a_constant_figure_has_a_zero_width_interval():
    interval = bootstrap_interval(lambda idx: 0.5, frames=10, resamples=20)
    assert (interval["low"], interval["high"], interval["level"]) == (0.5, 0.5, 0.95)
    assert interval["method"] == "percentile bootstrap over the 10 frames, 20 resamples, seed 0"


def test_the_interval_is_seeded_and_surrounds_the_mean():
    per_frame = np.array([0.2, 0.9, 0.4, 0.8, 0.6, 0.7, 0.3, 0.5, 0.65, 0.75])
    first = bootstrap_interval(lambda idx: float(per_frame[idx].mean()), frames=len(per_frame))
    again = bootstrap_interval(lambda idx: float(per_frame[idx].mean()), frames=len(per_frame))
    assert first == again
    assert first["low"] < per_frame.mean() < first["high"]
    assert per_frame.min() < first["low"] and first["high"] < per_frame.max()


def test_resampling_draws_frame_indices_with_replacement():
    seen: list[np.ndarray] = []
    bootstrap_interval(lambda idx: seen.append(idx) or 0.0, frames=5, resamples=30)
    assert len(seen) == 30 and all(len(idx) == 5 and idx.min() >= 0 and idx.max() < 5 for idx in seen)
    assert any(len(set(idx.tolist())) < 5 for idx in seen)  # some frame drawn twice


@pytest.mark.parametrize(("count", "thin"), [(0, True), (MIN_TARGETS - 1, True), (MIN_TARGETS, False), (500, False)])
def test_evidence_is_thin_below_the_threshold(count, thin):
    result = evidence(frames=12, count=count, unit="boxes")
    assert result["thin"] is thin and result["enough_at"] == MIN_TARGETS
    assert ("warning" in result) is thin
    if thin:
        assert result["warning"].startswith(f"thin evidence: {count} boxes on 12 frames")
        assert "--frames PATH" in result["warning"]


def test_interval_text():
    assert interval_text({"value": 0.9}) == "0.9"
    boxes = {"value": 0.74, "interval": {"low": 0.52, "high": 0.88}, "evidence": evidence(12, 26, "boxes")}
    assert interval_text(boxes) == "0.74 [0.52–0.88] on 26 boxes in 12 frames (thin evidence)"
    frames = {"value": 0.97, "evidence": evidence(60, 60, "frames")}
    assert interval_text(frames) == "0.97 on 60 frames"
