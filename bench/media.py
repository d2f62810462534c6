"""More real frames for the benchmarks, taken from Debian's package registry into the studio's cache.

The media that ship inside the studio's PyPI packages hold a few hundred frames (bikes.mp4, 250; Big
Buck Bunny, 132) and about a dozen of a detector's boxes on the fixed fidelity set: too thin to tell a
0.85 mAP50 from a 0.95. Two sets, each fetched with ``apt-get download`` (no root needed) and never
run by the app (licences in assets/THIRD_PARTY.md):

- ``vtest`` (the default): OpenCV's pedestrian video ``vtest.avi`` (795 frames, 768×576, a street scene
  with several walking people in every frame) from ``opencv-doc``. For detectors.
- ``images``: every photo, painting and drawing of GCompris (``gcompris-qt-data``: images inside its Qt
  resource files, read with PySide6's ``QResource``) and of Tux Paint's stamps (``tuxpaint-stamps-default``:
  animals, food, vehicles, objects; PNG cut-outs laid on white) — about 1,500 images of at least 64 px a
  side, in one folder per package and activity. For classifiers: on vtest an ImageNet classifier's answers
  are near-ties (median top-1 probability 0.12), so agreement there measures tie-breaking.

It prints the path (a file or a folder) to give to ``--frames``.

    .venv/bin/python bench/media.py                 # prints the path of vtest.avi
    .venv/bin/python bench/media.py --set images    # prints the path of the image folder
    .venv/bin/python bench/recovery.py --frames "$(.venv/bin/python bench/media.py)"
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeGuard

import cv2
import numpy as np

from studio.paths import cache_dir

VTEST_PACKAGE = "opencv-doc"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
GCOMPRIS_PACKAGE = "gcompris-qt-data"
GCOMPRIS_RESOURCES = "usr/share/gcompris-qt/rcc"
TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 64  # icons and buttons smaller than this are not pictures of anything


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(package: str, workdir: Path) -> Path:
    """``apt-get download PACKAGE`` into ``workdir``: the .deb's path."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit(f"bench/media.py: no apt-get/dpkg-deb here; fetch Debian's {package} package by hand")
    done = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        last = (done.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise SystemExit(f"bench/media.py: 'apt-get download {package}' failed: {last} "
                         f"(run 'apt-get update' first, as root)")
    return debs[0]


def _unpack(deb: Path, workdir: Path, *members: str) -> Path:
    """The .deb's files (or only ``members``) under ``workdir``."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as tar:
        subprocess.run(["tar", "-x", "-C", str(workdir), *members], stdin=tar.stdout, check=True)
    return workdir


def _cached(name: str, build: Callable[[Path], tuple[Path, str]]) -> Path:
    """The cache's ``media/NAME``; when missing, ``build(scratch)`` makes it in a scratch folder beside it (giving
    the staged path and a line to print) and it is renamed into place: a half-built copy never looks real."""
    path = cache_dir() / "media" / name
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-media-", dir=path.parent) as scratch:
        staged, what = build(Path(scratch))
        os.replace(staged, path)
    print(f"bench/media.py: {path} ({what})", file=sys.stderr)
    return path


def _build_vtest(work: Path) -> tuple[Path, str]:
    installed = Path("/") / VTEST_MEMBER.lstrip("./")
    source = installed if installed.exists() else \
        _unpack(_download(VTEST_PACKAGE, work), work, VTEST_MEMBER) / VTEST_MEMBER
    staged = work / "vtest.avi.part"
    shutil.copyfile(source, staged)
    return staged, f"{staged.stat().st_size:,} bytes, sha256 {_digest(staged)[:16]}…"


def vtest() -> Path:
    return _cached("vtest.avi", _build_vtest)


def _keep(image: np.ndarray | None) -> TypeGuard[np.ndarray]:
    return image is not None and min(image.shape[:2]) >= MIN_SIDE


def _on_white(image: np.ndarray) -> np.ndarray:
    """A cut-out's transparent pixels hold arbitrary colour (often black): lay it on white, as it is shown."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] != 4:
        return image
    alpha = image[:, :, 3:4].astype(np.float32) / 255.0
    return (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)


def _gcompris_images(root: Path, out: Path) -> int:
    """The images inside GCompris' Qt resource files (one .rcc per activity), as they are stored."""
    from PySide6.QtCore import QDirIterator, QFile, QIODevice, QResource

    count = 0
    for rcc in sorted((root / GCOMPRIS_RESOURCES).glob("*.rcc")):
        mount = f"/{rcc.stem}"
        if not QResource.registerResource(str(rcc), mount):
            raise SystemExit(f"bench/media.py: Qt could not read the resource file {rcc}")
        walk = QDirIterator(f":{mount}", QDirIterator.IteratorFlag.Subdirectories)
        while walk.hasNext():
            name = walk.next()
            if not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            handle = QFile(name)
            if not handle.open(QIODevice.OpenModeFlag.ReadOnly):
                continue
            data = bytes(handle.readAll().data())
            handle.close()
            if not _keep(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)):
                continue
            dest = out / "gcompris" / name.lstrip(":/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            count += 1
        QResource.unregisterResource(str(rcc), mount)
    return count


def _tuxpaint_images(root: Path, out: Path) -> int:
    count = 0
    stamps = root / TUXPAINT_STAMPS
    for png in sorted(stamps.rglob("*.png")):
        image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if not _keep(image):
            continue
        dest = (out / "tuxpaint" / png.relative_to(stamps)).with_suffix(".jpg")
        dest.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dest), _on_white(image), [cv2.IMWRITE_JPEG_QUALITY, 92])
        count += 1
    return count


def _build_images(work: Path) -> tuple[Path, str]:
    staged = work / "staged"
    counts = {}
    for package, take in ((GCOMPRIS_PACKAGE, _gcompris_images), (TUXPAINT_PACKAGE, _tuxpaint_images)):
        unpacked = work / package
        unpacked.mkdir()
        counts[package] = take(_unpack(_download(package, work), unpacked), staged)
    (staged / "SOURCES.txt").write_text(
        "".join(f"{package}: {count} images (Debian main; licences in assets/THIRD_PARTY.md)\n"
                for package, count in counts.items()))
    return staged, f"{', '.join(f'{p} {n}' for p, n in counts.items())} images"


def images() -> Path:
    return _cached("debian-images", _build_images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("vtest", "images"), default="vtest")
    print(vtest() if parser.parse_args().set == "vtest" else images())


if __name__ == "__main__":
    main()
