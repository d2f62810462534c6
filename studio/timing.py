"""Two (or more) things timed against each other fairly: interleaved on the same inputs, in one run.

On a shared, noisy machine a measurement of A followed by a measurement of B compares two moments as much
as two models; alternating who goes first on every input spreads the noise evenly over both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def alternating(count: int, index: int) -> list[int]:
    """The order ``count`` contenders go in at input ``index``: forwards on even inputs, backwards on odd."""
    order = list(range(count))
    return order if index % 2 == 0 else order[::-1]


def interleaved_ms(calls: Sequence[Callable[[Any], Any]], inputs: Sequence[Any], *, warmup: int,
                   on_input: Callable[[int], Any] | None = None) -> list[list[float]]:
    """Milliseconds of each call per input, alternating order, the first ``warmup`` inputs not recorded.

    ``on_input(index)`` runs before each input (progress, a cancellation check) and is not timed.
    """
    times: list[list[float]] = [[] for _ in calls]
    for index, item in enumerate(inputs):
        if on_input is not None:
            on_input(index)
        for which in alternating(len(calls), index):
            start = time.perf_counter()
            calls[which](item)
            if index >= warmup:
                times[which].append((time.perf_counter() - start) * 1e3)
    return times
