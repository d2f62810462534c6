"""The layering rules hold: Qt stays in ui/, heavy libraries load lazily, the code is ruff-clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_contracts_are_kept():
    done = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" in done.stdout and "0 broken" in done.stdout


def test_ruff_is_clean():
    done = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_engine_imports_without_heavy_libraries():
    """Opening the app must not pay for torch, Ultralytics or Qt: the engine and every plugin class import
    them inside functions (loading the plugin registry included)."""
    code = ("import sys, studio.cli, studio.loaders, studio.runtime.predictor, studio.bench, studio.zoo;"
            "import studio.search.driver, studio.search.cluster, studio.search.trial;"
            "from studio.registry import default_registry; default_registry();"
            "print(sorted(m for m in ('torch', 'ultralytics', 'PySide6', 'onnxruntime', 'torch_pruning', 'ray',"
            " 'optuna') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_offline_switches_are_set_by_the_engine(tmp_path):
    code = ("import os, studio; e = os.environ;"
            "print(e['YOLO_OFFLINE'], e['HF_HUB_OFFLINE'], e['YOLO_AUTOINSTALL'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.stdout.split() == ["1", "1", "False"]
