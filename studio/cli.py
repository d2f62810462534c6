"""``deploy-studio``: the headless face of the studio. Every command can answer in JSON.

Errors the user can act on print one line (file, problem, fix) and exit with code 2; ``--debug``
shows the traceback. Heavy libraries load inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from studio import __version__
from studio.errors import StudioError
from studio.runtime.choice import IMAGE_RUNTIMES, Runtime

EXIT_USAGE = 2
OWN_FRAMES_HELP = ("the model's own frames (a folder of images/videos, a video, or an Ultralytics data.yaml): split "
                   "into a calibration side and a judging side that share no frame; default: the bundled media")


class _FromPlugins(Sequence[str]):
    """Choices read from the installed plugins' capability table (``studio.capabilities``) only when argparse
    checks or prints them, so the commands that do not use them never load the plugins. A list (``--to``'s
    comma-separated formats) is a choice when each of its items is."""

    def __init__(self, read: Callable[[], Sequence[str]]):
        self._read = read

    def __getitem__(self, index: Any) -> Any:
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __contains__(self, value: object) -> bool:
        return all(item in self._read() for item in (value if isinstance(value, list) else [value]))


def _export_formats() -> list[str]:
    from studio import capabilities

    return capabilities.formats()


def _export_precisions() -> tuple[str, ...]:
    from studio import capabilities

    return capabilities.precisions()


def _runtime_precisions() -> tuple[str, ...]:
    """What a language model can run at on onnxruntime: its float graph, or what a quantizer makes for it."""
    from studio import capabilities
    from studio.plugin_api import FLOAT, LANGUAGE

    return capabilities.ordered([FLOAT, *capabilities.provided(LANGUAGE)])


def _format_list(text: str) -> list[str]:
    """``--to onnx,openvino``: each an installed exporter's format (else the engine's one-line refusal)."""
    from studio import capabilities

    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        capabilities.exporters_for(names)
    except StudioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _add_device(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--device", default=None,
                        help=f"{what} (default: the CPU); one the runtime does not have here is refused, never "
                             "replaced by the CPU — 'deploy-studio devices' lists them")


def _add_model(parser: argparse.ArgumentParser, *, recipe: bool = False) -> None:
    parser.add_argument("model", help="a model file (.pt .onnx .yaml .cfg) or zoo:NAME")
    if recipe:
        parser.add_argument("--recipe", default=None,
                            help="apply this recipe first and run the variant it makes (cascade, early exit…)")
    parser.add_argument("--trust", action="store_true",
                        help="allow a pickle-based file to run code outside the allow-list (only for files you trust)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploy-studio", description="Take a trained model to an edge device.")
    parser.add_argument("--version", action="version", version=f"deploy-studio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command")

    zoo = commands.add_parser("zoo", help="list the models that ship inside installed packages")
    zoo.add_argument("--json", action="store_true")

    devices = commands.add_parser("devices", help="each runtime's devices on this machine (what --device takes)")
    devices.add_argument("--json", action="store_true")

    info = commands.add_parser("info", help="format, task, inputs, labels, params, GFLOPs, size, provenance")
    _add_model(info)
    info.add_argument("--imgsz", type=_image_size, default=None,
                      help="count FLOPs at this height and width (640 or 48,320) where the input's are dynamic "
                           "(default: the model's metadata, else 640)")
    info.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="run a model on an image, folder, video or camera")
    _add_model(predict, recipe=True)
    predict.add_argument("source", help="image, folder of images, video file, or camera index (0)")
    predict.add_argument("--runtime", choices=[r.value for r in IMAGE_RUNTIMES], default="auto",
                         help="auto: the file's own runtime (LiteRT for .tflite, OpenVINO for IR), else onnxruntime")
    predict.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    predict.add_argument("--iou", type=float, default=None, help="NMS IoU (default: the model family's own)")
    predict.add_argument("--imgsz", type=int, default=None, help="input size for models with dynamic input")
    predict.add_argument("--threads", type=int, default=2)
    predict.add_argument("--max-frames", type=int, default=30, help="frames to run from a video or camera")
    _add_device(predict, "where the runtime runs: cpu, cuda (ORT's CUDA provider, torch's first GPU), cuda:1, "
                         "mps, tensorrt, OpenVINO's GPU…")
    predict.add_argument("--json", action="store_true")

    bench = commands.add_parser("bench", help="per-stage latency percentiles, memory, size, after warm-up")
    _add_model(bench, recipe=True)
    bench.add_argument("--runtime", choices=[r.value for r in (*IMAGE_RUNTIMES, Runtime.ULTRALYTICS)],
                       default="auto", help="auto: the file's own runtime (LiteRT for .tflite, OpenVINO for IR), "
                                            "else onnxruntime; ultralytics: its predictor, as a reference")
    bench.add_argument("--imgsz", type=int, default=None)
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--runs", type=int, default=50)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--source", default=None, help="frames to time, the first N of it (default: bikes.mp4)")
    bench.add_argument("--frames", "--data", dest="frames", default=None,
                       help="the model's own frames (folder or video): frames spread over all of it are timed")
    bench.add_argument("--graph-level", default="all", help="onnxruntime graph optimisation level")
    bench.add_argument("--spin", action="store_true",
                       help="let onnxruntime's idle threads busy-wait (faster alone, slower beside other work)")
    _add_device(bench, "where the runtime runs: cpu, cuda, cuda:1, mps, tensorrt, OpenVINO's GPU…")
    bench.add_argument("--check-bare", action="store_true",
                       help="also time a bare InferenceSession.run after each frame (ORT only)")
    bench.add_argument("--formats", type=_comma_list, default=None, metavar="F1,F2",
                       help="format benchmark: each format (onnx, openvino, tflite, coreml…) exported or taken from "
                            "--out, re-opened and run in its own runtime, one table")
    bench.add_argument("--precision", type=_comma_list, default=None, metavar="P1,P2",
                       help="with --formats: precisions to export (fp32,fp16,int8; default fp32)")
    bench.add_argument("--out", default=None, help="with --formats: where the files are written, or taken from "
                                                   "when already there (default: the studio cache)")
    bench.add_argument("--fidelity-frames", type=int, default=30, help="with --formats: judging frames")
    bench.add_argument("--force", action="store_true", help="with --formats: export again even when present")
    bench.add_argument("--json", action="store_true")

    plugins = commands.add_parser("plugins", help="every installed plugin with its kind and settings schema")
    plugins.add_argument("--json", action="store_true")

    optimize = commands.add_parser("optimize", help="apply a recipe; write the model, report.json and the recipe")
    _add_model(optimize)
    optimize.add_argument("--recipe", required=True, help="a recipe TOML file (ordered plugin steps)")
    optimize.add_argument("-o", "--out", required=True, help="output folder (new or empty; --force to replace)")
    optimize.add_argument("--force", action="store_true", help="replace results already in the output folder")
    optimize.add_argument("--threads", type=int, default=1, help="threads for the latency comparison")
    optimize.add_argument("--runs", type=int, default=20, help="frames timed per model")
    optimize.add_argument("--fidelity-frames", type=int, default=25, help="frames compared with the base model")
    optimize.add_argument("--labels", default=None, help="a labelled folder (YOLO or COCO): adds true mAP")
    optimize.add_argument("--frames", "--data", dest="frames", default=None, help=OWN_FRAMES_HELP)
    optimize.add_argument("--runtime", choices=[r.value for r in (Runtime.ORT, Runtime.OPENVINO, Runtime.TORCH)],
                          default="ort", help="where baseline and variant are timed and judged: their ONNX graphs "
                                              "in onnxruntime (default) or OpenVINO, their PyTorch modules in torch")
    _add_device(optimize, "the training device of every recipe step that trains (recovery, QAT, exit heads): "
                          "cpu, cuda or mps as torch sees them (the steps' own device setting is replaced)")
    optimize.add_argument("--json", action="store_true")

    search = commands.add_parser("search", help="search plugins' settings for the fastest variant that keeps a "
                                                 "fidelity target (Optuna, trials on Ray workers)")
    _add_model(search)
    search.add_argument("--spec", required=True, help="a search spec TOML (plugins, ranges, target, objective, budget)")
    search.add_argument("-o", "--out", required=True,
                        help="results folder (new or empty; the folder of a stopped search resumes it)")
    search.add_argument("--cluster", default=None,
                        help="a Ray cluster's address (ray://HOST:PORT, or HOST:PORT of its head); default: Ray "
                             "started on this machine")
    search.add_argument("--workers", type=int, default=2, help="trials built at once on this machine (default 2)")
    search.add_argument("--frames", "--data", dest="frames", default=None, help=OWN_FRAMES_HELP)
    search.add_argument("--json", action="store_true")

    evaluate = commands.add_parser("evaluate", help="true mAP on a labelled folder (YOLO or COCO), and/or a recipe's "
                                                     "fidelity against the model on the judging frames")
    _add_model(evaluate, recipe=True)
    evaluate.add_argument("labels", nargs="?", default=None,
                          help="folder with images/ and labels/ (YOLO) or images and a COCO .json")
    evaluate.add_argument("--frames", "--data", dest="frames", default=None, help=OWN_FRAMES_HELP)
    evaluate.add_argument("--fidelity-frames", type=int, default=50, help="judging frames compared (with --recipe)")
    evaluate.add_argument("--threads", type=int, default=2)
    evaluate.add_argument("--json", action="store_true")

    export = commands.add_parser("export", help="write ONNX / OpenVINO files, each re-opened and verified")
    _add_model(export)
    export.add_argument("--to", required=True, type=_format_list, choices=_FromPlugins(_export_formats),
                        metavar="FORMAT[,FORMAT...]", help="comma-separated, from the installed exporters: %(choices)s")
    export.add_argument("--precision", choices=_FromPlugins(_export_precisions), default="fp32", metavar="PRECISION",
                        help="%(choices)s (default %(default)s); a model's kind narrows them: the export refuses "
                             "before any work and names what it takes")
    export.add_argument("--recipe", default=None, help="apply this recipe first and export the variant")
    export.add_argument("-o", "--out", required=True, help="output folder (never the source model's folder)")
    export.add_argument("--force", action="store_true", help="replace files already there")
    export.add_argument("--frames", "--data", dest="frames", default=None,
                        help="the model's own frames (folder, video or data.yaml): INT8 calibration on one side, "
                             "every parity check on the other")
    export.add_argument("--set", dest="settings", action="append", default=[], type=_format_setting,
                        metavar="FORMAT.SETTING=VALUE",
                        help="an exporter setting over its default, e.g. tflite.int8_search_units=4 (repeatable)")
    export.add_argument("--json", action="store_true")

    generate = commands.add_parser("generate", help="generate text with a language model; time to first token, "
                                                     "tokens/s")
    _add_model(generate)
    generate.add_argument("prompt", help="the prompt (wrapped in the model's chat template when it has one)")
    generate.add_argument("--max-new-tokens", type=int, default=64)
    generate.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    generate.add_argument("--temperature", type=float, default=0.7)
    generate.add_argument("--top-p", type=float, default=0.9)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--raw", action="store_true", help="no chat template: the prompt as given")
    generate.add_argument("--runtime", choices=["auto", "torch", "ort"], default="auto",
                          help="auto: where the model runs (an exported ONNX folder on onnxruntime, else PyTorch); "
                               "ort: onnxruntime-genai (its model is built once and cached)")
    generate.add_argument("--precision", choices=_FromPlugins(_runtime_precisions), default="fp32",
                          metavar="PRECISION", help="weights for --runtime ort: %(choices)s (other than fp32: made by "
                                                    "the quantizer the plugins name for it, MatMulNBits)")
    generate.add_argument("--recipe", default=None, help="apply this recipe first (e.g. early exit, low rank)")
    generate.add_argument("--threads", type=int, default=2)
    generate.add_argument("--json", action="store_true")

    embed = commands.add_parser("embed", help="sentence embeddings and their cosine similarities")
    _add_model(embed)
    embed.add_argument("sentences", nargs="+", help="two or more sentences")
    embed.add_argument("--runtime", choices=["auto", "torch", "ort"], default="auto")
    embed.add_argument("--precision", choices=_FromPlugins(_runtime_precisions), default="fp32", metavar="PRECISION",
                       help="for --runtime ort: %(choices)s (int8 = onnxruntime dynamic quantization, per-channel "
                            "weights; int4 = MatMulNBits weights)")
    embed.add_argument("--recipe", default=None, help="apply this recipe first")
    embed.add_argument("--threads", type=int, default=2)
    embed.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", help="headless demo: zoo:yolov8s-fall on the bundled bikes.mp4")
    demo.add_argument("--model", default="zoo:yolov8s-fall")
    demo.add_argument("--source", default=None)
    demo.add_argument("--frames", type=int, default=120)
    demo.add_argument("--threads", type=int, default=2)
    return parser


_JSON_STREAM: Any = None  # where --json output goes while stdout is redirected to stderr


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False), file=_JSON_STREAM or sys.stdout)


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def _stdout_for_json_only(enabled: bool) -> Iterator[None]:
    """With --json, stdout carries the JSON and nothing else: converters that print progress
    (litert-torch, Ultralytics, native libraries writing to file descriptor 1) go to stderr."""
    global _JSON_STREAM
    if not enabled:
        yield
        return
    real = sys.stdout
    out_fd, err_fd = _fileno(real), _fileno(sys.stderr)
    real.flush()
    saved: int | None = None  # a copy of the real stdout's descriptor, while that descriptor points at stderr
    if out_fd is not None and err_fd is not None:
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
    _JSON_STREAM = os.fdopen(saved, "w", encoding="utf-8") if saved is not None else real
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _JSON_STREAM.flush()
        if saved is not None:
            assert out_fd is not None  # saved is only made from a real out_fd
            sys.stderr.flush()
            os.dup2(saved, out_fd)
            _JSON_STREAM.close()
        _JSON_STREAM = None


def _emit(args: argparse.Namespace, data: Any, renderer: str) -> int:
    """Print ``data`` as JSON with --json, else through ``studio.report_text.<renderer>``."""
    if args.json:
        _print_json(data)
    else:
        from studio import report_text

        print(getattr(report_text, renderer)(data))
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from studio import zoo

    rows = [{"name": e.name, "task": e.task, "package": e.package, "available": e.available(),
             "loads": e.loadable(), "licence": e.licence, "description": e.description} for e in zoo.ENTRIES]
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        state = "ready" if row["available"] and row["loads"] else ("later" if not row["loads"] else "not installed")
        print(f"zoo:{row['name']:<20} {row['task']:<9} {state:<13} {row['description']}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from studio.runtime.devices import table

    rows = table()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'runtime':<9} {'--device':<10} {'name':<36} runs as")
    for row in rows:
        if row.get("error"):
            print(f"{row['runtime']:<9} {'–':<10} not usable here: {row['error']}")
        else:
            print(f"{row['runtime']:<9} {row['device']:<10} {row['name']:<36} {row['engine_name']}")
    return 0


def _checked_device(args: argparse.Namespace, handle: Any = None) -> str | None:
    """``--device`` as the runtime names it, refused when not here; None when not given (the CPU).

    With ``--runtime auto`` the runtime depends on the file, so the check waits for ``handle``; any
    other runtime is checked before the model loads.
    """
    if args.device is None:
        return None
    from studio.runtime.devices import check_device

    runtime = Runtime(args.runtime)
    if runtime is Runtime.AUTO:
        if handle is None:
            return None
        from studio.runtime.choice import resolve_runtime

        runtime = resolve_runtime(handle, runtime)
    if runtime is Runtime.ULTRALYTICS:  # bench's Ultralytics runner is given no device: it runs on the CPU only
        from studio.runtime.devices import CPU, DeviceOption, match

        return match(runtime.value, args.device, [DeviceOption(runtime.value, CPU, "CPU", "cpu")]).device
    return check_device(runtime, args.device).device


def cmd_info(args: argparse.Namespace) -> int:
    from studio.loaders import load_model

    handle = load_model(args.model, trust=args.trust)
    if args.imgsz:
        from studio.complexity import reprofile

        handle = reprofile(handle, args.imgsz)
    return _emit(args, handle.summary(), "info_text")


def _image_size(text: str) -> tuple[int, int]:
    """``info --imgsz``: "640" or "48,320"."""
    from studio.complexity import image_size

    try:
        return image_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: give 640, or height,width as 48,320") from None


def _load(args: argparse.Namespace):
    """The model named on the command line, with ``--recipe`` applied when given."""
    from studio.loaders import load_model

    handle = load_model(args.model, trust=args.trust)
    if getattr(args, "recipe", None):
        import tempfile
        from pathlib import Path

        from studio.progress import cli_context
        from studio.recipe import apply_recipe, load_recipe
        from studio.registry import default_registry

        # Files the steps write live as long as the command; the folder is removed at exit.
        args.workdir = tempfile.TemporaryDirectory(prefix="deploy-studio-")
        handle = apply_recipe(handle, load_recipe(Path(args.recipe)), default_registry(),
                              cli_context(Path(args.workdir.name)))
    return handle


def cmd_predict(args: argparse.Namespace) -> int:
    from studio.predict_cmd import run_predict

    _checked_device(args)
    handle = _load(args)
    report = run_predict(handle, args.source, runtime=args.runtime, conf=args.conf, iou=args.iou,
                         imgsz=args.imgsz, threads=args.threads, max_frames=args.max_frames,
                         device=_checked_device(args, handle))
    return _emit(args, report, "predict_text")


def cmd_bench(args: argparse.Namespace) -> int:
    from studio.bench import BenchSettings, run_bench

    if args.formats or args.precision:
        if args.device is not None:
            raise StudioError("--device is not taken by the format benchmark: each format runs on the CPU in its "
                              "own runtime", fix="drop --device, or bench one file with --runtime and --device")
        return _format_bench(args)
    _checked_device(args)
    if args.frames:  # refuse frames that cannot be used before the model loads (that can take a minute)
        from studio.data import FrameSet

        FrameSet.open(args.frames)
    handle = _load(args)
    device = _checked_device(args, handle)
    settings = BenchSettings(runtime=args.runtime, imgsz=args.imgsz, threads=args.threads, runs=args.runs,
                             warmup=args.warmup, source=args.source, frames=args.frames,
                             graph_level=args.graph_level,
                             check_bare=args.check_bare, spin=args.spin, device=device)
    report = run_bench(handle, settings)
    return _emit(args, report, "bench_text")


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _format_bench(args: argparse.Namespace) -> int:
    """``bench --formats``: every format × precision in its own runtime (studio.format_bench)."""
    from studio import capabilities
    from studio.format_bench import FormatBenchSettings, run_format_bench
    from studio.progress import cli_context
    from studio.registry import default_registry

    registry = default_registry()
    formats = args.formats or ["onnx", "openvino", "tflite"]
    capabilities.exporters_for(formats, registry)  # an unknown format is refused before any work
    for precision in args.precision or ["fp32"]:
        refusal = capabilities.precision_refusal(None, precision, registry)
        if refusal is not None:
            raise refusal
    settings = FormatBenchSettings(formats=tuple(formats), precisions=tuple(args.precision or ["fp32"]),
                                   out_dir=Path(args.out) if args.out else None, threads=args.threads,
                                   runs=args.runs, warmup=args.warmup, fidelity_frames=args.fidelity_frames,
                                   frames=Path(args.frames) if args.frames else None, force=args.force,
                                   trust=args.trust)
    report = run_format_bench(args.model, settings, cli_context())
    if args.json:
        _print_json(report)
    else:
        from studio.format_bench import table_text

        print(table_text(report))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    import dataclasses

    from studio.plugin_api import settings_schema
    from studio.registry import default_registry

    registry = default_registry()
    rows = [{"id": p.id, "title": p.title, "kind": str(p.kind), "settings_version": p.settings_version,
             "settings": settings_schema(p.Settings),
             # its rows of the capability table (studio.capabilities), for the exporters and quantizers
             **{name: [dataclasses.asdict(entry) for entry in getattr(p, name)]
                for name in ("exports", "provides") if getattr(p, name, None)}}
            for p in registry.plugins.values()]
    if args.json:
        _print_json({"plugins": rows, "problems": registry.problems})
        return 0
    for row in rows:
        names = ", ".join(entry["name"] for entry in row["settings"])
        print(f"{row['id']:<24} {row['kind']:<10} {row['title']}  [{names}]")
    for problem in registry.problems:
        print(f"skipped: {problem}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from studio.optimize import run_optimize
    from studio.progress import cli_context

    recipe = args.recipe
    if args.device is not None:
        recipe, args.workdir = _recipe_on_device(Path(args.recipe), args.device)
    report = run_optimize(args.model, recipe, args.out, force=args.force, threads=args.threads, runtime=args.runtime,
                          runs=args.runs, fidelity_frames_count=args.fidelity_frames, trust=args.trust,
                          labels_dir=args.labels, frames=args.frames,
                          ctx=cli_context())
    return _emit(args, report, "optimize_text")


def cmd_search(args: argparse.Namespace) -> int:
    import signal

    from studio.search.driver import run_search
    from studio.tasks import Cancelled, TaskContext

    ctx = TaskContext()

    def stop(signum: int, frame: Any) -> None:
        ctx.cancel()  # the driver notices within half a second, cancels its trials and leaves the study consistent

    # Stopped by Ctrl-C or by the window (SIGTERM) alike, even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def progress(row: dict[str, Any]) -> None:
        value = "—" if row["fidelity"] is None else f"{row['fidelity']:.3f}"
        latency = "—" if row["latency_p50_ms"] is None else f"{row['latency_p50_ms']:.1f} ms"
        print(f"trial {row['number']}: {row['state']}, {row['metric'] or 'fidelity'} {value}, {latency} — "
              f"{row['summary']}" + (f" ({row['error']})" if row.get("error") else ""), file=sys.stderr, flush=True)

    try:
        summary = run_search(args.model, Path(args.spec), Path(args.out), cluster=args.cluster, workers=args.workers,
                             data=Path(args.frames) if args.frames else None, trust=args.trust, on_trial=progress,
                             ctx=ctx)
    except Cancelled:
        print(f"deploy-studio: interrupted — run the same command to resume the search in {args.out}",
              file=sys.stderr)
        return 130
    return _emit(args, summary, "search_text")


# The settings through which a recipe step says where it trains (studio.recovery.settings, the exit heads).
TRAINING_DEVICE_SETTINGS = ("recovery_device", "device")


def _recipe_on_device(path: Path, device: str) -> tuple[Path, Any]:
    """``optimize --device``: the recipe with every training step's device set to torch's ``device``, written to
    a temporary folder (returned, to keep). The steps' settings name a kind (cpu, cuda, mps), which trains on
    the first GPU of that kind: another GPU is refused rather than trained on the first one unsaid."""
    import dataclasses
    import tempfile

    from studio.recipe import Step, load_recipe, resolved_recipe, save_recipe
    from studio.registry import default_registry
    from studio.runtime.devices import check_device

    chosen = check_device(Runtime.TORCH, device).device
    if chosen not in ("cpu", "cuda:0", "mps"):
        raise StudioError(f"optimize trains on the first GPU only, not {chosen}",
                          fix="use --device cuda and CUDA_VISIBLE_DEVICES to choose which GPU is the first")
    kind = chosen.split(":")[0]
    recipe = resolved_recipe(load_recipe(path), default_registry())
    steps = tuple(Step(step.plugin, {name: (kind if name in TRAINING_DEVICE_SETTINGS else value)
                                     for name, value in step.settings.items()}, step.settings_version)
                  for step in recipe.steps)
    workdir = tempfile.TemporaryDirectory(prefix="deploy-studio-")
    target = Path(workdir.name) / path.name
    save_recipe(dataclasses.replace(recipe, steps=steps), target)
    return target, workdir


def cmd_evaluate(args: argparse.Namespace) -> int:
    from studio.evaluate.run import evaluate_model

    result = evaluate_model(args.model, labels=args.labels, recipe=args.recipe, frames=args.frames,
                            fidelity_frames=args.fidelity_frames, threads=args.threads, trust=args.trust)
    return _emit(args, result, "evaluation_text")


def _format_setting(text: str) -> tuple[str, str, Any]:
    """``FORMAT.SETTING=VALUE`` → (format, setting, value); the value read as JSON (4, 0.9, true) or else as text."""
    key, sep, raw = text.partition("=")
    fmt, dot, name = key.partition(".")
    if not (sep and dot and fmt and name):
        raise argparse.ArgumentTypeError(f"{text!r}: expected FORMAT.SETTING=VALUE, e.g. tflite.int8_search_units=4")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return fmt.strip(), name.strip(), value


def _settings_by_format(items: list[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for fmt, name, value in items:
        settings.setdefault(fmt, {})[name] = value
    return settings


def cmd_export(args: argparse.Namespace) -> int:
    from studio.export import run_export
    from studio.progress import cli_context

    report = run_export(args.model, args.to, args.out, precision=args.precision, recipe_path=args.recipe,
                        force=args.force, trust=args.trust, frames=args.frames,
                        settings=_settings_by_format(args.settings), ctx=cli_context())
    return _emit(args, report, "export_text")


def _language_model(args: argparse.Namespace) -> Any:
    """The model to run: loaded, with --recipe applied, on the runtime --runtime/--precision ask for."""
    from pathlib import Path

    from studio.loaders import load_model
    from studio.progress import stderr_progress
    from studio.tasks import TaskContext

    handle = load_model(args.model, trust=args.trust)
    ctx = TaskContext(on_progress=stderr_progress())
    if args.recipe:
        from studio.recipe import apply_recipe, load_recipe, resolved_recipe
        from studio.registry import default_registry

        registry = default_registry()
        handle = apply_recipe(handle, resolved_recipe(load_recipe(Path(args.recipe)), registry), registry, ctx)
    if args.runtime != "ort":
        if args.precision != "fp32":
            raise StudioError(f"--precision {args.precision} needs --runtime ort", fix="add --runtime ort")
        return handle
    if handle.metadata.get("lm_runtime") in ("genai", "ort_encoder"):
        return handle  # already an onnxruntime model
    from studio.capabilities import quantizer_for
    from studio.plugin_api import FLOAT, settings_from_dict

    if args.precision == FLOAT:
        if handle.task.value == "embed":
            from studio.lm.encoder_onnx import encoder_onnx, pipeline_settings
            from studio.lm.variants import encoder_variant

            pooling, normalize, max_length = pipeline_settings(handle)
            return encoder_variant(handle, encoder_onnx(handle, "fp32"), precision="fp32", pooling=pooling,
                                   normalize=normalize, max_length=max_length, note="exported by the studio")
        from studio.lm.genai import build
        from studio.lm.variants import genai_variant

        return genai_variant(handle, build(handle, "fp32", ctx), precision="fp32", note="onnxruntime-genai builder")
    found = quantizer_for(args.precision, handle)
    if found is None:
        raise StudioError(f"{handle.name}: no installed quantizer makes {args.precision} for it",
                          fix="choose another --precision")
    plugin, offer = found
    reasons = plugin.check(handle)
    if reasons:
        raise StudioError(f"{handle.name}: cannot run at {args.precision} on onnxruntime: {reasons[0]}")
    return plugin.apply(handle, settings_from_dict(plugin, offer.settings, plugin.settings_version), ctx)


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.lm.generate import GenerationSettings
    from studio.lm.runners import text_generator

    if args.max_new_tokens < 1:
        raise StudioError("--max-new-tokens must be at least 1")
    handle = _language_model(args)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, sample=args.sample,
                                  temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                  chat=not args.raw, threads=args.threads)
    result = text_generator(handle, args.threads).generate(args.prompt, settings)
    return _emit(args, {"model": handle.display_name, **result.as_dict()}, "generation_text")


def cmd_embed(args: argparse.Namespace) -> int:
    from studio.lm.embed import cosine_matrix
    from studio.lm.runners import text_encoder

    handle = _language_model(args)
    encoder = text_encoder(handle, args.threads)
    vectors = encoder.encode(args.sentences)
    report = {"model": handle.display_name, "sentences": args.sentences, "dimensions": int(vectors.shape[1]),
              "cosine": cosine_matrix(vectors).round(4).tolist(),
              "method": f"{encoder.runtime}, {args.threads} thread(s); the pipeline's pooling and normalisation"}
    return _emit(args, report, "embedding_text")


def cmd_demo(args: argparse.Namespace) -> int:
    from studio.demo import run_demo

    print(run_demo(args.model, source=args.source, frames=args.frames, threads=args.threads))
    return 0


COMMANDS = {"zoo": cmd_zoo, "devices": cmd_devices, "info": cmd_info, "predict": cmd_predict, "bench": cmd_bench,
            "demo": cmd_demo,
            "plugins": cmd_plugins, "optimize": cmd_optimize, "search": cmd_search,
            "evaluate": cmd_evaluate, "export": cmd_export,
            "generate": cmd_generate, "embed": cmd_embed}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not args.debug:  # libraries' warnings would bury the one line that says what to do
        warnings.simplefilter("ignore")
    try:
        with _stdout_for_json_only(bool(getattr(args, "json", False))):
            return COMMANDS[args.command](args)
    except StudioError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"deploy-studio: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("deploy-studio: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so, and where to look (a full disk is input)
        if args.debug:
            traceback.print_exc()
        from studio.disk import disk_full_error

        full = disk_full_error(exc, Path(args.out) if getattr(args, "out", None) else None)
        if full is not None:
            print(f"deploy-studio: error: {full}", file=sys.stderr)
            return EXIT_USAGE
        from studio.errors import first_line
        from studio.logs import log_unexpected

        try:
            where = f"the traceback is in {log_unexpected(f'deploy-studio {args.command} failed', exc)}"
        except OSError:  # an unwritable cache folder must not hide the error itself
            where = "run with --debug for the traceback"
        print(f"deploy-studio: internal error: {type(exc).__name__}: {first_line(exc)} ({where})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
