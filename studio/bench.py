"""``deploy-studio bench``: per-stage latency of one model on real frames, with how it was measured.

Frames are decoded before timing starts; each stage is timed with ``time.perf_counter``; the
summary is percentiles over the timed frames after a warm-up. With ``check_bare`` a bare
``InferenceSession.run`` on the same input is timed after every frame (interleaved, so machine
noise hits both alike), which lets a reader check that the pipeline's "infer" is the runtime's cost.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from studio.errors import UnsupportedError
from studio.machine import cpu_description
from studio.media import bundled_video
from studio.metrics import PERCENTILE_METHOD, peak_rss_mb, summarize_ms
from studio.model import ModelHandle, Task
from studio.runtime.results import StageTimes
from studio.sources import take_frames


@dataclass(frozen=True)
class BenchSettings:
    runtime: str = "auto"  # a studio.runtime.choice.Runtime name; auto = the model's own runtime
    imgsz: int | None = None
    threads: int = 1
    runs: int = 50
    warmup: int = 5
    source: str | None = None
    frames: str | None = None  # the model's own frames (studio.data): spread over the whole set, not the first N
    graph_level: str = "all"
    check_bare: bool = False
    spin: bool = False
    device: str | None = None  # the runtime's own device name (studio.runtime.predictor.make_backend); None: CPU


def _frames(settings: BenchSettings) -> tuple[list[np.ndarray], str]:
    if settings.frames:
        from studio.data import FrameSet, read_spread

        own = FrameSet.open(settings.frames)
        frames = read_spread(own.judging + own.calibration, settings.runs + settings.warmup)
        source = str(own.path)
    else:
        source = settings.source or str(bundled_video("bikes.mp4"))
        frames = take_frames(source, settings.runs + settings.warmup)
    if not frames:
        raise UnsupportedError(f"{source} gave no frames")
    needed = settings.runs + settings.warmup
    cycled = [frames[i % len(frames)] for i in range(needed)]
    return cycled, f"{Path(source).name}: {len(frames)} distinct frame(s), decoded before timing"


def run_bench(handle: ModelHandle, settings: BenchSettings) -> dict[str, Any]:
    """Measure ``handle`` with ``settings``; returns the JSON document the CLI prints."""
    from studio.runtime.choice import resolve_runtime

    settings = dataclasses.replace(settings, runtime=resolve_runtime(handle, settings.runtime).value)
    if settings.runs < 1 or settings.threads < 1:
        raise UnsupportedError("--runs and --threads must be at least 1")
    if handle.task in (Task.GENERATE, Task.EMBED):
        raise UnsupportedError(f"{handle.name} is a language model: 'bench' times images and tensors",
                               fix="'deploy-studio generate' reports time to first token and tokens/s")
    cv2.setNumThreads(settings.threads)  # pre-processing uses the same core budget as inference
    if handle.image_input is None:
        return _bench_tensor_model(handle, settings)
    frames, frames_note = _frames(settings)
    step, describe, model_file, input_shape = _make_step(handle, settings)
    if settings.check_bare and not isinstance(step, _PredictorStep):  # Ultralytics runs its own session
        raise UnsupportedError("the bare-session check needs --runtime ort")
    for frame in frames[: settings.warmup]:
        step(frame)
    stages: list[StageTimes] = []
    bare: list[float] = []
    for frame in frames[settings.warmup:]:
        stages.append(step(frame))
        if isinstance(step, _PredictorStep) and settings.check_bare:
            bare.append(step.bare())
    report = _report(handle, settings, stages, describe(), model_file, input_shape(), frames_note)
    if settings.check_bare:
        bare_p50 = float(np.percentile(bare, 50))
        report["check"] = {
            "bare_session_run_p50_ms": round(bare_p50, 3),
            "infer_p50_over_bare_p50": round(report["latency_ms"]["infer"]["p50"] / bare_p50, 4),
            "method": "InferenceSession.run on the same input tensor, timed right after each pipeline frame",
        }
    return report


class _PredictorStep:
    def __init__(self, predictor: Any):
        self.predictor = predictor

    def __call__(self, frame: np.ndarray) -> StageTimes:
        return self.predictor(frame).times

    def bare(self) -> float:
        backend = self.predictor.backend
        if not hasattr(backend, "session"):
            raise UnsupportedError("the bare-session check needs --runtime ort")
        feed = {backend.input_name: self.predictor.last_input.astype(backend.input_dtype, copy=False)}
        start = time.perf_counter()
        backend.session.run(None, feed)
        return (time.perf_counter() - start) * 1e3


def _make_step(handle: ModelHandle, settings: BenchSettings) -> tuple[
        Callable[[np.ndarray], StageTimes], Callable[[], dict[str, Any]], Path | None, Callable[[], Any]]:
    """A callable frame → StageTimes, its runtime description, the file it runs, and its input shape."""
    if settings.runtime == "ultralytics":
        from studio.runtime.ultralytics_runner import UltralyticsRunner

        runner = UltralyticsRunner(handle, threads=settings.threads, imgsz=settings.imgsz)
        state: dict[str, Any] = {}

        def step(frame: np.ndarray) -> StageTimes:
            _, times, wall = runner(frame)
            state["shape"] = "letterboxed by Ultralytics (rectangular for .pt)"
            # Ultralytics' own stages miss its Python overhead; fold that into "post" so totals are wall time.
            return StageTimes(times.pre, times.infer, max(0.0, wall - times.pre - times.infer))

        return step, runner.describe, handle.source_paths[0], lambda: state.get("shape")
    from studio.runtime.predictor import make_predictor

    predictor = make_predictor(handle, settings.runtime, threads=settings.threads, imgsz=settings.imgsz,
                               graph_level=settings.graph_level, spin=settings.spin, device=settings.device)
    backend = predictor.backend
    model_file = getattr(backend, "path", None) or (handle.source_paths[0] if handle.source_paths else None)
    return (_PredictorStep(predictor), backend.describe, model_file,
            lambda: list(predictor.last_input.shape) if predictor.last_input is not None else None)


def _file_bytes(handle: ModelHandle, model_file: Path | str | None) -> tuple[int, str]:
    """Bytes of what runs, and what they are: the loader's own total for the model's source files (an IR's .xml
    is nothing without its .bin), else the graph the runtime opened (an ONNX exported for onnxruntime)."""
    sources = [Path(p) for p in handle.source_paths]
    if model_file is None or Path(model_file) in sources:
        return handle.size_bytes, f"bytes of {', '.join(p.name for p in sources) or 'the source file'}"
    path = Path(model_file)
    if path.is_file():
        return path.stat().st_size, f"bytes of {path}"
    return handle.size_bytes, "bytes of the source file"


def _report(handle, settings, stages, runtime_info, model_file, input_shape, frames_note) -> dict[str, Any]:
    latency = {
        "pre": summarize_ms([s.pre for s in stages]),
        "infer": summarize_ms([s.infer for s in stages]),
        "post": summarize_ms([s.post for s in stages]),
        "total": summarize_ms([s.total for s in stages]),
    }
    size, size_method = _file_bytes(handle, model_file)
    post_note = ("post = wall time of predict() minus Ultralytics' preprocess and inference (its postprocess and "
                 "Python overhead)") if settings.runtime == "ultralytics" else "post = decode + NMS + box scaling"
    return {
        "model": handle.display_name,
        "runtime": settings.runtime,
        "imgsz": settings.imgsz or (handle.image_input.size[0] if handle.image_input else None),
        "input_shape": input_shape,
        "threads": settings.threads,
        "runs": len(stages),
        "warmup": settings.warmup,
        "latency_ms": latency,
        "fps": round(1000.0 / latency["total"]["mean"], 2),
        "peak_rss_mb": peak_rss_mb(),
        "model_size_mb": round(size / 1e6, 3),
        "params": handle.params,
        "gflops": None if handle.gflops is None else round(handle.gflops, 3),
        "random_weights": handle.random_weights,
        "method": {
            "summary": (f"{len(stages)} timed frames after {settings.warmup} warm-up, {settings.threads} thread(s), "
                        f"percentiles of per-frame milliseconds"),
            "frames": frames_note,
            "timer": "time.perf_counter around pre-process, inference and post-processing of each frame",
            "stages": post_note,
            "percentiles": PERCENTILE_METHOD,
            "fps": "1000 / mean total latency (one frame at a time)",
            "peak_rss": "process resident-memory high-water mark (getrusage), includes loading and export",
            "model_size": size_method,
            "gflops": handle.gflops_method,
            "runtime": runtime_info,
            "opencv_threads": settings.threads,
            "machine": cpu_description(),
        },
    }


def _first_run(handle: ModelHandle, backend: Any, feed: dict[str, np.ndarray]) -> None:
    """The sizes given to symbolic dimensions are a guess (a Paddle graph's dynamic channel count is not 1):
    when the graph refuses them, say so in one line instead of onnxruntime's exception."""
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # its own error log would be a second stderr line; the exception says it all
    try:
        backend.session.run(None, feed, quiet)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidArgument / RuntimeException types
        shapes = ", ".join(f"{name} {list(value.shape)}" for name, value in feed.items())
        raise UnsupportedError(f"{handle.name}: onnxruntime cannot run it on random inputs of shape {shapes} (symbolic "
                               f"dimensions set to --imgsz or 1): {_ort_reason(exc)}",
                               fix="give --imgsz for its image sides, or export it with fixed input shapes") from exc


def _ort_reason(exc: Exception) -> str:
    """onnxruntime's own sentence, without its "[ONNXRuntimeError] : 1 : FAIL : Non-zero status…" preamble."""
    first = (str(exc).splitlines() or [""])[0]
    return first.split("Status Message: ")[-1][:160]


def _tensor_runner(handle: ModelHandle, settings: BenchSettings) -> tuple[Any, Callable[[dict[str, np.ndarray]], Any],
                                                                          Path | None]:
    """(backend, feed → outputs, file run) for a tensor model: onnxruntime's session on its graph, or any
    backend of the model's runtime that takes named inputs (``run_feed``)."""
    if settings.runtime == "ort":
        if handle.onnx_path is None:
            raise UnsupportedError(f"{handle.name} is a tensor model without an ONNX graph; --runtime ort cannot "
                                   "bench it", fix="use --runtime auto (the model's own runtime)")
        from studio.runtime.backends import OrtBackend

        backend: Any = OrtBackend(handle.onnx_path, threads=settings.threads, graph_level=settings.graph_level,
                                  spin=settings.spin, device=settings.device)
        return backend, lambda feed: backend.session.run(None, feed), handle.onnx_path
    from studio.runtime.predictor import make_backend

    backend = make_backend(handle, settings.runtime, threads=settings.threads, graph_level=settings.graph_level,
                           spin=settings.spin, device=settings.device)
    if not hasattr(backend, "run_feed"):
        raise UnsupportedError(f"{handle.name} is a tensor model; the {settings.runtime} runtime cannot feed it "
                               "named tensors", fix="use --runtime auto (the model's own runtime) or ort")
    return backend, backend.run_feed, getattr(backend, "path", None) or handle.onnx_path


def _bench_tensor_model(handle: ModelHandle, settings: BenchSettings) -> dict[str, Any]:
    """A graph that does not take images: feed random tensors of its declared input shapes to its runtime."""
    backend, run, model_file = _tensor_runner(handle, settings)
    rng = np.random.default_rng(0)
    feed = {}
    for spec in handle.inputs:
        shape = [d if isinstance(d, int) and d > 0 else (settings.imgsz or 1) for d in spec.shape]
        dtype = np.dtype(spec.dtype) if spec.dtype in ("float32", "float16", "float64", "int64", "int32") else None
        if dtype is None:
            raise UnsupportedError(f"{handle.name}: input {spec.name} has type {spec.dtype}, which the bench "
                                   "cannot generate")
        feed[spec.name] = (rng.random(shape) * 10).astype(dtype)
    if settings.runtime == "ort":
        _first_run(handle, backend, feed)
    else:
        run(feed)
    for _ in range(settings.warmup):
        run(feed)
    stages = []
    for _ in range(settings.runs):
        start = time.perf_counter()
        run(feed)
        stages.append(StageTimes(0.0, (time.perf_counter() - start) * 1e3, 0.0))
    report = _report(handle, settings, stages, backend.describe(), model_file,
                     {k: list(v.shape) for k, v in feed.items()}, "random tensors of the declared input shapes")
    report["method"]["stages"] = "tensor model: no pre- or post-processing; symbolic dims set to --imgsz or 1"
    return report
