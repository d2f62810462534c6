"""Cycles are collected on the GUI thread only (ui.gui_gc): a worker that allocates never frees Qt objects."""

from __future__ import annotations

import gc
import threading


class _Cycle:
    """A reference cycle that records the thread that finally collects it."""

    def __init__(self, seen: list[str]):
        self.me, self.seen = self, seen

    def __del__(self):
        self.seen.append(threading.current_thread().name)


def test_a_busy_worker_never_collects_and_the_gui_thread_does(qtbot, window):
    assert not gc.isenabled()
    seen: list[str] = []
    kept: list[list] = []
    _Cycle(seen)

    def allocate():
        # Far past generation 0's threshold: with automatic collection on, the cycle dies here. What it
        # allocates stays alive: freed at once, the count of generation 0 would fall back under the
        # threshold and the GUI thread's timer would wait for other allocations (timed out once in CI).
        kept.append([[i] for i in range(200_000)])

    worker = threading.Thread(target=allocate, name="allocating-worker")
    worker.start()
    worker.join()
    assert seen == []
    qtbot.waitUntil(lambda: seen != [], timeout=10_000)
    assert seen == [threading.main_thread().name]
    kept.clear()
