"""Python's cycle collector runs on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate. When that is a worker (a plugin
check deep-copying a model, a preview lane), it may free a closed window's Qt objects there; their C++
destructors take Qt locks the GUI thread holds while it waits for the GIL to call a Python override —
both threads stop for good. That froze the test suite in CI (a check thread in ``deepcopy``, the GUI
thread inside ``QGraphicsScene.__init__``). pyqtgraph's ``GarbageCollector`` is the known remedy:
automatic collection off, collections on a GUI-thread timer with the same generation thresholds.
"""

from __future__ import annotations

COLLECT_INTERVAL_S = 1.0
_collector = None


def collect_on_gui_thread() -> None:
    """Install the timer once per process (call with a QApplication running, on the GUI thread)."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=COLLECT_INTERVAL_S)
