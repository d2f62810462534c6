"""The devices each runtime can really run on here, under the names the user types (``--device``).

One table for every command and view: onnxruntime's execution providers that this build lists (cpu →
CPUExecutionProvider, cuda → CUDAExecutionProvider…), torch's CPU plus the CUDA GPUs or Apple GPU it sees,
OpenVINO's ``Core().available_devices``, LiteRT's CPU. A device that is asked for and missing is refused
with the list of what is there (``check_device``), never replaced by the CPU.

The pure parts (``ort_options``, ``ort_provider``, ``refusal``) take hand-written lists, so the mapping
and the refusal text are tested without any accelerator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from studio.errors import UnsupportedError
from studio.runtime.choice import Runtime

CPU = "cpu"

# onnxruntime's execution providers that run a model on a device, by the name ``--device`` takes. The
# Azure provider (a remote endpoint) and others that are not a device here are not offered.
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
}
NOT_DEVICES = frozenset({"AzureExecutionProvider"})
DEVICE_RUNTIMES = (Runtime.ORT, Runtime.TORCH, Runtime.OPENVINO, Runtime.LITERT)


@dataclass(frozen=True)
class DeviceOption:
    runtime: str  # a Runtime value
    device: str  # what --device takes: "cpu", "cuda", "cuda:0", "GPU.0"
    name: str  # what it is: "NVIDIA H200", "AMD EPYC…", "Intel(R) UHD Graphics"
    engine_name: str  # the runtime's own name for it: the execution provider, torch.device, OpenVINO device

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# -- pure logic -------------------------------------------------------------------------------------------------
def ort_device_name(provider: str) -> str:
    """The ``--device`` name of an execution provider (a plugin EP we do not know: its name, lower case)."""
    for device, known in ORT_PROVIDERS.items():
        if known == provider:
            return device
    return provider.removesuffix("ExecutionProvider").lower()


def ort_options(providers: Iterable[str], plugin_providers: Iterable[tuple[str, str]] = (),
                cpu_name: str = "CPU") -> list[DeviceOption]:
    """The devices onnxruntime offers: its ``get_available_providers()`` list, then plugin EPs registered
    through ``get_ep_devices`` (provider, device description) that the list lacks; the CPU first."""
    seen: dict[str, DeviceOption] = {}
    for provider in providers:
        if provider in NOT_DEVICES:
            continue
        device = ort_device_name(provider)
        seen.setdefault(device, DeviceOption(Runtime.ORT.value, device, cpu_name if device == CPU else provider,
                                             provider))
    for provider, description in plugin_providers:
        if provider in NOT_DEVICES:
            continue
        device = ort_device_name(provider)
        seen.setdefault(device, DeviceOption(Runtime.ORT.value, device, description or provider, provider))
    return sorted(seen.values(), key=lambda option: option.device != CPU)


def refusal(runtime: str, device: str, options: Sequence[DeviceOption]) -> UnsupportedError:
    names = ", ".join(option.device for option in options) or "none"
    return UnsupportedError(f"device '{device}' is not available to {runtime} on this machine (available: {names})",
                            fix="choose one of those with --device ('deploy-studio devices' lists them all)")


def match(runtime: str, device: str | None, options: Sequence[DeviceOption]) -> DeviceOption:
    """The option ``device`` names (None is the CPU; case does not matter; "cuda" is the first CUDA GPU)."""
    wanted = (device or CPU).strip().lower()
    for option in options:
        if option.device.lower() == wanted:
            return option
    # A family name picks its first member: torch's "cuda" → "cuda:0", OpenVINO's "gpu" → "GPU.0".
    for option in options:
        if option.device.lower().split(":")[0].split(".")[0] == wanted:
            return option
    raise refusal(runtime, device or CPU, options)


def ort_provider(device: str | None, providers: Sequence[str]) -> str:
    """The execution provider for ``device`` among ``providers`` (``get_available_providers()``)."""
    return match(Runtime.ORT.value, device, ort_options(providers)).engine_name


# -- what is on this machine ------------------------------------------------------------------------------------
def _cpu_name() -> str:
    from studio.machine import cpu_description

    return str(cpu_description()["cpu"])


def _ort() -> list[DeviceOption]:
    import onnxruntime as ort

    plugins: list[tuple[str, str]] = []
    if hasattr(ort, "get_ep_devices"):  # onnxruntime ≥ 1.22: plugin EPs registered by library
        for ep_device in ort.get_ep_devices():
            hardware = getattr(ep_device, "device", None)
            vendor = getattr(hardware, "vendor", "") if hardware is not None else ""
            kind = getattr(getattr(hardware, "type", None), "name", "") if hardware is not None else ""
            plugins.append((ep_device.ep_name, " ".join(part for part in (vendor, kind) if part)))
    return ort_options(ort.get_available_providers(), plugins, cpu_name=_cpu_name())


def _torch() -> list[DeviceOption]:
    import torch

    from studio.device import available

    present = available()
    options = [DeviceOption(Runtime.TORCH.value, CPU, _cpu_name(), "cpu")]
    if "cuda" in present:
        options += [DeviceOption(Runtime.TORCH.value, f"cuda:{index}", torch.cuda.get_device_name(index),
                                 f"cuda:{index}") for index in range(torch.cuda.device_count())]
    if "mps" in present:
        options.append(DeviceOption(Runtime.TORCH.value, "mps", "Apple GPU (MPS)", "mps"))
    return options


def _openvino() -> list[DeviceOption]:
    import openvino as ov

    core = ov.Core()
    options = []
    for device in core.available_devices:
        try:
            name = str(core.get_property(device, "FULL_DEVICE_NAME"))
        except Exception:  # a plugin that cannot answer still runs; its id is its name then
            name = device
        options.append(DeviceOption(Runtime.OPENVINO.value, device, name, device))
    return sorted(options, key=lambda option: option.device != "CPU")


def _litert() -> list[DeviceOption]:
    # The studio runs LiteRT's interpreter without delegates: the CPU (XNNPACK) only.
    return [DeviceOption(Runtime.LITERT.value, CPU, _cpu_name(), "CPU (XNNPACK)")]


LISTERS = {Runtime.ORT: _ort, Runtime.TORCH: _torch, Runtime.OPENVINO: _openvino, Runtime.LITERT: _litert}


def devices(runtime: str | Runtime) -> list[DeviceOption]:
    """The devices ``runtime`` can run on here, the CPU first."""
    chosen = Runtime(str(runtime))
    if chosen not in LISTERS:
        raise UnsupportedError(f"the {chosen} runtime has no device choice",
                               fix=f"choose one of {', '.join(r.value for r in DEVICE_RUNTIMES)}")
    return LISTERS[chosen]()


def check_device(runtime: str | Runtime, device: str | None) -> DeviceOption:
    """The device ``device`` names for ``runtime`` (None: the CPU); one that is not here is refused."""
    return match(str(runtime), device, devices(runtime))


def table() -> list[dict[str, Any]]:
    """Every runtime × device on this machine (``deploy-studio devices``); a runtime that cannot load says why."""
    rows: list[dict[str, Any]] = []
    for runtime in DEVICE_RUNTIMES:
        try:
            rows += [option.as_dict() for option in devices(runtime)]
        except Exception as exc:  # one broken runtime must not hide the others
            from studio.errors import first_line

            rows.append({"runtime": runtime.value, "device": None, "name": None, "engine_name": None,
                         "error": f"{type(exc).__name__}: {first_line(exc)}"})
    return rows
