"""More real frames for the recovery benchmark: OpenCV's pedestrian video ``vtest.avi``.

The media that ship inside the studio's PyPI packages hold a few hundred frames (bikes.mp4, 250; Big
Buck Bunny, 132) and about a dozen of a detector's boxes on the fixed fidelity set: too thin to tell a
0.85 mAP50 from a 0.95. ``vtest.avi`` (795 frames, 768×576, a street scene with several walking people
in every frame) ships in OpenCV's sample data, which Debian packages as ``opencv-doc``
(Apache-2.0 AND BSD-3-Clause, see assets/THIRD_PARTY.md). This script fetches that package from the
distribution's registry with ``apt-get download`` (no root needed), takes the one file out of it and
puts it in the studio's cache; it prints the file's path. It is a set-up step for benchmarks, never
run by the app.

    .venv/bin/python bench/media.py            # prints the path of vtest.avi
    .venv/bin/python bench/recovery.py --frames "$(.venv/bin/python bench/media.py)"
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from studio.paths import cache_dir

PACKAGE = "opencv-doc"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
INSTALLED = Path("/") / MEMBER.lstrip("./")


def target() -> Path:
    return cache_dir() / "media" / "vtest.avi"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extract(workdir: Path) -> Path:
    """``apt-get download opencv-doc`` into ``workdir``, then the one file out of the .deb."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit(f"bench/media.py: no apt-get/dpkg-deb here; install the {PACKAGE} package's "
                         f"vtest.avi by hand to {target()} (it is OpenCV's samples/data/vtest.avi)")
    done = subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, capture_output=True, text=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if done.returncode != 0 or not debs:
        last = (done.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise SystemExit(f"bench/media.py: 'apt-get download {PACKAGE}' failed: {last} "
                         f"(run 'apt-get update' first, as root)")
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE) as deb:
        subprocess.run(["tar", "-x", "-C", str(workdir), MEMBER], stdin=deb.stdout, check=True)
    return workdir / MEMBER


def main() -> None:
    path = target()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bench-media-", dir=path.parent) as scratch:
            source = INSTALLED if INSTALLED.exists() else _extract(Path(scratch))
            staged = Path(scratch) / "vtest.avi.part"
            shutil.copyfile(source, staged)
            os.replace(staged, path)  # atomic: a half-copied video never looks like the real one
        print(f"bench/media.py: {path} ({path.stat().st_size:,} bytes, sha256 {_digest(path)[:16]}…)",
              file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
