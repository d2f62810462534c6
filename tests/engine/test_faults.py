"""Faults: a worker killed with SIGKILL leaves nothing in the destination, a full disk gives one clear
line and leaves nothing either."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from studio.errors import StudioError
from studio.recipe import Recipe, Step, save_recipe
from studio.subprocess_job import export_in_subprocess, optimize_in_subprocess
from studio.tasks import TaskContext
from tests.engine.cli_helpers import CLI


def _kill_child_when_busy(ctx_progress: list, started: threading.Event) -> threading.Thread:
    """SIGKILL the studio worker once it reported progress: what the OOM killer or `kill -9` does."""

    def killer() -> None:
        started.wait(300)
        time.sleep(0.5)
        for child in psutil.Process().children(recursive=True):
            if "studio.cli" in " ".join(child.cmdline()):
                os.kill(child.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def _everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_an_export_worker_killed_mid_way_leaves_nothing_in_the_destination(tmp_path):
    out = tmp_path / "exports"
    started = threading.Event()
    progress: list = []
    ctx = TaskContext(on_progress=lambda f, t: (progress.append(t), started.set()))
    killer = _kill_child_when_busy(progress, started)
    with pytest.raises(StudioError, match="killed"):
        export_in_subprocess("zoo:yolov3-tiny-coco", ["onnx", "tflite"], out, ctx=ctx)
    killer.join(10)
    assert progress, "the worker never started"
    assert _everything(out) == [], _everything(out)


def test_an_optimisation_worker_killed_mid_way_leaves_nothing_beside_the_destination(tmp_path):
    recipe = tmp_path / "recipe.toml"
    save_recipe(Recipe((Step("quantize.static_int8", {}, 1),)), recipe)
    variants = tmp_path / "variants"
    variants.mkdir()
    started = threading.Event()
    progress: list = []
    ctx = TaskContext(on_progress=lambda f, t: (progress.append(t), started.set()))
    killer = _kill_child_when_busy(progress, started)
    with pytest.raises(StudioError, match="killed"):
        optimize_in_subprocess("zoo:yolov3-tiny-coco", recipe, variants / "v1", runs=5, fidelity_frames=4, ctx=ctx)
    killer.join(10)
    assert progress and _everything(variants) == [], _everything(variants)


@contextlib.contextmanager
def _small_disk(folder: Path, megabytes: int):
    """A tmpfs of ``megabytes`` at ``folder`` (root, as here and in CI); else a file-size limit on the
    child process, which fails its writes the same way (EFBIG instead of ENOSPC)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    limit = None
    if not mounted:
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (megabytes << 20, megabytes << 20))
    try:
        yield limit
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_during_export_is_one_clear_line_and_leaves_nothing(tmp_path):
    small = tmp_path / "small"
    with _small_disk(small, 12) as limit:  # the ONNX graph of yolov3-tiny is 35 MB
        done = subprocess.run([str(CLI), "export", "zoo:yolov3-tiny-coco", "--to", "onnx", "-o", str(small / "out")],
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                              preexec_fn=limit)
        left = _everything(small / "out")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk is full" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert left == [], left


def test_workers_die_with_the_studio(tmp_path):
    """kill -9 of the app must not leave a worker converting (and publishing) behind a window that is gone."""
    parent_code = ("import subprocess, sys, time; from studio.child_python import module_command; "
                   "child = subprocess.Popen(module_command('timeit', '-n', '1', 'import time; time.sleep(120)'), "
                   "start_new_session=True); print(child.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = psutil.Process(int(parent.stdout.readline()))
    deadline = time.monotonic() + 30
    while "timeit" not in " ".join(child.cmdline()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # past its start-up, where it ties itself to the parent
    parent.kill()
    parent.wait(10)
    gone, _ = psutil.wait_procs([child], timeout=10)
    assert gone, "the worker outlived the studio"
