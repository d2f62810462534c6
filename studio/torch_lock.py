"""One thread at a time runs a PyTorch module in this process.

torch's FLOP counter (``FlopCounterMode``, through its ``ModuleTracker``) and torch-pruning's tracer
install *global* module hooks, which then fire inside every other thread's forward pass. Two
background jobs on the same model — the layer table being counted while the plugin panels check what
applies — deadlocked the whole process here (every thread waiting, the window frozen). Work that
runs a torch module off the GUI thread holds this lock; it is re-entrant, so nested helpers may too.
"""

from __future__ import annotations

import threading

TORCH_MODULE_LOCK = threading.RLock()
