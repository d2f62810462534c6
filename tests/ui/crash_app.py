"""A real app session to be killed: ``python -m tests.ui.crash_app SETTINGS.ini MODEL PLUGIN``.

Opens the window offscreen on MODEL, runs PLUGIN from the Optimize tab as a user does, prints "ready"
once the variant is in the table, then idles until it is killed (the test sends SIGKILL)."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QSettings, QTimer


def main(settings_path: str, model: str, plugin: str) -> int:
    from ui.app import create_app
    from ui.main_window import MainWindow

    app = create_app()
    window = MainWindow(settings=QSettings(settings_path, QSettings.Format.IniFormat))
    window.show()
    window.finish_startup()
    window.open_model(model)
    state = {"ran": False}

    def poll() -> None:
        session = window.session
        if session is None or window.job.running:
            return
        if not state["ran"]:
            state["ran"] = True
            window.run_plugin(plugin, {})
        elif len(session.variants) == 2 and window.variants_panel.table.rowCount() == 2:
            print("ready", flush=True)
            timer.stop()

    timer = QTimer(interval=100, timeout=poll)
    timer.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
