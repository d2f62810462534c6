"""Render assets/icons/deploy-studio.svg into the raster icons each platform needs.

PNG at the freedesktop hicolor sizes (Linux), a multi-size .ico (Windows, PyInstaller's ``icon=``)
and an .icns (macOS ``.app``). Run after editing the SVG; the results are committed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py
"""

from __future__ import annotations

import io
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "assets" / "icons"
SVG = ICONS / "deploy-studio.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    QGuiApplication.instance() or QGuiApplication([])
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(SVG)).render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data)


def main() -> None:
    from PIL import Image

    largest = None
    for size in PNG_SIZES:
        png = render(size)
        (ICONS / f"deploy-studio-{size}.png").write_bytes(png)
        largest = png
    image = Image.open(io.BytesIO(largest))
    image.save(ICONS / "deploy-studio.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    image.save(ICONS / "deploy-studio.icns")
    print(f"wrote {len(PNG_SIZES)} PNGs, deploy-studio.ico and deploy-studio.icns into {ICONS}")


if __name__ == "__main__":
    main()
