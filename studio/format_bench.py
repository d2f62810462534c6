"""``deploy-studio bench MODEL --formats … --precision …``: every format × precision in its own runtime.

Each cell is a file: exported by the studio (or taken when an earlier run already wrote it), re-opened
by path as a user would open it, and run in the runtime that will run it on the device (``Runtime.AUTO``:
LiteRT for ``.tflite``, OpenVINO for IR, onnxruntime for ONNX). All cells that run are timed on the same
frames, interleaved (``studio.timing``), so that the noise of a shared machine falls on every format alike;
fidelity is measured against the source model on judging frames that nothing was calibrated on. A cell
that fails says at which stage (export, open, run) and why, and the others go on.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError, first_line
from studio.evaluate.evidence import metric_label
from studio.format_memory import measure_in_child
from studio.metrics import PERCENTILE_METHOD, summarize_ms
from studio.model import ModelHandle
from studio.tasks import Cancelled, TaskContext

STAGES = ("export", "open", "run")


@dataclass(frozen=True)
class FormatBenchSettings:
    formats: tuple[str, ...] = ("onnx", "openvino", "tflite")
    precisions: tuple[str, ...] = ("fp32",)
    out_dir: Path | None = None  # where the files are written, or taken from (default: the studio cache)
    threads: int = 1
    runs: int = 30
    warmup: int = 3
    fidelity_frames: int = 30
    frames: Path | None = None  # the model's own frames: calibration and judging sides (studio.data)
    force: bool = False  # export again even when the file is already there
    trust: bool = False


@dataclass
class Cell:
    format: str
    precision: str
    status: str = "pending"  # ok | failed | not run here
    stage: str = ""  # the stage that failed
    message: str = ""
    path: str = ""
    provenance: str = ""  # "exported" or "taken" (already there)
    input: str = ""  # the input size it runs at: fixed H×W, or ≤H×W letterboxed to each frame's rectangle
    size_mb: float | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    memory_mb: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    fps: float | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    predictor: Any = field(default=None, repr=False)

    def fail(self, stage: str, exc: BaseException, status: str = "failed") -> None:
        self.status, self.stage, self.message = status, stage, first_line(exc, 240)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "predictor"}
        return data


def _default_out(model: ModelHandle) -> Path:
    from studio.paths import cache_dir

    return cache_dir() / "format-bench" / model.provenance.sha256[:16]


def _size_mb(path: Path) -> float:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    return round(size / 1e6, 3)


def _existing(folder: Path) -> Path | None:
    """The one model file or folder an earlier export left in ``folder`` (hidden staging folders ignored)."""
    found = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def _export_cell(spec: str, cell: Cell, folder: Path, settings: FormatBenchSettings, ctx: TaskContext) -> Path:
    from studio.export import run_export

    existing = _existing(folder)
    if existing is not None and not settings.force:
        cell.provenance = "taken"
        return existing
    report = run_export(spec, [cell.format], folder, precision=cell.precision, force=True, trust=settings.trust,
                        frames=settings.frames, ctx=ctx)
    cell.provenance = "exported"
    return Path(report["exports"][0]["path"])


def _open_cell(cell: Cell, path: Path, warm: np.ndarray, threads: int) -> None:
    from studio.loaders import load_model
    from studio.runtime.predictor import make_predictor

    handle = load_model(path)
    try:
        predictor = make_predictor(handle, "auto", threads=threads, conf=_PREDICTION_CONF)
    except StudioError as exc:  # e.g. CoreML outside macOS: the file is fine, it cannot run here
        cell.fail("run", exc, status="not run here")
        return
    predictor(warm)
    height, width = predictor.target_hw
    cell.input = f"≤{height}×{width} (rect)" if predictor.rect else f"{height}×{width}"
    cell.runtime = predictor.backend.describe()
    cell.predictor = predictor


_PREDICTION_CONF = 0.001  # a variant's full ranking, as the mAP of studio.evaluate.fidelity needs


def run_format_bench(spec: str, settings: FormatBenchSettings, ctx: TaskContext | None = None) -> dict[str, Any]:
    """Export (or take), open, time and judge every format × precision of ``spec``; the report's JSON."""
    from studio.evaluate.fidelity import TARGET_CONF, compare_results
    from studio.evaluate.frames import judging_frames
    from studio.loaders import load_model
    from studio.runtime.predictor import make_predictor
    from studio.timing import interleaved_ms

    ctx = ctx or TaskContext()
    if settings.frames is not None:
        from studio.data import FrameSet

        ctx.frames = FrameSet.open(settings.frames)
    source = load_model(spec, trust=settings.trust)
    if source.image_input is None:
        raise StudioError(f"{source.name} does not take images: the format benchmark times and judges frames",
                          fix="use 'deploy-studio bench MODEL' for a tensor model in its own runtime")
    out_dir = Path(settings.out_dir).expanduser().resolve() if settings.out_dir else _default_out(source)
    frames, frame_note = judging_frames(max(settings.fidelity_frames, 1), ctx)
    if not frames:
        raise StudioError("no judging frames were found", fix="give --frames with a folder of images or a video")
    baselines: dict[tuple[int, int] | None, list[Any]] = {}

    def source_results(predictor: Any) -> list[Any]:
        """The source's answers at the file's own input size: a fixed 640×640 file is judged against the source
        at 640×640, not against the smaller rectangle a dynamic graph letterboxes each frame to."""
        fixed = predictor.backend.fixed_input_hw()
        key = tuple(fixed) if fixed is not None else None
        if key not in baselines:
            base = make_predictor(source, "auto", threads=settings.threads, conf=TARGET_CONF)
            if key is not None and (base.rect or tuple(base.target_hw) != key):
                base.target_hw, base.rect = key, False
            baselines[key] = [base(frame).result for frame in frames]
        return baselines[key]

    cells = [Cell(f, p) for p in settings.precisions for f in settings.formats]
    for index, cell in enumerate(cells):
        ctx.check_cancelled()
        share = (0.6 * index / len(cells), 0.6 * (index + 1) / len(cells))
        ctx.progress(share[0], f"{cell.format} {cell.precision}: export or take")
        try:
            path = _export_cell(spec, cell, out_dir / cell.precision / cell.format, settings, ctx.sub(*share))
        except Cancelled:
            raise
        except Exception as exc:  # a converter's own exception fails this cell, not the table
            cell.fail("export", exc)
            continue
        cell.path, cell.size_mb = str(path), _size_mb(path)
        try:
            _open_cell(cell, path, frames[0], settings.threads)
        except Exception as exc:
            cell.fail("open", exc)

    running = [c for c in cells if c.predictor is not None]
    for cell in running:  # fidelity: the task's own metric against the source model, judging frames only
        try:
            cell.fidelity = compare_results(source_results(cell.predictor),
                                            [cell.predictor(f).result for f in frames])
        except Exception as exc:  # a runtime error mid-run fails this cell, not the table
            cell.fail("run", exc)
            cell.predictor = None
    running = [c for c in running if c.predictor is not None]
    for cell in running:  # timed at the operating point a user sees, not the full ranking mAP needs
        cell.predictor.options = dataclasses.replace(cell.predictor.options, conf=TARGET_CONF)
    timed_frames = [frames[i % len(frames)] for i in range(settings.runs + settings.warmup)]
    start = time.perf_counter()
    ctx.progress(0.8, f"timing {len(running)} file(s), interleaved")
    times = interleaved_ms([c.predictor for c in running], timed_frames, warmup=settings.warmup,
                           on_input=lambda _: ctx.check_cancelled())
    for index, cell in enumerate(running):  # each file alone in a fresh process: its own peak memory
        ctx.progress(0.9 + 0.1 * index / max(len(running), 1), f"{cell.format} {cell.precision}: memory")
        cell.memory = measure_in_child(Path(cell.path), threads=settings.threads)
        cell.memory_mb = cell.memory.get("added_mb")
    for cell, samples in zip(running, times, strict=True):
        cell.latency_ms = summarize_ms(samples)
        cell.fps = round(1000.0 / cell.latency_ms["mean"], 1) if cell.latency_ms["mean"] > 0 else None
        cell.status = "ok"
        cell.predictor = None
    from studio.machine import cpu_description

    return {
        "model": source.display_name,
        "task": str(source.task),
        "cells": [c.as_dict() for c in cells],
        "out_dir": str(out_dir),
        "machine": cpu_description(),
        "method": {
            "latency": f"whole pipeline per frame (pre-process, inference, decode), {settings.runs} frames after "
                       f"{settings.warmup} warm-up, every file on the same frames in alternating order, "
                       f"{settings.threads} thread(s); {PERCENTILE_METHOD}; fps = 1000 / mean ms",
            "timing_seconds": round(time.perf_counter() - start, 1),
            "memory": "peak resident memory a fresh process adds by opening the file in its runtime and running "
                      "5 frames (the high-water mark minus the RSS just before; each cell's memory.method says "
                      "which mark; studio.format_memory)",
            "fidelity": f"against the source model ({source.display_name}) on {frame_note}, the source run at "
                        "the file's input size; the task's metric (detections: mAP50 of the file's boxes against "
                        "the source's; segmentation, pose, oriented boxes: mAP50 by mask IoU, OKS, probiou; "
                        "classifiers: top-1 agreement)",
            "size": "bytes on disk of the file (or folder), in MB",
        },
    }


def table_text(report: dict[str, Any]) -> str:
    """One row per format × precision: what the README and ``bench --formats`` print."""
    header = ("format", "precision", "runtime / device", "status", "input", "size MB", "fidelity", "p50 ms",
              "p95 ms", "fps", "memory MB")
    rows = [header]
    for cell in report["cells"]:
        runtime = cell["runtime"]
        where = " ".join(str(runtime.get(k)) for k in ("runtime", "execution_provider", "delegate", "device")
                         if runtime.get(k)) or "—"
        status = cell["status"] + (f" at {cell['stage']}: {cell['message']}" if cell["stage"] else "")
        fidelity = cell["fidelity"]
        rows.append((cell["format"], cell["precision"], where, status, cell["input"] or "—",
                     "—" if cell["size_mb"] is None else f"{cell['size_mb']:.2f}",
                     f"{metric_label(fidelity['metric'])} {fidelity['value']:.3f}" if fidelity else "—",
                     f"{cell['latency_ms']['p50']:.1f}" if cell["latency_ms"] else "—",
                     f"{cell['latency_ms']['p95']:.1f}" if cell["latency_ms"] else "—",
                     "—" if cell["fps"] is None else f"{cell['fps']:.1f}",
                     "—" if cell["memory_mb"] is None else f"{cell['memory_mb']:.0f}"))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(header))
    method = report["method"]
    machine = report["machine"]
    where = f"{machine.get('cpu')} ({machine.get('logical_cores')} cores)"
    lines += ["", f"model: {report['model']} ({report['task']}); machine: {where}",
              f"latency: {method['latency']}", f"fidelity: {method['fidelity']}", f"memory: {method['memory']}"]
    return "\n".join(lines)
