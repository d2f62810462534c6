"""The command line that runs ``python -m MODULE`` in a child process, from a venv or a frozen bundle.

Exports and the onnxruntime-genai builder run in child processes (a kill is a clean cancel). In a
PyInstaller bundle ``sys.executable`` is the studio itself, which has no ``-m``: the launcher takes
``--run-module MODULE ARGS…`` instead and runs the module from the bundle's archive.
"""

from __future__ import annotations

import sys

RUN_MODULE_FLAG = "--run-module"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def module_command(module: str, *args: str) -> list[str]:
    if is_frozen():
        return [sys.executable, RUN_MODULE_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def run_module(argv: list[str]) -> int:
    """``--run-module MODULE ARGS…``: run MODULE as ``__main__`` with ARGS as its command line."""
    import runpy

    if not argv:
        print(f"deploy-studio: {RUN_MODULE_FLAG} needs a module name", file=sys.stderr)
        return 2
    module, *args = argv
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
