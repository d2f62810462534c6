"""A desktop without a library Qt's xcb platform plugin needs: the launcher names the package and exits 2
before Qt can abort the process; Qt's choice of platform is mirrored; Wayland is pinned when xcb cannot
load but Wayland can. A library is hidden from the loader with an invalid file of its name first on
LD_LIBRARY_PATH (glibc stops at it: "file too short"), so no root, mount namespace or X server is needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ui import platform_libs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb plugin is Linux's")

PROGRAM = Path(sys.executable).parent / "deploy-studio"
ROOT = Path(__file__).resolve().parent.parent


def _desktop_env(tmp_path: Path, hidden: str | None = None) -> dict[str, str]:
    """An X11 desktop's environment (DISPLAY set, no Wayland, Qt's platform not chosen), optionally with
    one library hidden from the dynamic loader."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "LD_LIBRARY_PATH"}}
    env["DISPLAY"] = ":99"  # no X server needed: the check runs before Qt would connect
    if hidden:
        folder = tmp_path / "hidden"
        folder.mkdir(exist_ok=True)
        (folder / hidden).write_bytes(b"")  # an invalid ELF file: dlopen fails on it instead of searching on
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("LD_LIBRARY_PATH")) if p)
    return env


def _hiding_works(env: dict[str, str], soname: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({soname!r})"], env=env,
                          capture_output=True, text=True, timeout=60)
    return done.returncode != 0


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(PROGRAM)] if PROGRAM.is_file() else [sys.executable, "-m", "ui.launcher"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, cwd=ROOT)


@pytest.mark.parametrize("args", [[], ["gui", "zoo:yolov8s-fall", "--smoke"], ["MODEL"]],
                         ids=["no-arguments", "gui-smoke", "bare-model-path"])
def test_a_missing_xcb_library_is_named_with_its_package_before_qt_aborts(tmp_path, args):
    env = _desktop_env(tmp_path, hidden="libxcb-cursor.so.0")
    if not _hiding_works(env, "libxcb-cursor.so.0"):
        pytest.skip("this dynamic loader searches past an invalid library on LD_LIBRARY_PATH")
    if args == ["MODEL"]:  # what a file manager passes: an existing file
        model = tmp_path / "model.onnx"
        model.write_bytes(b"not read: the window never opens")
        args = [str(model)]
    done = _run(args, env)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "libxcb-cursor.so.0" in lines[0] and "libxcb-cursor0" in lines[0], lines[0]
    assert lines[0].startswith("deploy-studio: error: the window cannot open"), lines[0]
    assert "qt.qpa" not in done.stderr and "platform plugin could be initialized" not in done.stderr


def test_debug_adds_the_loaders_own_messages(tmp_path):
    env = _desktop_env(tmp_path, hidden="libxcb-cursor.so.0")
    if not _hiding_works(env, "libxcb-cursor.so.0"):
        pytest.skip("this dynamic loader searches past an invalid library on LD_LIBRARY_PATH")
    done = _run(["gui", "--debug"], env)
    assert done.returncode == 2
    assert re.search(r"libxcb-cursor\.so\.0: .*hidden/libxcb-cursor\.so\.0: (file too short|invalid ELF header)",
                     done.stderr), done.stderr


def test_a_library_missing_below_a_system_library_is_the_one_named(tmp_path):
    """libXau is no direct need of Qt's: libxcb's. dlopen's error names it, and so does the line."""
    env = _desktop_env(tmp_path, hidden="libXau.so.6")
    if not _hiding_works(env, "libXau.so.6"):
        pytest.skip("this dynamic loader searches past an invalid library on LD_LIBRARY_PATH")
    done = _run(["gui"], env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "libXau.so.6" in done.stderr and "libxau6" in done.stderr, done.stderr


def test_the_check_agrees_with_ldd_and_is_fast():
    """On whatever this machine has installed, the check finds missing exactly what ldd reports not found."""
    import time

    qt = platform_libs.qt_folder()
    assert qt is not None and (qt / "plugins" / "platforms" / "libqxcb.so").is_file()
    if shutil.which("ldd") is None:
        pytest.skip("no ldd to compare with")
    listing = subprocess.run(["ldd", str(qt / "plugins" / "platforms" / "libqxcb.so")], capture_output=True,
                             text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"})
    not_found = {line.split()[0] for line in listing.stdout.splitlines() if "not found" in line}
    started = time.perf_counter()
    missing = platform_libs.missing_libraries("xcb")
    took = time.perf_counter() - started
    assert set(missing) == not_found
    assert took < 0.5, f"the check took {took * 1000:.0f} ms"  # ~13 ms cold here; generous for a busy CI


def test_the_plugins_dependencies_are_read_from_its_elf_header():
    qt = platform_libs.qt_folder()
    needed, runpath = platform_libs.elf_dependencies(qt / "plugins" / "platforms" / "libqxcb.so")
    assert {"libQt6XcbQpa.so.6", "libxcb-cursor.so.0", "libxkbcommon-x11.so.0"} <= set(needed)
    assert any(Path(p).resolve() == (qt / "lib").resolve() for p in runpath)  # $ORIGIN/../../lib, expanded
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", str(qt / "lib" / "libQt6XcbQpa.so.6")], capture_output=True,
                                 text=True, timeout=60).stdout
        assert platform_libs.elf_dependencies(qt / "lib" / "libQt6XcbQpa.so.6")[0] == re.findall(
            r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)


def _fake(monkeypatch, xcb: dict[str, str], wayland: dict[str, str] | None = None) -> list[str]:
    asked: list[str] = []

    def missing_libraries(platform="xcb", qt=None):
        asked.append(platform)
        return xcb if platform == "xcb" else (wayland or {})

    monkeypatch.setattr(platform_libs, "missing_libraries", missing_libraries)
    monkeypatch.setattr(platform_libs, "_distribution", lambda: 0)
    return asked


CURSOR = {"libxcb-cursor.so.0": "libxcb-cursor.so.0: cannot open shared object file: No such file or directory"}


def test_other_platforms_are_not_checked(monkeypatch):
    asked = _fake(monkeypatch, CURSOR)
    for chosen in ("offscreen", "minimal", "eglfs", "vnc:size=800x600"):
        assert platform_libs.check({"QT_QPA_PLATFORM": chosen, "DISPLAY": ":0"}) is None
    assert asked == []


def test_xcb_chosen_or_by_default_is_checked(monkeypatch):
    _fake(monkeypatch, CURSOR)
    for environ in ({"DISPLAY": ":0"}, {"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"},
                    {"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb:nograb"}):
        line = platform_libs.check(environ)
        assert line is not None and "'sudo apt-get install libxcb-cursor0'" in line and "\n" not in line


def test_wayland_is_pinned_when_xcb_cannot_load_and_a_compositor_is_there(monkeypatch, tmp_path):
    asked = _fake(monkeypatch, CURSOR, wayland={})
    (tmp_path / "wayland-0").touch()  # the compositor's socket
    environ = {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert platform_libs.check(environ) is None
    assert environ["QT_QPA_PLATFORM"] == "wayland" and asked == ["xcb", "wayland"]


def test_no_wayland_fallback_without_compositor_or_plugin_or_against_the_users_choice(monkeypatch, tmp_path):
    _fake(monkeypatch, CURSOR, wayland={"libwayland-cursor.so.0": "not found"})
    (tmp_path / "wayland-0").touch()
    session = {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert "libxcb-cursor0" in platform_libs.check(dict(session))  # Wayland's plugin cannot load either
    _fake(monkeypatch, CURSOR, wayland={})
    assert "libxcb-cursor0" in platform_libs.check({**session, "WAYLAND_DISPLAY": "wayland-9"})  # no socket
    chosen = {**session, "QT_QPA_PLATFORM": "xcb"}
    assert "libxcb-cursor0" in platform_libs.check(chosen) and chosen["QT_QPA_PLATFORM"] == "xcb"
    listed = {**session, "QT_QPA_PLATFORM": "wayland-egl;xcb"}
    assert platform_libs.check(listed) is None and listed["QT_QPA_PLATFORM"] == "wayland-egl"


def test_nothing_missing_means_qt_decides(monkeypatch):
    _fake(monkeypatch, {})
    environ = {"DISPLAY": ":0"}
    assert platform_libs.check(environ) is None and "QT_QPA_PLATFORM" not in environ


def test_qts_platform_order_is_mirrored():
    order = platform_libs._platform_order
    assert order({"DISPLAY": ":0"}) == (["xcb"], False)
    assert order({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) == (["wayland", "xcb"], False)
    assert order({"XDG_SESSION_TYPE": "wayland"}) == (["wayland", "xcb"], False)
    assert order({"QT_QPA_PLATFORM": "wayland;xcb:nograb"}) == (["wayland", "xcb"], True)


def test_the_message_names_each_distributions_packages(tmp_path):
    missing = {"libxcb-cursor.so.0": "", "libxcb-icccm.so.4": "", "libfoo.so.7": ""}
    apt = platform_libs.install_message(missing, distribution=0)
    assert "'sudo apt-get install libxcb-cursor0 libxcb-icccm4' and the package that provides libfoo.so.7" in apt
    assert "'sudo dnf install xcb-util-cursor xcb-util-wm'" in platform_libs.install_message(missing, distribution=1)
    assert "'sudo pacman -S xcb-util-cursor xcb-util-wm'" in platform_libs.install_message(missing, distribution=2)
    other = platform_libs.install_message({"libxcb-cursor.so.0": ""}, distribution=None)
    assert "which is missing: install the package that provides it" in other
    releases = (("ID=ubuntu\nID_LIKE=debian\n", 0), ('ID="fedora"\n', 1), ('ID=rocky\nID_LIKE="rhel fedora"\n', 1),
                ("ID=manjaro\nID_LIKE=arch\n", 2), ("ID=alpine\n", None))
    for text, column in releases:
        release = tmp_path / "os-release"
        release.write_text(text)
        assert platform_libs._distribution(release) == column, text
    assert platform_libs._distribution(tmp_path / "absent") is None


def test_the_module_imports_no_qt():
    done = subprocess.run([sys.executable, "-c", "import sys, ui.platform_libs as p; p.check({'DISPLAY': ':0'}); "
                           "print(sorted(m for m in sys.modules if m.startswith('PySide6')))"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_plugin_that_cannot_be_read_leaves_the_word_to_qt(monkeypatch, tmp_path):
    monkeypatch.setattr(platform_libs, "qt_folder", lambda: tmp_path)  # no plugins/platforms/libqxcb.so here
    with pytest.raises(FileNotFoundError):
        platform_libs.missing_libraries("xcb")
    assert platform_libs.check({"DISPLAY": ":0"}) is None
