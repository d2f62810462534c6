"""A long session: the real window previews a model on a looping video for a set time, and the process
is sampled every ``--every`` seconds.

Reported: resident memory after the warm-up and at the end (growth in %, target ≤ 5 %), the least-squares
slope of RSS over the run (MB per hour), frames decoded, processed and dropped (a frame arriving while
the model is busy is dropped, never queued), and the sizes of everything that could grow — the preview's
frame slot (0 or 1 frame), the chart ring buffers (fixed capacity), the threads and open file
descriptors of the process, the memory blocks Python's allocator holds — first and last sample side by side.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/soak.py --minutes 30 [--model zoo:yolov8s-fall]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample(window, process: psutil.Process) -> dict:
    preview = window.preview
    lane = preview.lanes[0] if preview is not None and preview.lanes else None
    return {
        "t": time.monotonic(),
        "rss_mb": process.memory_info().rss / 1e6,
        "threads": threading.active_count(),
        "os_threads": process.num_threads(),
        "fds": process.num_fds(),
        "blocks": sys.getallocatedblocks(),  # not gc.get_objects(): it races tuples being built in threads
        "slot": 0 if preview is None or preview._slot is None else 1,
        "ring": len(lane.timings) if lane is not None else 0,
        "memory_ring": len(preview.memory) if preview is not None else 0,
        "decoded": preview.source_frames if preview is not None else 0,
        "processed": preview.processed if preview is not None else 0,
        "dropped": preview.dropped if preview is not None else 0,
    }


def slope_mb_per_hour(points: list[dict]) -> float:
    ts = [p["t"] - points[0]["t"] for p in points]
    ys = [p["rss_mb"] for p in points]
    mean_t, mean_y = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mean_t) ** 2 for t in ts) or 1.0
    return sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True)) / var * 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the reference sample")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--model", default="zoo:yolov8s-fall")
    parser.add_argument("--json", type=Path, default=None, help="also write the samples here")
    options = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from studio.media import bundled_video
    from ui.app import create_app
    from ui.main_window import MainWindow

    app = create_app()
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "deploy-studio-soak.ini"),
                         QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.state.set_source(str(bundled_video("bikes.mp4")))  # 250 frames at 25 fps, looped: paced like a camera
    window.show()
    window.finish_startup()
    window.open_model(options.model)
    process = psutil.Process()
    started = time.monotonic()
    end = started + options.warmup + options.minutes * 60
    samples: list[dict] = []
    next_sample = started + options.warmup
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
        if window.preview is not None and window.preview.error:
            print(f"soak: the preview stopped: {window.preview.error}", file=sys.stderr)
            return 1
        if window.preview is None and samples:  # the window stopped it (an error it showed, or a bug)
            print(f"soak: the preview went away after {len(samples)} samples; the window says: "
                  f"{window.status_text.text()!r}", file=sys.stderr)
            return 1
        if time.monotonic() >= next_sample and window.preview is not None:
            samples.append(sample(window, process))
            next_sample += options.every
    window.close()
    if len(samples) < 2:
        print("soak: too short to compare (raise --minutes)", file=sys.stderr)
        return 1
    first, last = samples[0], samples[-1]
    growth = 100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"]
    minutes = (last["t"] - first["t"]) / 60
    print(f"soak: {options.model} previewing bikes.mp4 (25 fps, looped) for {minutes:.1f} min after a "
          f"{options.warmup:.0f} s warm-up, {len(samples)} samples every {options.every:.0f} s")
    print(f"RSS {first['rss_mb']:.1f} MB -> {last['rss_mb']:.1f} MB: growth {growth:+.2f} % (target <= 5 %); "
          f"peak {max(s['rss_mb'] for s in samples):.1f} MB; slope {slope_mb_per_hour(samples):+.1f} MB/h")
    decoded, processed = last["decoded"] - first["decoded"], last["processed"] - first["processed"]
    dropped = last["dropped"] - first["dropped"]
    print(f"frames: decoded {decoded}, processed {processed}, dropped {dropped} "
          f"({100 * dropped / max(decoded, 1):.1f} % of decoded: the model was busy when they arrived)")
    for key in ("slot", "ring", "memory_ring", "threads", "os_threads", "fds", "blocks"):
        print(f"  {key:12s} first {first[key]:>9} last {last[key]:>9} max {max(s[key] for s in samples):>9}")
    if options.json:
        options.json.write_text(json.dumps({"model": options.model, "growth_pct": growth, "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
