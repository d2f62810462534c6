"""Runtimes behind one small protocol: give a 1×C×H×W tensor, get the output arrays back.

The ONNX Runtime backend is the studio's fast path; the torch backend runs the loaded module as is.
Both take a thread count so that measurements say, and control, how many cores they use, and a device
(``studio.runtime.devices``): one that is missing, or that the runtime quietly replaced by the CPU, is an
error. ``describe()`` names the runtime, execution provider and device that really ran.
"""

from __future__ import annotations

import copy
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
    """onnxruntime InferenceSession on the CPU, or on ``device`` through its execution provider.

    ``device`` is a ``--device`` name ("cpu", "cuda", "tensorrt"…, ``studio.runtime.devices``); ``provider``
    names the execution provider itself and wins when both are given.
    """

    name = "ort"

    def __init__(self, path: Path, *, threads: int = 1, graph_level: str = "all", provider: str | None = None,
                 spin: bool = False, device: str | None = None):
        import onnxruntime as ort

        from studio.runtime.devices import ort_device_name, ort_provider

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
        provider = provider or ort_provider(device, available)
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
        # A provider that fails to start (missing CUDA libraries, an unsupported GPU) only logs a warning and
        # onnxruntime runs the graph on the CPU instead: that would be a CPU figure under a GPU's name.
        ran = self.session.get_providers()[0]
        if ran != provider:
            raise UnsupportedError(f"onnxruntime could not start {provider} for this graph and would run it on {ran}",
                                   path=path, fix="install the provider's libraries (CUDA, cuDNN, TensorRT…) "
                                                  "that this onnxruntime build needs, or choose --device cpu")
        self.device = ort_device_name(provider)
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
            "device": self.device,
            "device_name": _cpu_name() if self.device == "cpu" else self.provider,
            "available_providers": self.available_providers,
            "intra_op_threads": self.threads,
            "graph_optimization": self.graph_level,
            "intra_op_spinning": self.spin,
            "graph": str(self.path),
        }


class TorchBackend:
    """The loaded PyTorch module, in eval mode under ``torch.inference_mode``, on ``device``.

    Without ``device`` the module runs where it is. With one ("cpu", "cuda", "cuda:1", "mps") a module that
    is elsewhere runs as a copy moved there: the handle's module is shared (the session, other lanes, a
    training job) and must not move under them.

    ``threads`` sets torch's intra-op threads (a process-wide setting) only when given: a fidelity check
    inside a training job must not leave the trainer on one thread.
    """

    name = "torch"

    def __init__(self, module: Any, *, threads: int | None = None, fixed_hw: tuple[int, int] | None = None,
                 device: str | None = None):
        import torch

        if module is None:
            raise UnsupportedError("this model has no PyTorch module", fix="use --runtime ort")
        if threads is not None:
            torch.set_num_threads(threads)
        self.module, self.threads, self._fixed_hw = module, threads, fixed_hw
        if device is not None:
            from studio.runtime.choice import Runtime
            from studio.runtime.devices import check_device

            target = check_device(Runtime.TORCH, device).engine_name
            if str(self._device()) != target:
                with TORCH_MODULE_LOCK:  # no other job's hooks on the module while it is copied
                    self.module = copy.deepcopy(module).to(target)

    def _device(self) -> Any:
        first = next(iter(self.module.parameters()), None)
        return first.device if first is not None else "cpu"

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        import torch

        with TORCH_MODULE_LOCK, torch.inference_mode():  # see studio.torch_lock: global hooks of other jobs
            output = self.module(torch.from_numpy(tensor).to(self._device()))
        return [t.float().cpu().numpy() for t in _output_tensors(output)]

    def fixed_input_hw(self) -> tuple[int, int] | None:
        return self._fixed_hw

    def describe(self) -> dict[str, Any]:
        import torch

        device = self._device()
        kind = getattr(device, "type", str(device))
        if kind == "cuda":
            name = torch.cuda.get_device_name(device)
        elif kind == "cpu":
            name = _cpu_name()
        else:
            name = "Apple GPU (MPS)" if kind == "mps" else str(device)
        return {"runtime": f"torch {torch.__version__}", "device": str(device), "device_name": name,
                "threads": torch.get_num_threads()}


def _cpu_name() -> str:
    from studio.machine import cpu_description

    return str(cpu_description()["cpu"])


def _output_tensors(output: Any) -> list[Any]:
    """The tensors an exported graph would output, in its order: a segmentation head gives ((decoded, prototypes),
    raw) in eval mode, and the prototypes are its output1; every other head gives one decoded tensor first."""
    import torch

    if isinstance(output, (list, tuple)) and output and isinstance(output[0], (list, tuple)) and len(output[0]) > 1 \
            and all(isinstance(t, torch.Tensor) for t in output[0]):
        return list(output[0])
    return [_first_tensor(output)]


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
