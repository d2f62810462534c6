"""Is the window responsive while the preview runs flat out? Three figures, measured in one run.

1. Launch → window shown: wall time from spawning a Python that builds and shows the main window to its
   "shown" line
   (interpreter start-up and every import included), median of 3 launches.
2. Event-loop delay: with the preview running at full speed (no pacing, frames dropped when the model
   is busy), a 10 ms QTimer records how late each tick fires; p50/p99 of the lateness.
3. Preview throughput against the bare runtime: frames per second the preview's inference thread
   completes, divided by frames per second of a plain ``Predictor`` loop on the same model, the same
   decoded frames and the same threads, measured right before it.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui_responsiveness.py [--model zoo:yolov8s-fall] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

PROBE = ("import time; t = time.perf_counter(); from ui.app import create_app; app = create_app(); "
         "from ui.main_window import MainWindow; w = MainWindow(); w.show(); app.processEvents(); "
         "print('shown', flush=True)")


def launch_seconds(runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")})
        for line in child.stdout:
            if line.startswith("shown"):
                times.append(time.perf_counter() - start)
                break
        child.kill()
        child.wait()
    return times


def bare_fps(model: str, threads: int, seconds: float) -> float:
    from studio.loaders import load_model
    from studio.media import bundled_video
    from studio.runtime.predictor import make_predictor
    from studio.sources import take_frames

    predictor = make_predictor(load_model(model), "ort", threads=threads)
    frames = take_frames(bundled_video("bikes.mp4"), 60)
    for frame in frames[:3]:
        predictor(frame)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - start)


def window_run(model: str, threads: int, seconds: float) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer

    from studio.media import bundled_video
    from studio.preview import Lane, LivePreview
    from studio.session import Session
    from ui.app import create_app
    from ui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.show()
    window.finish_startup()
    session = Session.open(model)
    window.state.set_session(session)
    lane = Lane.create("base", session.baseline, threads=threads)
    window.state.set_lanes(["base"])
    window.state.set_preview(LivePreview(str(bundled_video("bikes.mp4")), [lane], pace=False).start())
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max((now - last[0]) / 1e6 - 10.0, 0.0))
        last[0] = now

    timer = QTimer(interval=10, timeout=tick)
    timer.start()
    warm_until = time.monotonic() + 3.0
    while time.monotonic() < warm_until:
        app.processEvents()
        time.sleep(0.001)
    lateness.clear()
    start_frames, start = lane.frames, time.perf_counter()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)
    fps = (lane.frames - start_frames) / (time.perf_counter() - start)
    timer.stop()
    drawn = window.views[0].frames_shown
    window.close()
    return {"lateness": lateness, "fps": fps, "drawn": drawn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:yolov8s-fall")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio import offline

    offline.apply()
    launches = launch_seconds()
    bare = bare_fps(args.model, args.threads, args.seconds / 2)
    run = window_run(args.model, args.threads, args.seconds)
    late = np.asarray(run["lateness"])
    print(f"launch → window shown: median {statistics.median(launches):.2f} s of {len(launches)} launches "
          f"({', '.join(f'{t:.2f}' for t in launches)}), QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    print(f"event-loop lateness of a 10 ms QTimer during full-speed preview: p50 {np.percentile(late, 50):.1f} ms, "
          f"p99 {np.percentile(late, 99):.1f} ms, max {late.max():.1f} ms over {len(late)} ticks "
          f"({args.seconds:.0f} s)")
    print(f"preview throughput {run['fps']:.1f} fps vs bare runtime {bare:.1f} fps: {run['fps'] / bare:.2f}× "
          f"({args.model}, onnxruntime {args.threads} threads, bikes.mp4; {run['drawn']} frames drawn)")


if __name__ == "__main__":
    main()
