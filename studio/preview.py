"""The live pipeline behind the preview: a source thread, an inference thread, the latest result.

The source thread writes each decoded frame into a one-slot mailbox; a frame still there when the
next one arrives is dropped and counted, so latency never piles up behind a slow model. The
inference thread takes the newest frame and runs every lane (one variant, or two for A/B) on that
same frame, then writes per-stage timings into ring buffers and publishes a snapshot. Nothing here
knows Qt: the window polls ``latest()`` and the rings with timers, never one signal per frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.disagreement import disagreement
from studio.errors import StudioError
from studio.metrics import current_rss_mb
from studio.ring import Ring
from studio.sources import open_source

MEMORY_SAMPLE_S = 0.25
JOIN_TIMEOUT_S = 3.0


@dataclass
class Lane:
    """One variant in the preview: its predictor, timings, how much memory creating it took, and what runs it."""

    name: str
    predictor: Any
    model_mb: float | None = None  # RSS increase while its session was created and warmed up
    timings: Ring = field(default_factory=lambda: Ring(("pre", "infer", "post", "total")))
    frames: int = 0
    runtime_info: dict[str, Any] = field(default_factory=dict)  # the backend's describe(): what really runs

    @classmethod
    def create(cls, name: str, handle: Any, *, runtime: str = "auto", threads: int = 2,
               warmup_frame: np.ndarray | None = None, device: str | None = None) -> Lane:
        """Build a predictor for ``handle`` in ``runtime`` on ``device`` (a ``--device`` name, None: the CPU;
        one the runtime lacks here is refused) and measure the RSS it added (one warm-up run included)."""
        from studio.runtime.predictor import make_predictor

        if device is not None:
            from studio.runtime.choice import resolve_runtime
            from studio.runtime.devices import check_device

            device = check_device(resolve_runtime(handle, runtime), device).device
        before = current_rss_mb()
        predictor = make_predictor(handle, runtime, threads=threads, device=device)
        if warmup_frame is not None:
            predictor(warmup_frame)
        return cls(name, predictor, round(max(current_rss_mb() - before, 0.0), 1),
                   runtime_info=predictor.backend.describe())

    @property
    def runs_on(self) -> str:
        """What ran, for a caption: "onnxruntime · CPUExecutionProvider", "torch · cuda:0 (NVIDIA H200)"."""
        return runs_on(self.runtime_info)

    def fps(self, seconds: float = 5.0) -> float | None:
        stamps = self.timings.last(seconds)["t"]
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return None
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def runs_on(detail: dict[str, Any]) -> str:
    """A backend's ``describe()`` in a few words: the runtime without its version, then the provider or device
    (with its name when that says more, e.g. the GPU's)."""
    runtime = str(detail.get("runtime", "?")).split(" ")[0]
    where = str(detail.get("execution_provider") or detail.get("device") or "?")
    name = detail.get("device_name")
    if name and str(detail.get("device", "cpu")).lower() != "cpu" and name not in (where, detail.get("device")):
        where += f" ({name})"
    return f"{runtime} · {where}"


@dataclass(frozen=True)
class Snapshot:
    index: int  # frame number in the source
    frame: np.ndarray  # BGR, as decoded
    predictions: tuple[Any, ...]  # one Prediction per lane
    disagreements: int | None  # between lane 0 and lane 1 on this frame (A/B only)


class LivePreview:
    """Runs ``lanes`` on ``source`` until stopped; ``pace`` plays a video at its own frame rate.

    Unpaced (``pace=False``) a file is read as fast as the model takes frames (no frame is decoded
    only to be dropped); a camera or a paced video drops the frames the model is too busy for.
    """

    def __init__(self, source: str, lanes: list[Lane], *, pace: bool = True, loop: bool = True,
                 max_fps: float = 30.0):
        if not lanes:
            raise StudioError("the preview needs at least one model")
        self.source_spec, self.lanes, self.pace, self.loop, self.max_fps = source, lanes, pace, loop, max_fps
        self.memory = Ring(("rss_mb",))
        self.source_frames = 0
        self.dropped = 0
        self.processed = 0
        self.disagreement_total = 0
        self.error: str | None = None
        self._slot: tuple[int, np.ndarray] | None = None
        self._latest: Snapshot | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> LivePreview:
        self._threads = [threading.Thread(target=self._read_source, name="preview-source", daemon=True),
                         threading.Thread(target=self._infer, name="preview-infer", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Stop both threads; True when they ended within ``timeout``."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads) and not self._stop.is_set()

    def latest(self) -> Snapshot | None:
        return self._latest

    # -- threads ---------------------------------------------------------------------------------
    def _read_source(self) -> None:
        try:
            while not self._stop.is_set():
                stream = open_source(self.source_spec)
                camera = getattr(stream, "name", "").startswith("camera")
                yielded = 0
                try:
                    # Videos play at their own rate, image folders at 10 fps; cameras pace themselves.
                    fps = 0.0 if camera else (getattr(stream, "fps", 0.0) or 10.0)
                    interval = 1.0 / min(fps, self.max_fps) if self.pace and fps else 0.0
                    next_at = time.monotonic()
                    # A live source (camera, paced video) keeps going and the model drops what it cannot
                    # take; an unpaced file waits for the model instead of decoding frames to throw away.
                    wait = not camera and not interval
                    for frame in stream:
                        if self._stop.is_set():
                            return
                        self._offer(frame, wait=wait)
                        yielded += 1
                        if interval:
                            next_at += interval
                            delay = next_at - time.monotonic()
                            if delay > 0:
                                self._stop.wait(delay)
                            else:
                                next_at = time.monotonic()  # behind: do not catch up in a burst
                finally:
                    stream.close()
                if not self.loop or camera or not yielded:
                    break
        except StudioError as exc:
            self.error = str(exc)
        except Exception as exc:  # a decoder crash must not take the window down; it is shown instead
            self.error = f"the source failed: {type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self._cond.notify_all()

    def _offer(self, frame: np.ndarray, wait: bool = False) -> None:
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
                if self._stop.is_set():
                    return
            if self._slot is not None:
                self.dropped += 1  # the model was still busy with an older frame: drop, never queue
            self._slot = (self.source_frames, frame)
            self.source_frames += 1
            self._cond.notify()

    def _infer(self) -> None:
        last_memory = 0.0
        reader = self._threads[0]
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._stop.is_set()
                                    or not reader.is_alive(), timeout=0.2)
                item, self._slot = self._slot, None
                self._cond.notify_all()  # a waiting source may decode the next frame now
            if item is None:
                if not reader.is_alive():
                    break
                continue
            index, frame = item
            try:
                # From a list, not a generator: a tuple grown from a generator is resized in place, which
                # fails (SystemError) if another thread holds it meanwhile, e.g. through gc.get_objects().
                predictions = tuple([self._run_lane(lane, frame) for lane in self.lanes])
            except Exception as exc:  # a model that fails on a frame stops the preview with the reason
                self.error = f"inference failed: {type(exc).__name__}: {exc}"
                break
            count = None
            if len(predictions) > 1:
                count = disagreement(predictions[0].result, predictions[1].result)
                self.disagreement_total += count
            self._latest = Snapshot(index, frame, predictions, count)
            self.processed += 1
            now = time.monotonic()
            if now - last_memory >= MEMORY_SAMPLE_S:
                self.memory.append(current_rss_mb(), at=now)
                last_memory = now

    @staticmethod
    def _run_lane(lane: Lane, frame: np.ndarray) -> Any:
        prediction = lane.predictor(frame)
        times = prediction.times
        lane.timings.append(times.pre, times.infer, times.post, times.total)
        lane.frames += 1
        return prediction
