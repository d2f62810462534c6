"""Re-make docs/screenshot.png: the window during an A/B preview of FP32 vs an INT8 variant.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from studio import offline


def main() -> None:
    offline.apply()
    from PySide6.QtCore import QEventLoop, QSettings

    from ui.app import create_app
    from ui.main_window import MainWindow

    app = create_app()
    out = Path(__file__).with_name("screenshot.png")
    settings = QSettings(str(Path("/tmp") / "deploy-studio-screenshot.ini"), QSettings.Format.IniFormat)
    settings.clear()
    # People in the frames, so the boxes show: Ultralytics' bus.jpg and zidane.jpg as an image folder.
    import shutil
    import tempfile

    from studio.media import bundled_image

    folder = Path(tempfile.mkdtemp(prefix="deploy-studio-shot-"))
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(bundled_image(name), folder / name)
    settings.setValue("source", str(folder))
    window = MainWindow(settings=settings)
    window.resize(1600, 1000)
    window.show()
    window.finish_startup()

    def spin(condition, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not condition() and time.monotonic() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    window.open_model("zoo:yolov8s-fall")
    spin(lambda: window.preview is not None, 300)
    box = window.optimize_panel.boxes["quantize.mixed_int8"]
    spin(box.run.isEnabled, 120)
    box.run.click()
    spin(lambda: len(window.session.variants) > 1, 900)
    if len(window.session.variants) < 2:
        sys.exit(f"no variant was made: {window.status_text.text()}")
    window.variants_panel.preview_b.emit("v1")
    spin(lambda: window.preview is not None and len(window.preview.lanes) == 2, 120)
    spin(lambda: False, 25)  # let the charts fill
    window.tabs.setCurrentWidget(window.variants_panel)
    spin(lambda: False, 1)
    window.grab().save(str(out))
    print(f"wrote {out}")
    window.close()


if __name__ == "__main__":
    main()
