"""Peak memory of one model file in its own runtime, measured in a process of its own.

In the benchmark's process every runtime shares one heap: a file opened later may reuse what an earlier
one freed, so an RSS difference there says little. Here a fresh worker opens only this file, runs it on a
few frames, and reports its resident-memory high-water mark above what the interpreter held before the
file was opened (Python, NumPy, OpenCV and the studio's own modules).

Run as ``python -m studio.child_python studio.format_memory PATH --threads N --frames K``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from studio.errors import StudioError, first_line


def measure_in_child(path: Path, *, threads: int, frames: int = 5, timeout: float = 600) -> dict[str, Any]:
    """``{"peak_mb", "before_mb", "added_mb", "method"}`` from a worker, or ``{"error": …}`` when it failed."""
    from studio.child_python import module_command

    command = module_command("studio.format_memory", str(path), "--threads", str(threads), "--frames", str(frames))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": f"the memory worker did not finish in {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"error": f"the memory worker failed: {tail[:200]}"}
    return json.loads(lines[-1])


def _measure(path: Path, threads: int, frames: int) -> dict[str, Any]:
    from studio.loaders import load_model
    from studio.media import bundled_image
    from studio.metrics import current_rss_mb, peak_rss_mb
    from studio.runtime.predictor import make_predictor
    from studio.sources import read_image

    image = read_image(bundled_image("bus.jpg"))
    handle = load_model(path)  # the studio's reading of the file (graph statistics…) is not the runtime's cost
    reset = _reset_peak()
    before = current_rss_mb()
    predictor = make_predictor(handle, "auto", threads=threads)
    for _ in range(frames):
        predictor(image)
    peak = _linux_peak_mb() if reset else peak_rss_mb()
    since = "since just before the runtime opened it" if reset else "since the process started (getrusage)"
    return {"peak_mb": peak, "before_mb": before, "added_mb": round(max(peak - before, 0.0), 1),
            "method": f"a fresh process: resident-memory high-water mark {since}, over opening the file in its "
                      f"runtime and {frames} frames ({threads} thread(s)), minus its RSS just before"}


def _reset_peak() -> bool:
    """Linux lets a process reset its own high-water mark (clear_refs 5), so the studio's loading is left out."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _linux_peak_mb() > 0
    except OSError:
        return False


def _linux_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio.format_memory")
    parser.add_argument("path", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(_measure(args.path, args.threads, args.frames)))
    except StudioError as exc:
        print(json.dumps({"error": first_line(exc, 240)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
