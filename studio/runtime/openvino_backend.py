"""OpenVINO's runtime behind the studio's ``Backend`` protocol: an IR as opened, or any image model through its
ONNX graph (OpenVINO reads ONNX directly), so ``--runtime openvino`` works on every image model.

Compute precision is pinned to f32: OpenVINO's CPU plugin otherwise picks bf16 on CPUs that have it (and GPUs
pick f16), a lower precision the user never chose and the export's parity check never saw. ``describe`` says
both what ran and what the device would have picked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import BadInputError, UnsupportedError
from studio.model import ModelHandle

PRECISION = "f32"


def choose_device(requested: str | None, available: Sequence[str]) -> str:
    """OpenVINO's name for ``requested`` (any case; "gpu" also finds "GPU.0"), which must be one it lists.

    None is the CPU. A device that is not there is refused with the list, never replaced by the CPU.
    """
    wanted = (requested or "CPU").strip().upper()
    if wanted in available:
        return wanted
    family = [name for name in available if name.split(".")[0] == wanted]
    if family:
        return family[0]
    shown = ", ".join(available) or "none"
    raise UnsupportedError(f"OpenVINO has no device '{requested or 'CPU'}' on this machine (available: {shown})",
                           fix=f"choose one of {shown}, or install that device's driver (GPU: OpenCL; NPU: the NPU "
                               "driver)")


def ir_path(handle: ModelHandle) -> Path:
    """The graph OpenVINO reads for ``handle``: its IR, else its ONNX graph (exported from PyTorch if needed)."""
    xml = next((p for p in handle.source_paths if p.suffix.lower() == ".xml"), None)
    if handle.format == "openvino" and xml is not None:
        return xml
    from studio.runtime.onnx_export import ensure_onnx

    return ensure_onnx(handle)


class OpenVinoBackend:
    """A compiled OpenVINO model with one infer request, latency hint, fixed thread count."""

    name = "openvino"

    def __init__(self, path: Path, *, threads: int = 1, device: str | None = None):
        import openvino as ov

        from studio.loaders.openvino_ir import ov_reason

        core = ov.Core()
        self.available = list(core.available_devices)
        self.device = choose_device(device, self.available)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION}
        if self.device.startswith("CPU"):  # the thread count is a CPU plugin property
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, self.device, config)
        except RuntimeError as exc:
            raise BadInputError(f"OpenVINO cannot compile this graph for {self.device} ({ov_reason(exc)})",
                                path=path, fix="check the file with 'deploy-studio info', or re-export it") from exc
        self.path, self.threads = path, threads
        self.device_default_precision = _property(core, self.device, "INFERENCE_PRECISION_HINT")
        self.device_name = _property(core, self.device, "FULL_DEVICE_NAME")
        self.request = self.compiled.create_infer_request()
        first = model.inputs[0]
        self.input_dtype = np.dtype(first.get_element_type().to_dtype())
        self._shape = first.get_partial_shape()
        self.input_names = [port.get_any_name() if port.get_names() else str(i) for i, port in enumerate(model.inputs)]

    @classmethod
    def for_handle(cls, handle: ModelHandle, *, threads: int = 1, device: str | None = None) -> OpenVinoBackend:
        return cls(ir_path(handle), threads=threads, device=device)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if tensor.dtype != self.input_dtype:
            tensor = tensor.astype(self.input_dtype)
        return self._outputs(self.request.infer([tensor]))

    def run_feed(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run a tensor model with its inputs by name (each cast to the type its port declares)."""
        missing = [name for name in self.input_names if name not in feed]
        if missing:
            raise UnsupportedError(f"the feed lacks input(s) {', '.join(missing)}",
                                   fix=f"give every input: {', '.join(self.input_names)}")
        ports = {name: port for name, port in zip(self.input_names, self.compiled.inputs, strict=True)}
        cast = {name: np.asarray(feed[name]).astype(np.dtype(ports[name].get_element_type().to_dtype()), copy=False)
                for name in self.input_names}
        return self._outputs(self.request.infer(cast))

    def _outputs(self, result: Any) -> list[np.ndarray]:
        arrays = [np.asarray(result[port]) for port in self.compiled.outputs]
        return [a.astype(np.float32) if a.dtype in (np.float16, np.float64) else a for a in arrays]

    def fixed_input_hw(self) -> tuple[int, int] | None:
        shape = self._shape
        if shape.rank.is_static and len(shape) == 4 and shape[2].is_static and shape[3].is_static:
            return int(shape[2].get_length()), int(shape[3].get_length())
        return None

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        return {
            "runtime": f"openvino {ov.__version__.split('-')[0]}",
            "device": self.device,
            "device_name": self.device_name,
            "available_devices": self.available,
            "threads": _compiled_property(self.compiled, "INFERENCE_NUM_THREADS", self.threads),
            "inference_precision": _compiled_property(self.compiled, "INFERENCE_PRECISION_HINT", PRECISION),
            "device_default_precision": self.device_default_precision,
            "performance_hint": _compiled_property(self.compiled, "PERFORMANCE_HINT", "LATENCY"),
            "graph": str(self.path),
        }


def _type_text(value: Any) -> str:
    """OpenVINO returns element types as ``Type`` objects: their short name (f32, bf16) is what people read."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def _property(core: Any, device: str, key: str) -> str:
    try:
        return _type_text(core.get_property(device, key))
    except RuntimeError:
        return "unknown"


def _compiled_property(compiled: Any, key: str, asked: Any) -> Any:
    try:
        value = compiled.get_property(key)
    except RuntimeError:
        return f"{asked} (asked; the device does not report it)"
    return value if isinstance(value, int) else _type_text(value)
