"""What the desktop window shows, as a plain object without Qt (after napari's ``ViewerModel``).

The open session, the preview's source, the variants previewed side by side (A, or A and B), the running
``LivePreview``, the last export choice and the recently opened models live here; the window and its
parts observe the changes (``observe("source", callback)``) and draw them. Anything that is not a window
(a test, a script, the autosave) reads and changes the same state through these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.preview import LivePreview
    from studio.session import Session

MAX_RECENT = 8
EVENTS = ("session", "source", "lanes", "preview", "last_export", "recent", "lane_choices")
DEFAULT_LANE_CHOICE = ("auto", "cpu")  # the model's own runtime, on the CPU


class WorkspaceState:
    """Each ``set_…`` stores its value and then calls the observers of that event with it, in order."""

    def __init__(self, source: str, recent: Iterable[str] = (), max_recent: int = MAX_RECENT):
        self.session: Session | None = None
        self.source = str(source)
        self.lanes: list[str] = []  # the previewed variants' keys: [A] or [A, B]; kept while the preview pauses
        self.preview: LivePreview | None = None
        self.last_export: Any = None  # the export dialog's choice (``ui.export_dialog.ExportChoice``)
        self.max_recent = max_recent
        self.recent: list[str] = list(recent)[:max_recent]  # newest first
        # Per preview side (A, B): the (runtime, device) its lane runs on, as studio.runtime.devices names them.
        # A new model starts on the defaults (set_session): a choice made for one model may not exist for another.
        self.lane_choices: list[tuple[str, str]] = [DEFAULT_LANE_CHOICE, DEFAULT_LANE_CHOICE]
        self._observers: dict[str, list[Callable[[Any], Any]]] = {event: [] for event in EVENTS}

    def observe(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(new value)`` after every change of ``event`` (one of ``EVENTS``)."""
        if event not in self._observers:
            raise ValueError(f"no event {event!r}: one of {', '.join(EVENTS)}")
        self._observers[event].append(callback)

    def _changed(self, event: str, value: Any) -> None:
        setattr(self, event, value)
        for callback in list(self._observers[event]):
            callback(value)

    def set_session(self, session: Session | None) -> None:
        if self.lane_choices != [DEFAULT_LANE_CHOICE, DEFAULT_LANE_CHOICE]:
            self._changed("lane_choices", [DEFAULT_LANE_CHOICE, DEFAULT_LANE_CHOICE])
        self._changed("session", session)

    def set_lane_choice(self, index: int, runtime: str, device: str) -> None:
        """Side ``index`` (0: A, 1: B) runs on ``runtime`` and ``device`` (set once its lane was made)."""
        choices = list(self.lane_choices)
        choices[index] = (str(runtime), str(device))
        self._changed("lane_choices", choices)

    def set_source(self, spec: str) -> None:
        """The preview's source: a video file, an image folder, or a camera index (as text)."""
        self._changed("source", str(spec))

    def set_lanes(self, keys: list[str]) -> None:
        self._changed("lanes", list(keys))

    def set_preview(self, preview: LivePreview | None) -> None:
        self._changed("preview", preview)

    def set_last_export(self, choice: Any) -> None:
        self._changed("last_export", choice)

    def remember_recent(self, spec: str) -> None:
        """``spec`` first among the recent models (once), the oldest dropped past ``max_recent``."""
        self._changed("recent", [spec, *(r for r in self.recent if r != spec)][: self.max_recent])
