"""``deploy-studio``: no arguments opens the window; any arguments are the command line (studio.cli).

On a machine without a display (a server, CI) the window cannot open; the launcher says so and runs
the headless demo instead of failing with Qt's platform-plugin error.
"""

from __future__ import annotations

import os
import sys


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return True  # the user chose a platform (offscreen, xcb, wayland…)
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in ("gui",):
        from studio.cli import main as cli_main

        return cli_main(args)
    model = args[1] if len(args) > 1 else None
    if not has_display():
        print("deploy-studio: no display here (DISPLAY/WAYLAND_DISPLAY unset): running the headless demo; "
              "on a desktop, 'deploy-studio' opens the window", file=sys.stderr)
        from studio.cli import main as cli_main

        return cli_main(["demo"])
    from ui.app import main as gui_main

    return gui_main(model)


if __name__ == "__main__":
    sys.exit(main())
