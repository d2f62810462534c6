"""The menu bar: File (open, recent models, the zoo, quit) and View (the docks).

The recent models are the window's ``WorkspaceState.recent``: the menu follows it, and the list is kept
in the settings for the next start (``recent_from``).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu

from studio.workspace_state import WorkspaceState

SETTINGS_KEY = "recent_models"


def recent_from(settings: QSettings) -> list[str]:
    """The recent models kept in ``settings`` (one entry comes back from an INI file as a plain string)."""
    value = settings.value(SETTINGS_KEY, []) or []
    return [value] if isinstance(value, str) else list(value)


class RecentMenu(QMenu):
    def __init__(self, state: WorkspaceState, settings: QSettings, open_model: Callable[[str], object], parent):
        super().__init__("Open recent", parent)
        self.settings, self.open_model = settings, open_model
        state.observe("recent", self._changed)
        self.fill(state.recent)

    def _changed(self, recent: list[str]) -> None:
        self.settings.setValue(SETTINGS_KEY, recent)
        self.fill(recent)

    def fill(self, recent: list[str]) -> None:
        self.clear()
        for spec in recent:
            self.addAction(spec, lambda s=spec: self.open_model(s))
        self.setEnabled(bool(recent))


class ZooMenu(QMenu):
    """The zoo's models, listed when the menu opens; one whose weights are not installed is disabled."""

    def __init__(self, open_model: Callable[[str], object], parent):
        super().__init__("Open from the zoo", parent)
        self.open_model = open_model
        self.aboutToShow.connect(self.fill)

    def fill(self) -> None:
        from studio import zoo

        self.clear()
        for item in zoo.ENTRIES:
            action = self.addAction(f"{item.name} — {item.description}",
                                    lambda n=item.name: self.open_model(f"zoo:{n}"))
            action.setEnabled(item.loadable())


def build_menus(window: QMainWindow, open_action: QAction, docks: list[QDockWidget], state: WorkspaceState,
                settings: QSettings, open_model: Callable[[str], object]) -> tuple[RecentMenu, ZooMenu]:
    """The File and View menus on ``window``'s menu bar; the two menus of models, for the window to keep."""
    file_menu = window.menuBar().addMenu("&File")
    file_menu.addAction(open_action)
    recent = RecentMenu(state, settings, open_model, window)
    file_menu.addMenu(recent)
    zoo = ZooMenu(open_model, window)
    file_menu.addMenu(zoo)
    file_menu.addSeparator()
    file_menu.addAction(QAction("Quit", window, shortcut=QKeySequence.StandardKey.Quit, triggered=window.close))
    view_menu = window.menuBar().addMenu("&View")
    for dock in docks:
        view_menu.addAction(dock.toggleViewAction())
    return recent, zoo
