"""One frame in, one result out, with the time of each stage: the studio's inference pipeline."""

from __future__ import annotations

import time

import numpy as np

from studio.errors import UnsupportedError
from studio.loaders.ultralytics_support import task_decode_fields
from studio.model import ImageInput, ModelHandle, Task
from studio.runtime.backends import Backend
from studio.runtime.decoders import DECODERS, DEFAULT_IOU, DecodeOptions
from studio.runtime.preprocess import prepare
from studio.runtime.results import Prediction, StageTimes


def target_size(handle: ModelHandle, backend: Backend, imgsz: int | None) -> tuple[tuple[int, int], bool]:
    """The input (height, width) to letterbox into, and whether a smaller rectangle is allowed."""
    fixed = backend.fixed_input_hw()
    if fixed is not None:
        return fixed, False  # a static graph takes exactly its own size; --imgsz cannot change it
    spec = handle.required_image_input()
    size = (imgsz, imgsz) if imgsz else spec.size
    stride = spec.stride
    if size[0] % stride or size[1] % stride:
        raise UnsupportedError(f"--imgsz {imgsz} is not a multiple of the model's stride {stride}",
                               fix=f"use e.g. {max(stride, (size[0] // stride) * stride)}")
    return size, spec.dynamic


def decode_options(handle: ModelHandle, conf: float, iou: float | None = None, *, top_k: int = 5) -> DecodeOptions:
    """Everything ``handle``'s decoder needs beyond the threshold — its family's IoU, kpt_shape, mask channels, an
    NMS-free head — the one place the Predictor, export parity and the INT8 searches read them from."""
    kpt_shape, mask_channels, end2end = task_decode_fields(handle.task, handle.metadata, handle.outputs, handle.labels)
    return DecodeOptions(conf=conf, iou=iou if iou is not None else DEFAULT_IOU.get(handle.decoder, 0.7),
                         top_k=top_k, kpt_shape=kpt_shape, mask_channels=mask_channels,
                         end2end=end2end or handle.decoder == "yolo-end2end")


class Predictor:
    """Pre-process → backend → decode for one model; call it with a BGR frame."""

    def __init__(self, handle: ModelHandle, backend: Backend, *, conf: float = 0.25, iou: float | None = None,
                 imgsz: int | None = None, top_k: int = 5):
        if handle.image_input is None:
            raise UnsupportedError(f"{handle.name} does not take images; the studio cannot feed it frames",
                                   fix="use 'deploy-studio bench' on it, which feeds tensors of its input shape")
        if handle.decoder not in DECODERS:
            raise UnsupportedError(f"{handle.name}: {handle.task} outputs are not decoded yet",
                                   fix="detect, segment, pose, OBB and classify models are supported")
        self.handle, self.backend = handle, backend
        self.image_input: ImageInput = handle.image_input
        self.decode = DECODERS[handle.decoder]
        self.options = decode_options(handle, conf, iou, top_k=top_k)
        self.target_hw, self.rect = target_size(handle, backend, imgsz)
        self.last_input: np.ndarray | None = None  # kept for measurement cross-checks (bench)

    def __call__(self, frame: np.ndarray) -> Prediction:
        start = time.perf_counter()
        tensor, geometry = prepare(frame, self.image_input, self.target_hw, self.rect)
        prepared = time.perf_counter()
        outputs = self.backend.run(tensor)
        inferred = time.perf_counter()
        result = self.decode(outputs, geometry, self.handle.labels, self.options)
        done = time.perf_counter()
        self.last_input = tensor
        times = StageTimes((prepared - start) * 1e3, (inferred - prepared) * 1e3, (done - inferred) * 1e3)
        return Prediction(result, times, tuple(tensor.shape), self._path())

    def _path(self) -> str:
        """"exitN" when an early-exit model answered from exit N, else "full"."""
        source = self.backend if hasattr(self.backend, "last_exit") else getattr(self.backend, "module", None)
        exit_index = getattr(source, "last_exit", None)
        return f"exit{exit_index}" if exit_index is not None and exit_index >= 0 else "full"


def make_backend(handle: ModelHandle, runtime: str, *, threads: int = 1, graph_level: str = "all",
                 provider: str | None = None, spin: bool = False, device: str | None = None) -> Backend:
    """The backend for ``handle`` in ``runtime`` (a ``Runtime`` name; "auto" = the model's own runtime).

    ORT exports an ONNX graph when needed. ``device`` is a ``--device`` name (``studio.runtime.devices``: ORT's
    "cuda" → CUDAExecutionProvider, torch's "cuda:0" / "mps", OpenVINO's "GPU"); ``None`` is the CPU, and for
    torch the device the module is on. A device that is not there is an error, never a quiet CPU run.
    """
    from studio.runtime.backends import OrtBackend, TorchBackend
    from studio.runtime.choice import Runtime, RuntimeMode, resolve_runtime, runtime_mode

    if handle.task in (Task.GENERATE, Task.EMBED):
        raise UnsupportedError(f"{handle.name} is a language model ({handle.task}): it takes text, not images "
                               "or tensors", fix="use 'deploy-studio generate' (causal LMs) or 'deploy-studio embed' "
                                                 "(text encoders)")
    if handle.format == "coreml":  # the spec is read everywhere; only Core ML itself (macOS) runs one
        import sys

        where = ("running CoreML files is not built into the studio yet" if sys.platform == "darwin"
                 else "a CoreML model runs only on macOS (Core ML)")
        raise UnsupportedError(f"{handle.name}: {where}; 'deploy-studio info' reads it here",
                               fix="run the ONNX, OpenVINO or TFLite export of the same model on this machine")
    chosen = resolve_runtime(handle, runtime)
    if runtime_mode(handle) is RuntimeMode.EARLY_EXIT and chosen is Runtime.ORT:
        import json

        from studio.runtime.early_exit import EarlyExitBackend, ensure_segments

        if (device or "cpu").lower() != "cpu":  # its segments are CPU sessions: no quiet CPU run under a GPU's name
            raise UnsupportedError(f"{handle.name}: an early-exit variant runs on the CPU only", fix="use --device cpu")
        spec = json.loads(handle.metadata["runtime_settings"])
        return EarlyExitBackend(ensure_segments(handle), spec["threshold"], gates=spec.get("gates"), threads=threads,
                                graph_level=graph_level, spin=spin)
    if chosen is Runtime.ORT:
        from studio.runtime.onnx_export import ensure_onnx

        return OrtBackend(ensure_onnx(handle), threads=threads, graph_level=graph_level, provider=provider,
                          spin=spin, device=device)
    if chosen is Runtime.TORCH:
        fixed = None if (handle.image_input and handle.image_input.dynamic) else _static_hw(handle)
        return TorchBackend(handle.torch_module, threads=threads, fixed_hw=fixed, device=device)
    if chosen is Runtime.LITERT:
        from studio.runtime.litert_backend import LiteRtBackend

        return LiteRtBackend.for_handle(handle, threads=threads, device=device)
    if chosen is Runtime.OPENVINO:
        from studio.runtime.openvino_backend import OpenVinoBackend

        return OpenVinoBackend.for_handle(handle, threads=threads, device=device)
    raise UnsupportedError(f"runtime '{chosen}' does not run single frames",
                           fix="choose ort, torch, openvino or litert (ultralytics is a bench reference)")


def _static_hw(handle: ModelHandle) -> tuple[int, int] | None:
    return handle.image_input.size if handle.image_input else None


def make_predictor(handle: ModelHandle, runtime: str = "auto", *, threads: int = 1, conf: float = 0.25,
                   iou: float | None = None, imgsz: int | None = None, graph_level: str = "all",
                   spin: bool = False, device: str | None = None):
    """The predictor a variant asks for: plain, or a run-time scheme (video cascade, early exit)."""
    backend = make_backend(handle, runtime, threads=threads, graph_level=graph_level, spin=spin, device=device)
    from studio.runtime.choice import RuntimeMode, runtime_mode

    if runtime_mode(handle) is RuntimeMode.CASCADE:
        import json

        from studio.runtime.cascade import CascadePredictor, CascadeSettings

        settings = CascadeSettings(**json.loads(handle.metadata["runtime_settings"]))
        return CascadePredictor(handle, backend, settings, conf=conf, iou=iou)
    return Predictor(handle, backend, conf=conf, iou=iou, imgsz=imgsz)
