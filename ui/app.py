"""Start the desktop app: the window first, then everything heavy behind it.

The window is shown before the plugin registry, the model or any converter is imported; the demo
model then loads behind a progress bar. ``main()`` returns the process exit code.
"""

from __future__ import annotations

import sys
import time

from studio import offline

STARTED = time.perf_counter()


def create_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName("Deploy Studio")
    app.setApplicationName("Deploy Studio")
    app.setStyle("Fusion")
    from pathlib import Path

    from PySide6.QtGui import QIcon

    icon = Path(__file__).resolve().parent.parent / "assets" / "icons" / "deploy-studio.svg"
    if icon.is_file():  # a checkout or a bundle that carries assets/
        app.setWindowIcon(QIcon(str(icon)))
    return app


def main(model: str | None = None, source: str | None = None, smoke: bool = False,
         smoke_export: str | None = None) -> int:
    offline.apply()
    app = create_app()
    from PySide6.QtCore import QTimer

    from ui.main_window import DEMO_MODEL, MainWindow

    window = MainWindow()
    if source:
        window.state.set_source(source)
    window.show()
    shown = time.perf_counter() - STARTED
    window.show_status(f"Window shown {shown:.2f} s after launch; loading {model or DEMO_MODEL}…")

    def after_show() -> None:
        window.finish_startup()
        from ui.autosave import start

        start(window, model, DEMO_MODEL)

    QTimer.singleShot(0, after_show)
    checks = []  # the smoke check (and its timer) is held here as long as the app runs
    if smoke or smoke_export:
        from pathlib import Path

        print(f"smoke: window shown {shown:.2f} s after ui.app was imported", flush=True)

        from ui.smoke import Smoke

        checks.append(Smoke(app, window, export_dir=Path(smoke_export) if smoke_export else None))
    code = app.exec()
    window.settings.sync()
    leave_past_native_workers(code)
    return code


def leave_past_native_workers(code: int) -> None:
    """End the process now when a worker is still inside native code (a FLOP count, an export).

    The window's close cancels jobs and waits a few seconds, but a torch or onnxruntime call cannot be
    interrupted; if the interpreter then tears down around it, C++ aborts ("terminate called without an
    active exception", exit 134) after a run that succeeded. Everything worth keeping — settings, the
    workspace, published files — is already written by then.
    """
    import os
    import threading

    if any(t.is_alive() for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
