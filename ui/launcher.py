"""``deploy-studio``: no arguments opens the window; ``deploy-studio gui [MODEL]`` or a bare model path
(what a file manager passes on double-click or drop) opens it in the window; other arguments are the
command line (studio.cli). ``gui MODEL --smoke [--smoke-export DIR]`` checks an installation end to end;
``install-desktop [--uninstall]`` registers the menu entry and file types for this program.

On a machine without a display (a server, CI) the window cannot open; the launcher says so and runs
the headless demo instead of failing with Qt's platform-plugin error. On a desktop that lacks a
library Qt's xcb platform plugin needs (``libxcb-cursor0``…), it names the packages to install and
exits 2 before Qt is imported (Qt itself would abort the process with a misleading line).
"""

from __future__ import annotations

import argparse
import os
import sys


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return True  # the user chose a platform (offscreen, xcb, wayland…)
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _is_model_path(arg: str) -> bool:
    """A path to open, not a command: an existing file or folder whose name is not a command's."""
    from pathlib import Path

    from studio.cli import COMMANDS

    return arg not in COMMANDS and not arg.startswith("-") and Path(arg).expanduser().exists()


def _gui_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deploy-studio gui", description="open the window")
    parser.add_argument("model", nargs="?", default=None, help="a model file or folder, or zoo:NAME")
    parser.add_argument("--smoke", action="store_true", help="load, preview 20 frames, exit 0 (1 on failure)")
    parser.add_argument("--smoke-export", default=None, help="with --smoke: also export ONNX into this folder")
    parser.add_argument("--debug", action="store_true", help="with a missing desktop library: the loader's messages")
    return parser.parse_args(args)


def install_desktop(args: list[str]) -> int:
    """``deploy-studio install-desktop [--uninstall]``: the menu entry, icon and file types, pointing at this
    program — a venv's console script or a bundle's executable (the bundle carries packaging/)."""
    import runpy
    from pathlib import Path

    from studio.child_python import is_frozen

    root = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    script = root / "packaging" / "install_desktop.py"
    if not script.is_file():
        print(f"deploy-studio: {script} is missing: run install-desktop from a checkout or a bundle", file=sys.stderr)
        return 2
    program = Path(sys.executable) if is_frozen() else Path(sys.executable).parent / "deploy-studio"
    sys.argv = [str(script), "--exec", str(program), *args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from studio.child_python import RUN_MODULE_FLAG, run_module

    if args and args[0] == RUN_MODULE_FLAG:  # a child process of the frozen bundle (it has no `python -m`)
        return run_module(args[1:])
    if args and args[0] == "install-desktop":
        return install_desktop(args[1:])
    if args and _is_model_path(args[0]):  # a file manager's double-click or a drop onto the program
        args = ["gui", *args]
    if args and args[0] != "gui":
        from studio.cli import main as cli_main

        return cli_main(args)
    options = _gui_args(args[1:])
    model = options.model
    if not has_display():
        print("deploy-studio: no display here (DISPLAY/WAYLAND_DISPLAY unset): running the headless demo; "
              "on a desktop, 'deploy-studio' opens the window", file=sys.stderr)
        from studio.cli import main as cli_main

        return cli_main(["demo"])
    from ui.platform_libs import check

    problem = check(debug=options.debug)  # before any Qt import: Qt aborts the process on a missing library
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from ui.app import main as gui_main

    return gui_main(model, smoke=options.smoke, smoke_export=options.smoke_export)


if __name__ == "__main__":
    sys.exit(main())
