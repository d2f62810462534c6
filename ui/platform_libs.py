"""Before Qt starts: can its Linux platform plugin load? If not, say which packages to install.

Qt (6.5+) needs a dozen X11 libraries that a stock desktop may lack (``libxcb-cursor0`` most often).
Without one, Qt prints a misleading line ("xcb-cursor0 … is needed", whichever library is missing)
and aborts the process. This module reads the plugin's ELF dependencies (``DT_NEEDED``, following
the libraries Qt ships itself), asks the dynamic loader for every other one as Qt's
``dlopen`` would, and names the packages that hold the missing ones. It never imports PySide6: an
import of Qt cannot be taken back, and the whole point is to speak before Qt does.

``check(environ)`` mirrors Qt's choice of platform (``QT_QPA_PLATFORM``, else Wayland first in a
Wayland session, xcb last) and returns a one-line error, or None; when xcb cannot load but a Wayland
compositor is there and Qt's Wayland plugin loads, it pins ``QT_QPA_PLATFORM=wayland`` instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

PLUGINS = {"xcb": "libqxcb.so", "wayland": "libqwayland.so"}

# Sonames of the libraries Qt's xcb and Wayland plugins (and Qt Gui/Core below them) load, with the
# package that holds each: Debian/Ubuntu (checked with dpkg -S on Debian 12), Fedora, Arch.
_PACKAGES: dict[str, tuple[str, str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11"),
    "libXau.so.6": ("libxau6", "libXau", "libxau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp", "libxdmcp"),
    "libEGL.so.1": ("libegl1", "mesa-libEGL", "libglvnd"),  # Fedora's mesa-libEGL brings libglvnd-egl
    "libGL.so.1": ("libgl1", "mesa-libGL", "libglvnd"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libglvnd"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client", "wayland"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor", "wayland"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl", "wayland"),
}
_INSTALL = ("sudo apt-get install", "sudo dnf install", "sudo pacman -S")


def qt_folder() -> Path | None:
    """PySide6's ``Qt`` folder (plugins/, lib/), found without importing PySide6; in a PyInstaller
    bundle the frozen importer or ``sys._MEIPASS`` knows where it was collected."""
    import importlib.util

    roots: list[Path] = []
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    if hasattr(sys, "_MEIPASS"):
        roots.append(Path(sys._MEIPASS) / "PySide6")
    for root in roots:
        if (root / "Qt" / "plugins" / "platforms").is_dir():
            return root / "Qt"
    return None


def elf_dependencies(path: Path) -> tuple[list[str], list[str]]:
    """``(DT_NEEDED sonames, DT_RUNPATH/DT_RPATH entries)`` of a shared library, read from its program
    headers (the dynamic segment and the load segment that maps its string table). Only the headers
    are read: Qt's libraries are tens of megabytes."""
    import mmap
    import struct

    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"\x7fELF":
            raise ValueError(f"{path} is not an ELF file")
        wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
        if wide:
            phoff, = struct.unpack_from(order + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
        else:
            phoff, = struct.unpack_from(order + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
        loads, dynamic = [], None
        for i in range(phnum):
            at = phoff + i * phentsize
            if wide:
                kind, _, offset, vaddr, _, filesz = struct.unpack_from(order + "IIQQQQ", data, at)
            else:
                kind, offset, vaddr, _, filesz = struct.unpack_from(order + "IIIII", data, at)
            if kind == 1:  # PT_LOAD
                loads.append((vaddr, offset, filesz))
            elif kind == 2:  # PT_DYNAMIC
                dynamic = (offset, filesz)
        if dynamic is None:
            return [], []
        entry = order + ("qQ" if wide else "iI")
        size = struct.calcsize(entry)
        tags: list[tuple[int, int]] = []
        for at in range(dynamic[0], dynamic[0] + dynamic[1], size):
            tag, value = struct.unpack_from(entry, data, at)
            if tag == 0:  # DT_NULL
                break
            tags.append((tag, value))
        strtab = next(value for tag, value in tags if tag == 5)  # DT_STRTAB, a virtual address
        base = next(offset + strtab - vaddr for vaddr, offset, filesz in loads if vaddr <= strtab < vaddr + filesz)

        def string(at: int) -> str:
            return data[base + at:data.find(b"\0", base + at)].decode()

        needed = [string(value) for tag, value in tags if tag == 1]  # DT_NEEDED
        paths = [p for tag, value in tags if tag in (15, 29) for p in string(value).split(":") if p]  # RPATH, RUNPATH
        origin = str(path.parent)
        return needed, [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in paths]


def missing_libraries(platform: str = "xcb", qt: Path | None = None) -> dict[str, str]:
    """``{soname: the loader's error}`` for every library the platform plugin needs that cannot load.

    Libraries Qt ships (found through the plugin's or a Qt library's RUNPATH, or in a bundle's folder)
    are followed for their own needs; every other one is opened with ``dlopen`` as Qt would, which
    loads its dependencies too, so the error names the library that is really absent."""
    import ctypes

    qt = qt or qt_folder()
    plugin = qt / "plugins" / "platforms" / PLUGINS[platform] if qt else None
    if plugin is None or not plugin.is_file():
        raise FileNotFoundError(f"Qt's {platform} platform plugin is not installed")
    bundle = [Path(sys._MEIPASS)] if hasattr(sys, "_MEIPASS") else []
    missing: dict[str, str] = {}
    seen: set[str] = set()
    todo = [plugin]
    while todo:
        needed, runpath = elf_dependencies(todo.pop())
        for soname in needed:
            if soname in seen:
                continue
            seen.add(soname)
            shipped = next((Path(d) / soname for d in [*runpath, *bundle] if (Path(d) / soname).is_file()), None)
            if shipped is not None:
                todo.append(shipped.resolve())
                continue
            try:
                ctypes.CDLL(soname)
            except OSError as error:
                text = str(error)
                # "libX.so.1: cannot open shared object file…", or "/path/libX.so.1: file too short"
                first = text.split(":", 1)[0].strip()
                missing.setdefault(Path(first).name if ".so" in first else soname, text)
    return missing


def _distribution(os_release: Path = Path("/etc/os-release")) -> int | None:
    """0 for the Debian family, 1 for Fedora's, 2 for Arch's, None for others: which column of
    the package table (and which installer) to name."""
    try:
        fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    except OSError:
        return None
    ids = " ".join(fields.get(key, "").strip('"') for key in ("ID", "ID_LIKE")).lower().split()
    for column, family in enumerate((("debian", "ubuntu"), ("fedora", "rhel", "centos"), ("arch",))):
        if any(name in ids for name in family):
            return column
    return None


def install_message(missing: dict[str, str], platform: str = "xcb", distribution: int | None = 0) -> str:
    """The one line that names what is missing and how to install it."""
    sonames = sorted(missing)
    names = ", ".join(sonames)
    what = f"{names}, which is missing" if len(sonames) == 1 else f"{names}, which are missing"
    head = f"deploy-studio: error: the window cannot open: Qt's {platform} platform plugin needs {what}"
    if distribution is None:
        which = "the package that provides it" if len(sonames) == 1 else "the packages that provide them"
        return f"{head}: install {which} (README \"Desktop libraries\" lists them per distribution)"
    packages = sorted({_PACKAGES[s][distribution] for s in sonames if s in _PACKAGES})
    unknown = [s for s in sonames if s not in _PACKAGES]
    line = head + ": install"
    if packages:
        line += f" {'it' if len(sonames) == 1 else 'them'} with '{_INSTALL[distribution]} {' '.join(packages)}'"
    if unknown:  # not in the table: the package manager knows (apt-file search, dnf provides)
        line += f"{' and' if packages else ''} the package that provides {', '.join(unknown)}"
    return line + " (other distributions: README \"Desktop libraries\")"


def _platform_order(environ: MutableMapping[str, str]) -> tuple[list[str], bool]:
    """The platforms Qt will try, in order, and whether the user chose them. As qguiapplication.cpp
    does (and as observed with QT_DEBUG_PLUGINS=1 on Qt 6.11): QT_QPA_PLATFORM's list when set, else
    Wayland first in a Wayland session, then xcb, which Qt tries even without DISPLAY."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return [name.split(":", 1)[0].strip() for name in chosen.split(";") if name.strip()], True
    wayland = bool(environ.get("WAYLAND_DISPLAY")) or environ.get("XDG_SESSION_TYPE") == "wayland"
    return (["wayland"] if wayland else []) + ["xcb"], False


def _wayland_compositor(environ: MutableMapping[str, str]) -> bool:
    """A compositor's socket is there (libwayland-client connects to $XDG_RUNTIME_DIR/$WAYLAND_DISPLAY,
    or to WAYLAND_DISPLAY itself when it is a path)."""
    name = environ.get("WAYLAND_DISPLAY", "")
    if not name:
        return False
    if os.path.isabs(name):
        return os.path.exists(name)
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    return bool(runtime) and os.path.exists(os.path.join(runtime, name))


def _missing(platform: str) -> dict[str, str] | None:
    """``missing_libraries(platform)``, or None when the plugin cannot be read (not installed, an ELF
    layout this reader does not know): then the check stands aside and Qt speaks for itself."""
    try:
        return missing_libraries(platform)
    except Exception:
        return None


def check(environ: MutableMapping[str, str] | None = None, debug: bool = False) -> str | None:
    """None when Qt's platform plugin will load (perhaps after pinning Wayland in ``environ``), else the
    one-line error to print (with the loader's own messages after it when ``debug``). Only xcb is
    checked: other platforms (offscreen, eglfs…) are the user's explicit choice and fail in Qt's words."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    order, chosen = _platform_order(environ)
    for name in order:
        if name.startswith("wayland"):
            continue  # Qt tries it first; it matters below, only if xcb cannot load
        if name != "xcb":
            return None
        missing = _missing("xcb")
        if not missing:
            return None
        # Pin Wayland where Qt would otherwise still fall back to the broken xcb and abort; never
        # against a QT_QPA_PLATFORM that names xcb alone.
        wayland = next((n for n in order if n.startswith("wayland")), None if chosen else "wayland")
        if wayland is not None and _wayland_compositor(environ) and _missing("wayland") == {}:
            environ["QT_QPA_PLATFORM"] = wayland
            return None
        line = install_message(missing, "xcb", _distribution())
        return line + "".join(f"\n  {soname}: {error}" for soname, error in sorted(missing.items())) if debug else line
    return None
