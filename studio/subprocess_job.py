"""Run a CLI command in a child process, so that cancel is a kill and a hung converter cannot hang us.

Converters (litert-torch, coremltools, OpenVINO) run native code that cannot be interrupted from
Python; the GUI runs exports this way. The child reports progress as ``@progress`` lines on stderr
(``studio.progress``) and its JSON report on stdout. On cancel the whole process group is killed and
the child's staging folders (``.export-<pid>-*`` inside the output folder) are removed, so a
cancelled export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from studio.child_python import module_command
from studio.errors import StudioError
from studio.progress import METRIC_PREFIX, PROGRESS_ENV, PROGRESS_PREFIX, STOP_FILE_ENV
from studio.tasks import Cancelled, TaskContext

POLL_S = 0.1


def staging_dirs(out_dir: Path, pid: int) -> list[Path]:
    """What process ``pid`` was writing towards ``out_dir``: an export's staging folder inside it, an
    optimisation's beside it (both named with the pid, so a parent cleans up after a killed child)."""
    inside = sorted(out_dir.glob(f".export-{pid}-*")) if out_dir.is_dir() else []
    beside = sorted(out_dir.parent.glob(f".{out_dir.name}.staging-{pid}-*")) if out_dir.parent.is_dir() else []
    return inside + beside


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def run_cli_json(args: list[str], ctx: TaskContext, *, out_dir: Path | None = None) -> dict[str, Any]:
    """``deploy-studio ARGS --json`` in a child process; its report, or its one-line error as StudioError."""
    # "Stop and keep best" reaches the child as a file it watches (ctx.request_stop → the file appears).
    stop_dir = tempfile.TemporaryDirectory(prefix="deploy-studio-stop-")
    stop_file = Path(stop_dir.name) / "stop"
    env = {**os.environ, PROGRESS_ENV: "lines", "PYTHONUNBUFFERED": "1", STOP_FILE_ENV: str(stop_file)}
    process = subprocess.Popen(module_command("studio.cli", *args, "--json"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                               start_new_session=True)  # its own group: a kill reaches its children too
    child_out, child_err = process.stdout, process.stderr
    assert child_out is not None and child_err is not None, "both are pipes (stdout=stderr=PIPE)"
    errors: list[str] = []

    def read_stderr() -> None:
        for line in child_err:
            if line.startswith(PROGRESS_PREFIX):
                fraction, _, text = line[len(PROGRESS_PREFIX):].strip().partition(" ")
                with contextlib.suppress(ValueError, Cancelled):  # garbled; or cancelled: the main loop kills
                    ctx.progress(float(fraction), text)
            elif line.startswith(METRIC_PREFIX):
                with contextlib.suppress(ValueError, TypeError):  # a garbled line is not worth failing the job
                    ctx.metric(**json.loads(line[len(METRIC_PREFIX):]))
            elif line.startswith("deploy-studio: "):
                errors.append(line.strip())
            elif line.startswith("deploy-studio ") and ": error: " in line:  # argparse: "PROG CMD: error: …"
                errors.append(line.split(": error: ", 1)[1].strip().removeprefix("argument "))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    stdout: list[str] = []
    collector = threading.Thread(target=lambda: stdout.extend(child_out), daemon=True)
    collector.start()
    try:
        while process.poll() is None:
            if ctx.cancel_event.is_set():
                _kill(process)
                raise Cancelled()
            if ctx.stop_requested and not stop_file.exists():
                stop_file.touch()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL_S)
    finally:
        if process.poll() is None:
            _kill(process)
        if out_dir is not None and process.returncode != 0:
            for folder in staging_dirs(Path(out_dir), process.pid):
                shutil.rmtree(folder, ignore_errors=True)
        reader.join(timeout=5)
        collector.join(timeout=5)
        stop_dir.cleanup()
    if process.returncode != 0:
        if errors:
            message = errors[-1].removeprefix("deploy-studio: ").removeprefix("error: ")
        elif process.returncode < 0:
            name = signal.Signals(-process.returncode).name
            message = f"the worker process was killed ({name}; out of memory?) — nothing was published"
        else:
            message = f"the worker process ended with code {process.returncode}"
        raise StudioError(message)
    with contextlib.suppress(Cancelled):  # the child's last progress lines may have been throttled away
        ctx.progress(1.0, "done")
    return json.loads("".join(stdout))


def export_in_subprocess(model_spec: str, formats: list[str], out_dir: Path, *, precision: str = "fp32",
                         recipe_path: Path | None = None, force: bool = False, trust: bool = False,
                         frames: Path | None = None, ctx: TaskContext | None = None) -> dict[str, Any]:
    """``studio.export.run_export`` in a child process: same report; cancel kills it and cleans up."""
    args = ["export", str(model_spec), "--to", ",".join(formats), "-o", str(out_dir), "--precision", precision]
    if frames is not None:
        args += ["--frames", str(frames)]
    if recipe_path is not None:
        args += ["--recipe", str(recipe_path)]
    if force:
        args.append("--force")
    if trust:
        args.append("--trust")
    return run_cli_json(args, ctx or TaskContext(), out_dir=Path(out_dir))


def optimize_in_subprocess(model_spec: str, recipe_path: Path, out_dir: Path, *, runs: int, fidelity_frames: int,
                           trust: bool = False, frames: Path | None = None,
                           ctx: TaskContext | None = None) -> dict[str, Any]:
    """``studio.optimize.run_optimize`` in a child process: a quantizer or a fine-tune deep in native code
    stops the moment Cancel is pressed (a kill), and leaves neither staging nor a half-published folder."""
    args = ["optimize", str(model_spec), "--recipe", str(recipe_path), "-o", str(out_dir), "--runs", str(runs),
            "--fidelity-frames", str(fidelity_frames)]
    if frames is not None:
        args += ["--frames", str(frames)]
    if trust:
        args.append("--trust")
    return run_cli_json(args, ctx or TaskContext(), out_dir=Path(out_dir))


def format_bench_in_subprocess(model_spec: str, formats: list[str], precisions: list[str], out_dir: Path, *,
                               runs: int = 30, threads: int = 1, fidelity_frames: int = 30, force: bool = False,
                               trust: bool = False, frames: Path | None = None,
                               ctx: TaskContext | None = None) -> dict[str, Any]:
    """``studio.format_bench.run_format_bench`` in a child process (``bench --formats``): a converter that
    crashes in native code takes the child down, never the window; cancel kills it."""
    args = ["bench", str(model_spec), "--formats", ",".join(formats), "--precision", ",".join(precisions),
            "--out", str(out_dir), "--runs", str(runs), "--threads", str(threads),
            "--fidelity-frames", str(fidelity_frames)]
    if frames is not None:
        args += ["--frames", str(frames)]
    if force:
        args.append("--force")
    if trust:
        args.append("--trust")
    return run_cli_json(args, ctx or TaskContext())
