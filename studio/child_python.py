"""The command line that runs a module in a worker process, from a venv or a frozen bundle.

Exports, plugin runs and the onnxruntime-genai builder run in child processes (a kill is a clean
cancel). In a venv the command is ``python -m studio.child_python MODULE ARGS…``; in a PyInstaller
bundle ``sys.executable`` is the studio itself, which has no ``-m``, so it is ``deploy-studio
--run-module MODULE ARGS…`` (the launcher's flag). Both run ``run_module`` here, which first ties the
worker's life to the studio's, then runs MODULE as ``__main__``.
"""

from __future__ import annotations

import signal
import sys

RUN_MODULE_FLAG = "--run-module"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def module_command(module: str, *args: str) -> list[str]:
    """Both forms go through ``run_module`` below, which first ties the child's life to the studio's."""
    if is_frozen():
        return [sys.executable, RUN_MODULE_FLAG, module, *args]
    return [sys.executable, "-m", "studio.child_python", module, *args]


def run_module(argv: list[str]) -> int:
    """``--run-module MODULE ARGS…``: run MODULE as ``__main__`` with ARGS as its command line."""
    import runpy

    if not argv:
        print(f"deploy-studio: {RUN_MODULE_FLAG} needs a module name", file=sys.stderr)
        return 2
    module, *args = argv
    die_with_parent()
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (one we may not signal counts as running)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """A worker's first act (Linux): the kernel kills it when the studio dies (crash, kill -9), so no
    orphan keeps converting or publishing behind a window that is gone. Elsewhere a no-op.

    Called in the child itself rather than as ``preexec_fn`` (which is unsafe in a process with threads,
    as the window is). If the parent died before this ran, the child is already an orphan: it exits."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if parent == 1 or os.getppid() != parent:
        os._exit(1)


if __name__ == "__main__":
    sys.exit(run_module(sys.argv[1:]))
