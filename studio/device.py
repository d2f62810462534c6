"""Where PyTorch work runs: CUDA when torch sees a GPU, Apple's MPS on a Mac, else the CPU.

A device is used only when present; one that is asked for and missing is an error, never a silent
fall back to the CPU. Every result that trained or ran something names the device (``describe``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu", "cuda" or "mps"
    name: str  # "NVIDIA H200", "Apple M2 (MPS)", "cpu (AMD EPYC, 2 threads)"

    @property
    def torch(self) -> Any:
        import torch

        return torch.device(self.kind)

    def describe(self) -> dict[str, Any]:
        return {"device": self.kind, "name": self.name}


def available() -> list[str]:
    """The accelerators torch sees on this machine, plus the CPU (for the window's device choice)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def pick(request: str = "auto") -> Device:
    """The device for ``request`` ("auto" prefers CUDA, then MPS, then the CPU)."""
    import torch

    if request not in DEVICES:
        raise StudioError(f"unknown device '{request}'", fix=f"choose one of {', '.join(DEVICES)}")
    present = available()
    if request == "auto":
        request = next(kind for kind in ("cuda", "mps", "cpu") if kind in present)
    elif request not in present:
        raise StudioError(f"device '{request}' is not available on this machine (torch sees: {', '.join(present)})",
                          fix="choose --device cpu, or auto to use what is there")
    if request == "cuda":
        return Device("cuda", torch.cuda.get_device_name(0))
    if request == "mps":
        return Device("mps", "Apple GPU (MPS)")
    from studio.machine import cpu_description

    return Device("cpu", f"cpu ({cpu_description()['cpu']}, {torch.get_num_threads()} threads)")
