"""Export… and Export again: the export dialog for the selected variant, or its last choice in one click.

The choice of the last export lives in the window's ``WorkspaceState`` (``last_export``); the folder is
also kept in the settings for the next start. Export again runs in the window's job, like a plugin run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction

from ui.export_dialog import ExportChoice, ExportDialog, choice_fits, run_export_job

if TYPE_CHECKING:
    from ui.main_window import MainWindow


class ExportActions(QObject):
    def __init__(self, window: MainWindow):
        """``window``: the main window (its ``state``, ``settings``, ``variants_panel``, ``show_status`` and
        ``start_job``); the dialog opens over it."""
        super().__init__(window)
        self.window = window
        self.export_action = QAction("Export…", self, triggered=self.open_dialog)
        self.export_again_action = QAction("Export again", self, triggered=self.export_again, enabled=False)
        window.state.observe("last_export", self._remembered)

    def target(self):
        """The variant selected in the Variants tab, else the one previewed as A, else the base model."""
        state, panel = self.window.state, self.window.variants_panel
        if state.session is None:
            return None
        key = (panel.current_key() if panel else None) or (state.lanes[0] if state.lanes else "base")
        return state.session.get(key)

    def open_dialog(self) -> ExportDialog | None:
        window, variant = self.window, self.target()
        if variant is None:
            window.show_status("Open a model first.")
            return None
        session = window.state.session
        recipe = variant.folder / "recipe.toml" if variant.folder else None
        choice = window.state.last_export or ExportChoice(folder=str(window.settings.value("export_folder", "")))
        dialog = ExportDialog(session.spec, recipe, f"{variant.key} ({variant.title})", choice, window,
                              handle=variant.handle, frames=session.frames)
        dialog.exported.connect(self._exported)
        dialog.show()
        return dialog

    def export_again(self) -> None:
        window, variant, choice = self.window, self.target(), self.window.state.last_export
        if variant is None or choice is None:
            return
        if not choice_fits(choice, variant.handle):  # the last export was for another kind of model
            window.show_status(f"{', '.join(choice.formats)} {choice.precision} does not apply to {variant.key}: "
                               "choose again in the export dialog.")
            self.open_dialog()
            return
        recipe = variant.folder / "recipe.toml" if variant.folder else None
        spec, frames = window.state.session.spec, window.state.session.frames
        window.start_job(f"exporting {variant.key}", lambda ctx: run_export_job(spec, recipe, choice, ctx, frames),
                         lambda report: self._exported(choice, report), failure_title="Export failed")

    def _exported(self, choice: ExportChoice, report: dict) -> None:
        self.window.state.set_last_export(choice)
        self.window.settings.setValue("export_folder", choice.folder)
        self.window.show_status(f"Exported {len(report['exports'])} file(s) to {choice.folder}, each verified.")

    def _remembered(self, choice: ExportChoice) -> None:
        self.export_again_action.setEnabled(True)
        self.export_again_action.setToolTip(f"{', '.join(choice.formats)} {choice.precision} → {choice.folder}")
