"""Fixed-size ring buffers of timestamped samples, written by one thread and read by another.

The live charts read the last minute many times a second; the inference thread writes one row per
frame. Arrays are preallocated (no allocation per frame) and a lock guards the write index only.
"""

from __future__ import annotations

import threading
import time

import numpy as np


class Ring:
    """``capacity`` rows of (monotonic time, *columns) float64 values."""

    def __init__(self, columns: tuple[str, ...], capacity: int = 4096):
        self.columns = columns
        self.capacity = capacity
        self._data = np.zeros((capacity, 1 + len(columns)), np.float64)
        self._count = 0  # rows ever written
        self._lock = threading.Lock()

    def append(self, *values: float, at: float | None = None) -> None:
        with self._lock:
            row = self._data[self._count % self.capacity]
            row[0] = time.monotonic() if at is None else at
            row[1:] = values
            self._count += 1

    def __len__(self) -> int:
        return min(self._count, self.capacity)

    @property
    def written(self) -> int:
        return self._count

    def last(self, seconds: float | None = None, now: float | None = None) -> dict[str, np.ndarray]:
        """Rows of the last ``seconds`` (all kept rows when None), oldest first, as named columns
        plus ``t`` (seconds relative to ``now``, so ≤ 0)."""
        with self._lock:
            count = self._count
            kept = min(count, self.capacity)
            start = count - kept
            order = (np.arange(start, count) % self.capacity) if kept else np.zeros(0, np.int64)
            rows = self._data[order].copy()
        now = time.monotonic() if now is None else now
        if seconds is not None and len(rows):
            rows = rows[rows[:, 0] >= now - seconds]
        out = {"t": rows[:, 0] - now}
        for index, name in enumerate(self.columns, start=1):
            out[name] = rows[:, index]
        return out

    def percentiles(self, column: str, seconds: float | None = None,
                    points: tuple[float, ...] = (50, 95)) -> dict[str, float] | None:
        values = self.last(seconds)[column]
        if not len(values):
            return None
        return {f"p{int(p)}": float(v) for p, v in zip(points, np.percentile(values, points), strict=True)}
