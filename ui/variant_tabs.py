"""The Optimize, Variants and Formats tabs, and what they do to the open session.

They are made once the window is on screen (``install``: the plugin registry loads then). A plugin run or
a recipe makes a variant in the window's job; it measures latency, so the frame preview pauses (and
resumes) or the language view waits, and the new variant is selected in the table when it is published.
The Formats tab benchmarks the session's source model in every format × precision; the preview pauses
while it times them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from studio.evaluate.evidence import metric_label
from ui.autosave import autosave

if TYPE_CHECKING:
    from ui.main_window import MainWindow
    from ui.search_panel import SearchPanel


class VariantTabs(QObject):
    def __init__(self, window: MainWindow):
        """``window``: the main window (its ``state``, ``tabs``, ``central``, ``training``, ``jobs``,
        ``start_job`` and ``show_status``)."""
        super().__init__(window)
        self.window = window
        self.optimize_panel = None
        self.variants_panel = None
        self.formats_panel = None
        self.search_panel: SearchPanel | None = None

    def install(self):
        """Load the plugin registry and put its panels in the Optimize and Variants tabs, and the Formats tab
        after them; the registry and the first two panels."""
        from studio.registry import default_registry
        from ui.formats_panel import FormatsPanel
        from ui.optimize_panel import OptimizePanel
        from ui.variants_panel import VariantsPanel

        window = self.window
        registry = default_registry()
        self.optimize_panel = OptimizePanel(registry)
        self.optimize_panel.follow(window.jobs)  # the window's job shows its progress, Cancel and Stop there
        self.optimize_panel.run_requested.connect(self.run_plugin)
        self.optimize_panel.job_started.connect(window.training.watch)
        self.variants_panel = VariantsPanel()
        self.variants_panel.selected.connect(self._on_variant_selected)
        self.variants_panel.preview_a.connect(window.central.preview_as_a)
        self.variants_panel.preview_b.connect(window.central.preview_as_b)
        self.variants_panel.save_recipe.connect(self.save_recipe)
        self.variants_panel.load_recipe.connect(self.load_recipe)
        tabs = window.tabs
        for index, widget in ((1, self.optimize_panel), (2, self.variants_panel)):
            old = tabs.widget(index)
            title = tabs.tabText(index)
            tabs.removeTab(index)
            tabs.insertTab(index, widget, title)
            old.deleteLater()
        self.formats_panel = FormatsPanel()
        window.jobs.adopt(self.formats_panel.jobs)  # a measurement still running is killed when the window closes
        self.formats_panel.job_started.connect(self._pause_preview)
        self.formats_panel.preview_requested.connect(window.central.pane.preview_file)
        tabs.insertTab(tabs.indexOf(self.variants_panel) + 1, self.formats_panel, "Formats")
        window.state.observe("session", self.formats_panel.set_session)
        self.formats_panel.set_session(window.state.session)  # a workspace restored before the plugins loaded
        self._install_search(registry)
        return registry, self.optimize_panel, self.variants_panel

    def _install_search(self, registry) -> None:
        """The Search tab after Formats: a search runs as a child process; its trials become variants here."""
        from ui.search_panel import SearchPanel

        window = self.window
        panel = self.search_panel = SearchPanel(registry)
        window.jobs.adopt(panel.jobs)  # closing the window stops a search still running
        panel.job_started.connect(self._pause_preview)
        panel.make_variant.connect(lambda path, title: self.apply_recipe(Path(path), title))
        window.tabs.insertTab(window.tabs.indexOf(self.formats_panel) + 1, panel, "Search")
        window.state.observe("session", panel.set_session)
        panel.set_session(window.state.session)

    def session_changed(self, select: str | None = None) -> None:
        """The session's variants changed (or a model opened): the table, the language view and the target."""
        session = self.window.state.session
        language = self.window.central.active_language_view()
        if language is not None:
            language.set_variants(session.variants)
        if session is None or self.variants_panel is None:
            return
        self.variants_panel.set_rows(session.rows(), select=select)
        key = select or "base"
        variant = session.get(key)
        self.optimize_panel.set_target(key, variant.title, variant.handle)

    def _on_variant_selected(self, key: str) -> None:
        session = self.window.state.session
        if session is not None and self.optimize_panel is not None:
            variant = session.get(key)
            self.optimize_panel.set_target(key, variant.title, variant.handle)

    def run_plugin(self, plugin_id: str, values: dict) -> None:
        """Run ``plugin_id`` with ``values`` on the variant selected in the table (else the base model)."""
        session = self.window.state.session
        if session is None:
            return
        parent = (self.variants_panel.current_key() if self.variants_panel else None) or "base"
        self._measuring_job(f"{plugin_id} on {parent}", lambda ctx: session.derive(parent, plugin_id, values, ctx),
                            f"{plugin_id} failed")

    def _measuring_job(self, title: str, fn, failure_title: str) -> None:
        """A job that measures latency: the preview pauses so the two do not share the cores, and resumes."""
        window = self.window
        job = window.start_job(title, fn, self._variant_made, failure_title=failure_title)
        if job is None:
            return
        language = window.central.active_language_view()
        if language is not None:
            language.hold(title)  # generating beside the measurement would skew both
            job.finished.connect(lambda: language.hold(None))
            window.show_status(f"{title}… (generation waits while latency is measured)")
            return
        self._pause_preview(job, title)

    def _pause_preview(self, job, title: str | None = None) -> None:
        """The frame preview stops while ``job`` measures latency (the two would share the cores), and resumes."""
        window, state = self.window, self.window.state
        resume = list(state.lanes) if state.preview is not None else []
        window.central.pane.stop()
        window.show_status(f"{title or job.title}… (preview paused while latency is measured)")
        if resume:  # not into a window being closed: the job ended because the window cancelled it
            job.finished.connect(lambda: state.preview is None and window.isVisible()
                                 and window.central.preview_variants(resume))

    def _variant_made(self, variant) -> None:
        self.session_changed(select=variant.key)
        autosave(self.window)  # the variant is published; the workspace now lists it (kill -9 loses nothing)
        row = variant.row()
        fidelity = "–" if row["fidelity"] is None else f"{metric_label(row['fidelity_metric'])} {row['fidelity']:.3f}"
        self.window.show_status(f"{variant.key} ready: {row['size_mb']:.1f} MB, {row['speedup']:.2f}× the base "
                                f"model's speed, fidelity {fidelity}. Preview it from the Variants tab.")
        self.window.tabs.setCurrentWidget(self.variants_panel)

    def save_recipe(self, key: str) -> None:
        session = self.window.state.session
        path, _ = QFileDialog.getSaveFileName(self.window, "Save the recipe", f"{key}.toml", "Recipes (*.toml)")
        if path and session is not None:
            session.save_recipe(key, Path(path))
            self.window.show_status(f"Saved {key}'s recipe to {path} (replay: deploy-studio optimize MODEL "
                                    "--recipe …)")

    def load_recipe(self) -> None:
        session = self.window.state.session
        if session is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Load a recipe", "", "Recipes (*.toml)")
        if path:
            self.apply_recipe(Path(path))

    def apply_recipe(self, path: Path, title: str | None = None) -> None:
        """Build the recipe at ``path`` as a new variant of the open model (Load recipe…, a search's trial)."""
        session = self.window.state.session
        if session is not None:
            self._measuring_job(title or f"recipe {path.name}", lambda ctx: session.load_recipe(path, ctx),
                                "Cannot apply the recipe")
