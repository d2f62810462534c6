"""The shared measuring helpers: interleaved timing and unit rows."""

from __future__ import annotations

import time

import numpy as np

from studio.timing import alternating, interleaved_ms
from studio.vectors import row_cosines, unit_rows


def test_interleaved_timing_alternates_and_skips_the_warm_up():
    calls_seen = []

    def contender(name, seconds):
        def call(item):
            calls_seen.append((item, name))
            time.sleep(seconds)
        return call

    seen_inputs = []
    times = interleaved_ms([contender("a", 0.002), contender("b", 0.0)], [0, 1, 2, 3], warmup=1,
                           on_input=seen_inputs.append)
    assert calls_seen == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (3, "b"), (3, "a")]
    assert seen_inputs == [0, 1, 2, 3]
    assert [len(t) for t in times] == [3, 3]
    assert min(times[0]) >= 2.0 > max(times[1])


def test_alternating_three():
    assert alternating(3, 0) == [0, 1, 2] and alternating(3, 1) == [2, 1, 0]


def test_unit_rows_and_cosines():
    rows = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert np.allclose(unit_rows(rows), [[0.6, 0.8], [0.0, 0.0]])
    assert np.allclose(row_cosines(rows, np.array([[6.0, 8.0], [1.0, 0.0]])), [1.0, 0.0])
