"""Which runtime runs a model: one enum for every command and view, and the model's own runtime for "auto".

A file runs by default in the runtime that will run it on the device (a ``.tflite`` in LiteRT, an OpenVINO
IR in OpenVINO); anything the studio holds as ONNX or PyTorch runs in onnxruntime, its fast path.
"""

from __future__ import annotations

from enum import StrEnum

from studio.errors import UnsupportedError
from studio.model import ModelHandle


class Runtime(StrEnum):
    AUTO = "auto"  # the model's own runtime (``native_runtime``)
    ORT = "ort"  # onnxruntime
    TORCH = "torch"
    OPENVINO = "openvino"
    LITERT = "litert"  # ai_edge_litert's interpreter (TFLite)
    ULTRALYTICS = "ultralytics"  # Ultralytics' own predictor, bench only (a reference for the studio's pipeline)


class RuntimeMode(StrEnum):
    """``ModelHandle.metadata["runtime_mode"]``: a variant that runs as a scheme rather than one graph."""

    PLAIN = ""
    EARLY_EXIT = "early_exit"
    CASCADE = "cascade"
    LM_EARLY_EXIT = "lm_early_exit"


# The runtime a file of this format runs in when nothing else is asked (ModelHandle.format → runtime).
NATIVE_RUNTIME = {"tflite": Runtime.LITERT, "openvino": Runtime.OPENVINO}

IMAGE_RUNTIMES = (Runtime.AUTO, Runtime.ORT, Runtime.TORCH, Runtime.OPENVINO, Runtime.LITERT)


def native_runtime(handle: ModelHandle) -> Runtime:
    return NATIVE_RUNTIME.get(handle.format, Runtime.ORT)


def resolve_runtime(handle: ModelHandle, requested: str | Runtime) -> Runtime:
    """``requested`` as a ``Runtime``, with "auto" replaced by the model's own; unknown names are refused."""
    try:
        runtime = Runtime(str(requested))
    except ValueError:
        raise UnsupportedError(f"unknown runtime '{requested}'",
                               fix=f"choose one of {', '.join(r.value for r in Runtime)}") from None
    return native_runtime(handle) if runtime is Runtime.AUTO else runtime


def runtime_mode(handle: ModelHandle) -> RuntimeMode:
    value = handle.metadata.get("runtime_mode", "")
    try:
        return RuntimeMode(value)
    except ValueError:
        raise UnsupportedError(f"{handle.name}: unknown runtime mode '{value}' in its metadata",
                               fix="re-create the variant with this version of the studio") from None
