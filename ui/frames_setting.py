"""The model's own frames for judging and calibration: a folder or a video, chosen per model.

The choice is remembered per model (by its file's sha256, so a renamed copy keeps it) and every
variant made or exported afterwards calibrates on one side of those frames and is judged on the
other (``studio.data``). Without a choice the bundled street and cartoon frames are used, which say
little about a model of another domain — the variants table then flags thin evidence.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.errors import StudioError

BUNDLED = "bundled media (bus.jpg, zidane.jpg, bikes.mp4, bigbuckbunny.mp4)"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv)"


def settings_key(sha256: str) -> str:
    return f"model_frames/{sha256}"


class FramesSetting(QWidget):
    """'Frames for judging and calibration: <where>', then [Folder…] [Video…] [Bundled]."""

    changed = Signal(object)  # Path | None

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings, self.model_key, self.frames = settings, None, None
        layout = QVBoxLayout(self)  # the label above its buttons: the inspector dock stays narrow
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(BUNDLED)
        self.label.setObjectName("frames_label")
        self.label.setWordWrap(True)
        layout.addWidget(self.label)
        buttons = QHBoxLayout()
        for text, handler in (("Folder…", self._choose_folder), ("Video…", self._choose_video),
                              ("Bundled", lambda: self.set_frames(None))):
            button = QPushButton(text)
            button.clicked.connect(handler)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.setEnabled(False)

    def load_for(self, sha256: str) -> Path | None:
        """Show (and return) what was chosen for this model before, if it still exists."""
        self.model_key = settings_key(sha256)
        remembered = str(self.settings.value(self.model_key, "") or "")
        self.setEnabled(True)
        self._show(Path(remembered) if remembered and Path(remembered).exists() else None)
        return self.frames

    def set_frames(self, path: Path | None) -> bool:
        """Use ``path`` (checked and split first: a bad folder is refused here, not mid-job)."""
        description = None
        if path is not None:
            from studio.data import FrameSet

            try:
                description = FrameSet.open(path).sides()  # the fingerprint reads files: reports compute it
            except StudioError as exc:
                self.label.setText(f"{BUNDLED} — not {Path(path).name}: {exc}")
                return False
        self._show(path, description)
        if self.model_key:
            self.settings.setValue(self.model_key, "" if path is None else str(path))
        self.changed.emit(path)
        return True

    def _show(self, path: Path | None, description: dict | None = None) -> None:
        self.frames = path
        if path is None:
            self.label.setText(BUNDLED)
        elif description:
            judging, calibration = description["judging"], description["calibration"]
            self.label.setText(f"{path} — judging {judging['frames']} frames, calibration {calibration['frames']} "
                               f"(no frame shared)")
        else:
            self.label.setText(str(path))
        self.label.setToolTip(self.label.text())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Frames for judging and calibration")
        if folder:
            self.set_frames(Path(folder))

    def _choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A video for judging and calibration", "", VIDEO_FILTER)
        if path:
            self.set_frames(Path(path))
