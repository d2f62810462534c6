"""Register Deploy Studio with the Linux desktop for the current user: menu entry, icon, file types.

Writes the ``.desktop`` entry (its Exec is this checkout's ``deploy-studio``), the icons into the
hicolor theme, and a shared-mime-info package so ``.onnx``, ``.pt``/``.pth`` and ``.gguf`` files are
known types that double-click into the studio. The desktop's own tools refresh their caches when
they are installed; without them the files still take effect at the next login.

    .venv/bin/python packaging/install_desktop.py [--data-home DIR] [--exec PATH] [--uninstall]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "assets" / "icons"
LINUX = Path(__file__).resolve().parent / "linux"
APP_ID = "deploy-studio"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
MIME_TYPES = ("application/x-onnx", "application/x-pytorch-checkpoint", "application/x-gguf")


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def targets(home: Path) -> dict[Path, Path | str]:
    """Destination → source file (or text) of everything installed."""
    files: dict[Path, Path | str] = {
        home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg": ICONS / f"{APP_ID}.svg",
        home / "mime" / "packages" / f"{APP_ID}.xml": LINUX / f"{APP_ID}-mime.xml",
    }
    for size in PNG_SIZES:
        files[home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"] = \
            ICONS / f"{APP_ID}-{size}.png"
    return files


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def refresh(home: Path) -> list[str]:
    """Run the desktop's cache tools that exist here; say which ran."""
    commands = [
        ["update-mime-database", str(home / "mime")],
        ["update-desktop-database", str(home / "applications")],
        ["gtk-update-icon-cache", "-f", "-t", str(home / "icons" / "hicolor")],
        ["xdg-mime", "default", f"{APP_ID}.desktop", *MIME_TYPES],
    ]
    ran = []
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        ran.append(f"{command[0]}: {'ok' if done.returncode == 0 else 'failed: ' + done.stderr.strip()[:120]}")
    return ran


def install(home: Path, executable: Path) -> list[Path]:
    if not executable.is_file():
        raise SystemExit(f"install-desktop: {executable} does not exist — run 'make install' first")
    written = []
    entry = (LINUX / f"{APP_ID}.desktop.in").read_text().replace("@EXEC@", str(executable))
    desktop = home / "applications" / f"{APP_ID}.desktop"
    write_atomically(desktop, entry.encode())
    written.append(desktop)
    for destination, source in targets(home).items():
        write_atomically(destination, Path(source).read_bytes())
        written.append(destination)
    return written


def uninstall(home: Path) -> list[Path]:
    removed = []
    for path in [home / "applications" / f"{APP_ID}.desktop", *targets(home)]:
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, default=None, help="default: $XDG_DATA_HOME or ~/.local/share")
    parser.add_argument("--exec", dest="executable", type=Path, default=Path(sys.executable).parent / APP_ID,
                        help="the deploy-studio program the menu entry starts (default: this venv's)")
    parser.add_argument("--uninstall", action="store_true")
    args = parser.parse_args(argv)
    home = (args.data_home or data_home()).expanduser().resolve()
    if args.uninstall:
        paths = uninstall(home)
        print(f"removed {len(paths)} file(s) from {home}")
    else:
        paths = install(home, args.executable.expanduser().resolve())
        print(f"installed {len(paths)} file(s) into {home}: menu entry, icons, and the types "
              f"{', '.join(MIME_TYPES)}")
    for line in refresh(home):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
