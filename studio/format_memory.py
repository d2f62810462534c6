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
    before = current_rss_mb()
    predictor = make_predictor(load_model(path), "auto", threads=threads)
    for _ in range(frames):
        predictor(image)
    peak = peak_rss_mb()
    return {"peak_mb": peak, "before_mb": before, "added_mb": round(peak - before, 1),
            "method": f"a fresh process: resident-memory high-water mark (getrusage) after opening the file and "
                      f"{frames} frames ({threads} thread(s)), minus its RSS just before opening it"}


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
