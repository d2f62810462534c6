"""Runtimes behind one small protocol: give a 1×C×H×W tensor, get the output arrays back.

The ONNX Runtime backend is the studio's fast path; the torch backend runs the loaded module as is.
Both take a thread count so that measurements say, and control, how many cores they use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from studio.errors import BadInputError, UnsupportedError, first_line
from studio.torch_lock import TORCH_MODULE_LOCK

GRAPH_LEVELS = ("disable", "basic", "extended", "layout", "all")


class Backend(Protocol):
    name: str

    def run(self, tensor: np.ndarray) -> list[np.ndarray]: ...

    def fixed_input_hw(self) -> tuple[int, int] | None:
        """(height, width) when the graph only accepts one spatial size, else None."""
        ...

    def describe(self) -> dict[str, Any]: ...


class OrtBackend:
    """onnxruntime InferenceSession on the CPU (or another listed execution provider)."""

    name = "ort"

    def __init__(self, path: Path, *, threads: int = 1, graph_level: str = "all", provider: str | None = None,
                 spin: bool = False):
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        levels["layout"] = getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT", levels["all"])
        if graph_level not in levels:
            raise UnsupportedError(f"unknown graph optimisation level '{graph_level}'",
                                   fix=f"choose one of {', '.join(GRAPH_LEVELS)}")
        available = ort.get_available_providers()
        provider = provider or "CPUExecutionProvider"
        if provider not in available:
            raise UnsupportedError(f"execution provider {provider} is not available here",
                                   fix=f"available: {', '.join(available)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = levels[graph_level]
        options.log_severity_level = 3
        # Idle pool threads busy-wait after each run by default. The studio runs several sessions side
        # by side (A/B preview, benches) next to video decoding and the GUI, where spinning threads
        # steal the very cores the others need; alone it gains ~7 % at 2 threads here. Off unless asked.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BadInputError(f"onnxruntime cannot open this graph ({first_line(exc)})", path=path,
                                fix="check the file with 'deploy-studio info', or re-export it") from exc
        self.path, self.threads, self.graph_level, self.provider = path, threads, graph_level, provider
        self.spin = spin
        self.available_providers = available
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        self._input_shape = first.shape

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if tensor.dtype != self.input_dtype:
            tensor = tensor.astype(self.input_dtype)
        outputs = self.session.run(None, {self.input_name: tensor})
        return [o.astype(np.float32) if o.dtype == np.float16 else o for o in outputs]

    def fixed_input_hw(self) -> tuple[int, int] | None:
        shape = self._input_shape
        if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return int(shape[2]), int(shape[3])
        return None

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": f"onnxruntime {ort.__version__}",
            "execution_provider": self.session.get_providers()[0],
            "available_providers": self.available_providers,
            "intra_op_threads": self.threads,
            "graph_optimization": self.graph_level,
            "intra_op_spinning": self.spin,
            "graph": str(self.path),
        }


class TorchBackend:
    """The loaded PyTorch module, in eval mode under ``torch.inference_mode``, on whatever device it is on.

    ``threads`` sets torch's intra-op threads (a process-wide setting) only when given: a fidelity check
    inside a training job must not leave the trainer on one thread.
    """

    name = "torch"

    def __init__(self, module: Any, *, threads: int | None = None, fixed_hw: tuple[int, int] | None = None):
        import torch

        if module is None:
            raise UnsupportedError("this model has no PyTorch module", fix="use --runtime ort")
        if threads is not None:
            torch.set_num_threads(threads)
        self.module, self.threads, self._fixed_hw = module, threads, fixed_hw

    def _device(self) -> Any:
        first = next(iter(self.module.parameters()), None)
        return first.device if first is not None else "cpu"

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        import torch

        with TORCH_MODULE_LOCK, torch.inference_mode():  # see studio.torch_lock: global hooks of other jobs
            output = self.module(torch.from_numpy(tensor).to(self._device()))
        return [_first_tensor(output).float().cpu().numpy()]

    def fixed_input_hw(self) -> tuple[int, int] | None:
        return self._fixed_hw

    def describe(self) -> dict[str, Any]:
        import torch

        device = self._device()
        name = torch.cuda.get_device_name(device) if getattr(device, "type", "cpu") == "cuda" else str(device)
        return {"runtime": f"torch {torch.__version__}", "device": name, "threads": torch.get_num_threads()}


def _first_tensor(output: Any) -> Any:
    """Ultralytics heads return (decoded, raw) in eval mode; the decoded tensor comes first."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)) and output:
        return _first_tensor(output[0])
    if isinstance(output, dict) and output:
        return _first_tensor(next(iter(output.values())))
    raise UnsupportedError(f"the module returned {type(output).__name__}, not a tensor")
