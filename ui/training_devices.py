"""Which devices recovery training can use here, found once and off the GUI thread.

Asking torch means importing it (seconds): the window never does that at start or on the GUI thread.
The probe runs as a ``Job`` the first time something needs the answer (the optimize panel, when a model
is loaded or the panel is shown) and reports ``studio.device`` names: "CUDA: NVIDIA H100 …", "CPU …".
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ui.jobs import Job, JobRunner

# The order studio.device.pick("auto") prefers them in.
AUTO_ORDER = ("cuda", "mps", "cpu")
KIND_NAMES = {"cuda": "CUDA", "mps": "MPS", "cpu": "CPU"}


def _probe(ctx) -> list[tuple[str, str]]:
    from studio.device import available, pick

    return [(kind, pick(kind).name) for kind in available()]


def describe(devices: list[tuple[str, str]]) -> str:
    """One line for the panel: what torch sees, GPU first ("CPU — no GPU seen by torch" when none)."""
    gpus = [f"{KIND_NAMES[kind]}: {name}" for kind, name in devices if kind != "cpu"]
    if not gpus:
        return "Training device: CPU — no GPU seen by torch"
    return f"Training device: {', '.join(gpus)} (auto uses it); CPU also available"


def resolve(request: str, devices: list[tuple[str, str]] | None) -> str:
    """The device a run asking for ``request`` trains on, in words (as studio.device.pick would choose)."""
    if devices is None:
        return f"device '{request}' (named when the run ends)"  # not probed yet: the report names it
    found = dict(devices)
    kind = next((k for k in AUTO_ORDER if k in found), "cpu") if request == "auto" else request
    if kind not in found:
        return f"{KIND_NAMES.get(kind, kind)} (not present: the run will refuse)"
    name = found[kind]
    return name if kind == "cpu" else f"{KIND_NAMES[kind]}: {name}"


class DeviceProbe(QObject):
    """Runs the probe once, on first ``start``, as a side job of ``runner`` (so closing the window waits for
    it with every other job); ``found`` carries [(kind, name), …]."""

    found = Signal(list)
    failed = Signal(str)

    def __init__(self, runner: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.devices: list[tuple[str, str]] | None = None
        self.job: Job | None = None

    def start(self) -> None:
        if self.job is not None:
            return
        self.job = self.runner.side("probing training devices", _probe, done=self._found, error=self.failed.emit)

    def _found(self, devices: list[tuple[str, str]]) -> None:
        self.devices = devices
        self.found.emit(devices)
