"""Keep every library offline: the studio runs where only package registries are reachable.

Ultralytics tries to download weights, fonts and export dependencies; Hugging Face hub calls hang
for about 70 s before failing when there is no network. These variables make them fail at once.
They must be set before those libraries are imported, so ``studio/__init__`` applies them.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.paths import cache_dir

OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # Ultralytics' own loader then unpickles with weights_only too (used by --runtime ultralytics).
    "ULTRALYTICS_SAFE_LOAD": "1",
}


# Native libraries print to stderr behind Python's back (FFmpeg: "moov atom not found"); the studio
# reports those failures itself, in one line, so their own chatter is turned down unless asked for.
QUIET_ENV = {
    "OPENCV_FFMPEG_LOGLEVEL": "-8",
    "OPENCV_LOG_LEVEL": "ERROR",
    "TQDM_DISABLE": "1",  # converters' progress bars: the studio reports progress itself
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def apply() -> None:
    """Set the offline switches (without overriding a user's explicit choice of config folder)."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # Ultralytics writes a settings file on import; give it a folder we own instead of ~/.config.
    config = Path(os.environ.get("YOLO_CONFIG_DIR") or cache_dir() / "ultralytics")
    config.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config)
