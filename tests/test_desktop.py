"""Desktop integration: the menu entry, icons and file types install for a user, and a model path
given to the program (a double-click, a drop) opens in the real window — checked with ``--smoke``."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = Path(sys.executable).parent / "deploy-studio"
sys.path.insert(0, str(ROOT / "packaging"))
import install_desktop  # noqa: E402  (a script, not a package)


def test_install_desktop_registers_entry_icons_and_file_types(tmp_path):
    home = tmp_path / "share"
    assert install_desktop.main(["--data-home", str(home)]) == 0
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(home / "applications" / "deploy-studio.desktop")
    desktop = entry["Desktop Entry"]
    program, *arguments = desktop["Exec"].split()
    assert Path(program) == PROGRAM.resolve() and Path(program).is_file() and arguments == ["gui", "%f"]
    assert set(desktop["MimeType"].strip(";").split(";")) == set(install_desktop.MIME_TYPES)
    for size in install_desktop.PNG_SIZES:
        with Image.open(home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "deploy-studio.png") as icon:
            assert icon.size == (size, size)
    assert (home / "icons" / "hicolor" / "scalable" / "apps" / "deploy-studio.svg").is_file()
    mime = ET.parse(home / "mime" / "packages" / "deploy-studio.xml").getroot()
    globs = {g.get("pattern") for g in mime.iter("{http://www.freedesktop.org/standards/shared-mime-info}glob")}
    assert {"*.onnx", "*.pt", "*.gguf"} <= globs
    if shutil.which("update-mime-database"):  # the desktop's own database now maps the extensions
        assert "application/x-onnx:*.onnx" in (home / "mime" / "globs2").read_text()
    if shutil.which("desktop-file-validate"):
        done = subprocess.run(["desktop-file-validate", str(home / "applications" / "deploy-studio.desktop")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert install_desktop.main(["--data-home", str(home), "--uninstall"]) == 0
    assert not (home / "applications" / "deploy-studio.desktop").exists()


def test_icons_for_windows_and_macos_open():
    with Image.open(ROOT / "assets" / "icons" / "deploy-studio.ico") as ico:
        assert (256, 256) in ico.info["sizes"]
    with Image.open(ROOT / "assets" / "icons" / "deploy-studio.icns") as icns:
        assert icns.size[0] >= 256


def _smoke(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([str(PROGRAM), *args, "--smoke"], capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_a_model_path_given_to_the_program_opens_in_the_window_and_previews(tmp_path):
    from studio.zoo import entry

    model = entry("yolov8s-fall").path()
    done = _smoke(str(model), "--smoke-export", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"smoke: opened {model.stem}, previewed" in done.stdout
    assert (tmp_path / "out" / f"{model.stem}.onnx").is_file()


def test_a_bad_model_path_fails_the_smoke_check_with_one_line(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    done = _smoke(str(bad))
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("smoke:")]
    assert len(lines) == 1 and "broken.onnx" in lines[0]


def test_the_program_registers_itself_on_the_desktop(tmp_path):
    """``deploy-studio install-desktop``: what a bundle's user runs (no checkout, no make)."""
    home = tmp_path / "share"
    done = subprocess.run([str(PROGRAM), "install-desktop", "--data-home", str(home)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    text = (home / "applications" / "deploy-studio.desktop").read_text()
    assert f"Exec={PROGRAM.resolve()} gui %f" in text
    done = subprocess.run([str(PROGRAM), "install-desktop", "--data-home", str(home), "--uninstall"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and not (home / "applications" / "deploy-studio.desktop").exists()


def test_child_processes_run_modules_through_the_program():
    """A frozen bundle has no ``python -m``: children run ``deploy-studio --run-module MODULE``."""
    from studio.child_python import RUN_MODULE_FLAG, module_command

    assert module_command("studio.cli", "zoo")[1:] == ["-m", "studio.child_python", "studio.cli", "zoo"]
    done = subprocess.run([str(PROGRAM), RUN_MODULE_FLAG, "studio.cli", "zoo", "--json"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert any(item["name"] == "yolov8s-fall" for item in json.loads(done.stdout))
    done = subprocess.run([str(PROGRAM), RUN_MODULE_FLAG, "studio.cli", "info", "/nonexistent.onnx"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "no such file" in done.stderr  # the module's exit code comes through
