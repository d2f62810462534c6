"""Summaries of measured timings and the process's memory, each saying how it was computed."""

from __future__ import annotations

import resource
import sys

import numpy as np

PERCENTILE_METHOD = "NumPy percentile, linear interpolation"


def summarize_ms(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min of per-frame milliseconds."""
    values = np.asarray(samples, np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "mean": round(float(values.mean()), 3), "min": round(float(values.min()), 3)}


def peak_rss_mb() -> float:
    """The process's resident-memory high-water mark since it started (getrusage ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def current_rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / (1024 * 1024), 1)
