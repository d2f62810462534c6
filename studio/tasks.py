"""Long work as plain functions: ``f(inputs, settings, ctx)`` reports progress and honours cancel.

``TaskContext`` is Qt-free; the GUI turns its callbacks into a progress bar and a Cancel button, the
CLI into a line on stderr. Jobs call ``ctx.check_cancelled()`` between units of work (a calibration
frame, a layer) so that cancel takes effect within one unit.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError


class Cancelled(StudioError):
    """The user cancelled the job; whatever it was writing has been discarded."""

    def __init__(self, what: str = "cancelled by the user"):
        super().__init__(what)


ProgressCallback = Callable[[float, str], None]
MetricCallback = Callable[[dict[str, Any]], None]


@dataclass
class TaskContext:
    """Progress, cancel, a scratch folder and a place for step reports, handed to every job."""

    on_progress: ProgressCallback | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    workdir: Path | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    _span: tuple[float, float] = (0.0, 1.0)
    # The model's own frames (studio.data.FrameSet) when the user gave some: calibration and fidelity
    # read them through studio.calibration and studio.evaluate.frames; None means the bundled media.
    frames: Any = None
    # "Stop and keep best": long training ends early and the job goes on with the best result so far
    # (unlike cancel, which discards everything). Shared by every sub-context.
    stop_event: threading.Event = field(default_factory=threading.Event)
    # Structured figures a job publishes while it runs (training loss, held-out fidelity) for live charts.
    on_metric: MetricCallback | None = None
    # The model a recipe started from (``apply_recipe`` sets it for its steps): a step that chooses by fidelity
    # can judge against it rather than against its own input, which earlier steps have already changed.
    source_model: Any = None

    def progress(self, fraction: float, text: str = "") -> None:
        """Report ``fraction`` (0..1) of the current job (or sub-span, see ``sub``)."""
        self.check_cancelled()
        if self.on_progress is not None:
            low, high = self._span
            self.on_progress(low + (high - low) * min(max(fraction, 0.0), 1.0), text)

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def cancel(self) -> None:
        self.cancel_event.set()

    def request_stop(self) -> None:
        """Ask long work to end early and keep the best it has (training honours this; other steps ignore it)."""
        self.stop_event.set()

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def metric(self, **fields: Any) -> None:
        """Publish one measurement, e.g. ``metric(kind="train", step=10, loss=0.3)`` (plain JSON values)."""
        if self.on_metric is not None:
            self.on_metric(fields)

    def sub(self, start: float, end: float) -> TaskContext:
        """A context whose 0..1 maps onto ``start..end`` of this one (for a step within a recipe).

        It shares progress, cancel, workdir, frames and the source model, and has its own list of reports.
        """
        low, high = self._span
        return TaskContext(self.on_progress, self.cancel_event, self.workdir, [],
                           (low + (high - low) * start, low + (high - low) * end), self.frames, self.stop_event,
                           self.on_metric, self.source_model)

    def scratch(self, prefix: str) -> Path:
        """A new folder for intermediate files, inside ``workdir`` when one is set."""
        base = self.workdir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))

    def add_report(self, report: dict[str, Any]) -> None:
        self.reports.append(report)
