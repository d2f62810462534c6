"""The bundle's entry point: what ``deploy-studio`` does in a venv (PyInstaller needs a script, not a
console-script entry point)."""

import sys

from ui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
