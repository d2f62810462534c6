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
    _Cycle(seen)

    def allocate():
        # Far past generation 0's threshold: with automatic collection on, the cycle dies here.
        junk = [[i] for i in range(200_000)]
        del junk

    worker = threading.Thread(target=allocate, name="allocating-worker")
    worker.start()
    worker.join()
    assert seen == []
    qtbot.waitUntil(lambda: seen != [], timeout=10_000)
    assert seen == [threading.main_thread().name]
