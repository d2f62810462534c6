"""Shared fixtures: real models from the zoo packages and real media, loaded once per session; the lanes.

Lanes: a test under ``tests/unit/`` is in the fast lane (``make test-fast``: pure logic on hand-written inputs,
no weights, no window, no child process; refused at collection or at run time otherwise); every other test is
marked ``slow`` here, so a new heavy test is slow by default and a fast one opts in by where it lives.
``make test`` runs both, as CI does.

The studio's cache (exported ONNX graphs, dequantised and built language models, ~2.4 GB) is, on a developer's
run, one folder under ``.pytest_cache/deploy-studio/`` shared by runs whose engine is byte-identical (see
``_cache_key``; ``make clean`` removes it); a run with ``CI`` or ``DEPLOY_STUDIO_TEST_CACHE=cold`` set, and the
fast lane, get a fresh folder removed at exit, so CI exercises the export path as a new user's first run does
(``.ci/run`` clones afresh, so its cache starts cold either way). Trust decisions, the workspace autosave and
settings always go to a fresh folder.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = Path(__file__).resolve().parent / "unit"

# Fixtures that load weights, decode video, export a graph or open the window: a fast-lane test that asks for
# one is refused at collection (it belongs in the slow lane).
HEAVY_FIXTURES = frozenset({"fall_handle", "darknet_handle", "smollm", "minilm", "effnet_handle", "bikes_frames",
                            "fall_onnx", "window", "qtbot", "qapp"})
FAST_TIMEOUT_S = 20  # a fast-lane test takes milliseconds; this only ends a hang quickly

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Fuzz tests explore new random inputs on a developer's runs; in CI (CI=true) they replay the same derandomised
# examples, so a submission's result does not depend on the draw (a random draw once found a real bug only in
# CI — keep such finds as @example cases).
if os.environ.get("CI"):
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    _hypothesis_settings.load_profile("ci")


def _fresh_folder(prefix: str) -> str:
    # A run fills the cache with ~2.4 GB: a fresh one is removed when the run ends, or a developer's disk fills
    # after some dozens of runs (it did: a bus error mid-run).
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# --- The shared cache ------------------------------------------------------------------------------------------
#
# Why sharing is safe: every entry of the studio's cache is keyed by the hash of the source model's bytes, but
# not by the code that produced it (an exporter or loader fix with the same file and the same module repr would
# reuse a stale graph; studio/lm/genai.py bumps GGUF_BLOCKS by hand). So the shared folder is itself keyed by
# the bytes of every file under studio/ and plugins/, the interpreter and every installed distribution (name,
# version, install time): any change to the code or the environment that made an entry starts a new, cold folder,
# and the export path runs again exactly when it changed. What is not a derived graph (recovery checkpoints a
# killed run left, which a later run would resume from; variant folders) and half-written staging files are
# removed when a run claims the folder. One run holds it at a time (an exclusive flock): a second run started
# meanwhile gets a fresh folder as before, so no two runs build the same entry at once. Folders of other keys
# are removed when no run holds them; one over CACHE_LIMIT_BYTES is emptied.
SHARED_CACHES = ROOT / ".pytest_cache" / "deploy-studio"
KEPT = ("onnx", "hf", "genai", "encoders", "ultralytics")  # content-keyed derived files (and Ultralytics' settings)
CACHE_LIMIT_BYTES = 8_000_000_000
_HELD: list[int] = []  # the lock's descriptor, open for the whole run


def _cache_key() -> str:
    digest = hashlib.sha256(f"deploy-studio test cache 1\n{sys.version}\n".encode())
    for folder in ("studio", "plugins"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    for site in sorted({p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)}):
        for name in sorted(os.listdir(site)):
            if name.endswith(".dist-info"):
                digest.update(f"{name}:{os.stat(os.path.join(site, name)).st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _lock(folder: Path, create: bool) -> int | None:
    """An exclusive lock on ``folder/.lock`` (None when another run holds it or the folder went meanwhile)."""
    import fcntl

    path = folder / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed by another run's clean-up meanwhile
            raise OSError
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_unheld(folder: Path) -> None:
    fd = _lock(folder, create=False)
    if fd is None and (folder / ".lock").exists():
        return  # another run is using it
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    try:
        os.replace(folder, trash)  # first out of reach of a run about to claim it, then removed
    except OSError:
        return
    finally:
        if fd is not None:
            os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def _claim_shared_cache() -> str | None:
    key = _cache_key()
    folder = SHARED_CACHES / key
    folder.mkdir(parents=True, exist_ok=True)
    fd = _lock(folder, create=True)
    if fd is None:
        return None
    _HELD.append(fd)
    for other in SHARED_CACHES.iterdir():
        if other.is_dir() and other.name != key:
            if other.name.startswith(".trash-"):
                shutil.rmtree(other, ignore_errors=True)
            else:
                _remove_unheld(other)
    for entry in folder.iterdir():
        if entry.name == ".lock":
            continue
        if entry.name not in KEPT or not entry.is_dir():
            _remove(entry)
            continue
        for leftover in entry.iterdir():  # staging folders and temporary files of a killed run
            if leftover.name.startswith((".", "tmp")):
                _remove(leftover)
    if _size(folder) > CACHE_LIMIT_BYTES:
        for name in KEPT:
            shutil.rmtree(folder / name, ignore_errors=True)
    return str(folder)


def _studio_cache(config: pytest.Config) -> str:
    fast_lane = "not slow" in (config.getoption("markexpr", "") or "") or (
        bool(config.args) and all(Path(arg.split("::")[0]).resolve().is_relative_to(UNIT) for arg in config.args))
    cold = fast_lane or os.environ.get("CI") or os.environ.get("DEPLOY_STUDIO_TEST_CACHE") == "cold"
    shared = None if cold else _claim_shared_cache()
    return shared or _fresh_folder("deploy-studio-test-cache-")


def _private_temp_folder() -> None:
    # Libraries leave temporary files behind (coremltools' .mlpackage, onnxruntime's pre.quant folders, a killed
    # child's half-written export): they go to one folder of this run, removed at exit, through TMPDIR for child
    # processes and tempfile.tempdir for this one. A run that filled /tmp failed CI in the language-model tests.
    # pytest's own tmp_path stays where it was, so a failing test's files outlive the run.
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    folder = _fresh_folder("deploy-studio-test-tmp-")
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder


def pytest_configure(config: pytest.Config) -> None:
    _private_temp_folder()
    # Before any test module imports the studio (studio.offline reads the cache folder on import).
    os.environ["DEPLOY_STUDIO_CACHE"] = _studio_cache(config)
    os.environ["DEPLOY_STUDIO_CONFIG"] = _fresh_folder("deploy-studio-test-config-")


# --- The lanes ---------------------------------------------------------------------------------------------------


def _fast_lane(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(UNIT)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    refused = []
    for item in items:
        if not _fast_lane(item):
            if item.get_closest_marker("slow") is None:
                item.add_marker(pytest.mark.slow)
            continue
        heavy = sorted(HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if heavy or item.get_closest_marker("slow") is not None:
            refused.append(f"{item.nodeid}: {', '.join(heavy) or 'marked slow'}")
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_S))
    if refused:
        raise pytest.UsageError("tests in tests/unit/ may not load weights, open the window or be marked slow; "
                                "move them to the slow lane:\n  " + "\n  ".join(refused))


class _NoChildProcess:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a test in tests/unit/ may not start a process (it costs an interpreter start): "
                             "move it to the slow lane")


@pytest.fixture(autouse=True)
def _fast_lane_starts_no_process(request: pytest.FixtureRequest) -> None:
    if _fast_lane(request.node):
        request.getfixturevalue("monkeypatch").setattr(subprocess, "Popen", _NoChildProcess)


@pytest.fixture(scope="session")
def fall_handle():
    from studio.loaders import load_model

    return load_model("zoo:yolov8s-fall")


@pytest.fixture(scope="session")
def darknet_handle():
    from studio.loaders import load_model

    return load_model("zoo:yolov3-tiny-coco")


@pytest.fixture(scope="session")
def smollm():
    from studio.loaders import load_model

    return load_model("zoo:smollm2-135m")


@pytest.fixture(scope="session")
def minilm():
    from studio.loaders import load_model

    return load_model("zoo:minilm-l6")


@pytest.fixture(scope="session")
def effnet_handle():
    from studio.loaders import load_model

    return load_model("zoo:efficientnet-lite0")


@pytest.fixture(scope="session")
def bus_path() -> Path:
    from studio.media import bundled_image

    return bundled_image("bus.jpg")


@pytest.fixture(scope="session")
def zidane_path() -> Path:
    from studio.media import bundled_image

    return bundled_image("zidane.jpg")


@pytest.fixture(scope="session")
def bikes_path() -> Path:
    from studio.media import bundled_video

    return bundled_video("bikes.mp4")


@pytest.fixture(scope="session")
def bikes_frames(bikes_path):
    from studio.sources import take_frames

    return take_frames(bikes_path, 20)


@pytest.fixture(scope="session")
def fall_onnx(fall_handle) -> Path:
    from studio.runtime.onnx_export import ensure_onnx

    return ensure_onnx(fall_handle)


@pytest.fixture(scope="session")
def fall_tflite(tmp_path_factory) -> dict:
    """zoo:yolov8s-fall exported once per run to FP32 TFLite + ONNX and to INT8 TFLite (the sensitivity search
    included, ~2 minutes): what the TFLite opening tests and the INT8 search tests both read."""
    from studio.export import run_export

    out = tmp_path_factory.mktemp("fall_tflite")
    fp32 = {e["format"]: Path(e["path"]) for e in run_export("zoo:yolov8s-fall", ["tflite", "onnx"],
                                                             out / "fp32")["exports"]}
    int8 = run_export("zoo:yolov8s-fall", ["tflite"], out / "int8", precision="int8")["exports"][0]
    return {"tflite": fp32["tflite"], "onnx": fp32["onnx"], "int8": Path(int8["path"]), "int8_item": int8,
            "work": out}
