"""The main window: preview in the middle, model / optimize / variants on the right, charts below.

A language model replaces the frame preview with a prompt view (causal LMs) or a similarity view
(sentence encoders) in the middle; the Model / Optimize / Variants tabs work the same for both.

It holds no logic the command line cannot reach: models load through ``studio.session``, variants
are ``deploy-studio optimize`` runs, exports are ``deploy-studio export`` in a child process, the
preview is ``studio.preview``. The GUI thread only draws; everything else is a ``Job``.

What the window shows (the session, the source, the previewed variants, the running preview, the last
export, the recent models) is a Qt-free ``WorkspaceState`` (``window.state``) that the window's parts
observe. The parts, each in its module: the middle (``CentralArea``: the frame preview or a language
view), the Optimize and Variants tabs (``VariantTabs``), Export (``ExportActions``), the menus
(``window_menus``) and the status bar (``JobStatus``). Every job runs through one ``JobRunner``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget

from studio.errors import NeedsTrustError, UnsupportedError, first_line
from studio.lm.variants import is_language_model
from studio.media import bundled_video
from studio.preview import Lane, LivePreview
from studio.session import Session
from studio.workspace_state import WorkspaceState
from ui.autosave import autosave, closed_cleanly
from ui.central_area import CentralArea
from ui.export_actions import ExportActions
from ui.export_dialog import ExportDialog
from ui.frames_setting import FramesSetting
from ui.gui_gc import collect_on_gui_thread
from ui.job_status import JobStatus
from ui.jobs import Job, JobRunner
from ui.model_panel import ModelPanel
from ui.training_dock import TrainingDock
from ui.trust_question import NeedsTrust, ask_trust
from ui.variant_tabs import VariantTabs
from ui.window_menus import build_menus, recent_from

DEMO_MODEL = "zoo:yolov8s-fall"


def _layer_table(handle) -> dict:
    from studio.layers import layer_table

    return layer_table(handle)


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        collect_on_gui_thread()  # before any worker thread exists: see ui.gui_gc
        self.settings = settings or QSettings()
        self.setWindowTitle("Deploy Studio")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.state = WorkspaceState(str(self.settings.value("source", "") or bundled_video("bikes.mp4")),
                                    recent=recent_from(self.settings))
        self.jobs = JobRunner(self)  # the window's jobs; the optimize panel's and the language views' join it
        self.central = CentralArea(self.state, self.jobs)
        self.central.status.connect(self.show_status)
        self.central.failed.connect(self.show_failure)
        self.central.pane.source_chosen.connect(self.set_source)
        self.setCentralWidget(self.central)
        pane = self.central.pane  # its widgets, named on the window too (the tests and the smoke check use them)
        self.views, self.splitter, self.charts = pane.views, pane, pane.charts
        self.chart_stack = self.central.chart_stack
        self.source_combo, self.ab_box, self.play_action = pane.source_combo, pane.ab_box, pane.play_action
        self.language_views = self.central.language_views
        self.variant_tabs = VariantTabs(self)
        self.registry = self.optimize_panel = self.variants_panel = None  # made by finish_startup
        self._build_docks()
        self.exports = ExportActions(self)
        self.export_again_action = self.exports.export_again_action
        self._build_toolbar()
        self.recent_menu, self.zoo_menu = build_menus(self, self.open_action, self.docks, self.state, self.settings,
                                                      self.open_model)
        self.job_status = JobStatus(self.statusBar(), self.jobs)
        self.status_text, self.job_progress = self.job_status.text, self.job_status.progress
        self.cancel_button = self.job_status.cancel_button
        self._restore_layout()
        self.state.observe("session", self._show_title)

    @property
    def session(self) -> Session | None:
        return self.state.session

    @property
    def preview(self) -> LivePreview | None:
        return self.state.preview

    @property
    def job(self) -> Job | None:
        """The window's newest job (opening a model, a plugin run, an export): kept after it ended."""
        return self.jobs.current

    # -- construction ----------------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.tabs = QTabWidget()
        self.model_panel = ModelPanel()
        self.frames_setting = FramesSetting(self.settings)
        self.frames_setting.changed.connect(self._frames_changed)
        self.model_panel.add_setting("Frames for judging\nand calibration", self.frames_setting)
        self.tabs.addTab(self.model_panel, "Model")
        self.tabs.addTab(QLabel("Loading plugins…"), "Optimize")
        self.tabs.addTab(QLabel("Variants appear here."), "Variants")
        right = QDockWidget("Inspector", self)
        right.setObjectName("inspector")
        right.setWidget(self.tabs)
        right.setMinimumWidth(420)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        bottom = QDockWidget("Live charts", self)
        bottom.setObjectName("charts")
        bottom.setWidget(self.chart_stack)  # the preview's charts, or the language view's
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bottom)
        self.training = TrainingDock(self, bottom)  # recovery curves, a tab beside the live charts
        self.docks = [right, bottom, self.training.widget]
        self.resizeDocks([right], [520], Qt.Orientation.Horizontal)
        self.resizeDocks([bottom], [250], Qt.Orientation.Vertical)

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        self.open_action = QAction("Open model…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.choose_model)
        bar.addAction(self.open_action)
        bar.addSeparator()
        self.central.pane.add_controls(bar)
        bar.addSeparator()
        bar.addAction(self.exports.export_action)
        bar.addAction(self.exports.export_again_action)

    def finish_startup(self) -> None:
        """What can wait until the window is on screen: the plugin registry and its panels."""
        self.registry, self.optimize_panel, self.variants_panel = self.variant_tabs.install()
        if self.session is not None:
            self.variant_tabs.session_changed(select=self.state.lanes[0] if self.state.lanes else "base")

    # -- sources and models ----------------------------------------------------------------------
    def set_source(self, spec: str) -> None:
        """Preview ``spec`` from now on, remembered for the next start (the toolbar's choice)."""
        self.state.set_source(spec)
        self.settings.setValue("source", self.state.source)
        autosave(self)
        if self.state.lanes:
            self.central.preview_variants(self.state.lanes)

    def choose_model(self) -> None:
        from studio.loaders import accepted_suffixes

        patterns = " ".join(f"*{s}" for s in accepted_suffixes())
        start = str(self.settings.value("last_model_folder", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", start, f"Models ({patterns});;All files (*)")
        if path:
            self.open_model(path)

    def open_model(self, spec: str | Path) -> bool:
        """Load ``spec`` in the background; the previous model stays until the new one is ready."""
        if self.jobs.running:
            self.show_status(f"Busy with {self.job.title}: cancel it or wait, then open the model again.")
            return False
        spec = str(spec)

        def load(ctx) -> Session | NeedsTrust:
            ctx.progress(0.05, f"loading {Path(spec).name}")
            try:
                return Session.open(spec)
            except NeedsTrustError as exc:  # the user decides, in a question rather than an error box
                return NeedsTrust(spec, str(exc))

        self.open_session(spec, f"opening {Path(spec).name}", load, failure_title="Cannot open the model")
        return True

    def open_session(self, spec: str, title: str, load, *, failure_title: str, then=None) -> Job | None:
        """Run ``load(ctx) -> Session`` as the window's job, then show the session (the preview of its base
        model too) and call ``then(session)``. ``load`` may return ``NeedsTrust``: the question is asked."""

        def work(ctx) -> tuple[Session, list[Lane]] | NeedsTrust:
            session = load(ctx)
            if isinstance(session, NeedsTrust):
                return session
            if is_language_model(session.baseline):
                return session, []  # no frames to preview: the language views load their runtime on first use
            ctx.progress(0.6, "creating the inference session")
            try:
                return session, self.central.pane.make_lanes(session, ["base"], ctx)
            except UnsupportedError as exc:  # e.g. CoreML off macOS: inspect it, say why it does not run here
                return session, [], first_line(exc)

        def loaded(result) -> None:
            if isinstance(result, NeedsTrust):
                self.show_status(f"{Path(result.spec).name} needs your trust to load: answer the question.")
                ask_trust(self, result, self.open_model)
                return
            self._show_session(spec, *result)
            if then is not None:
                then(result[0])

        return self.start_job(title, work, loaded, failure_title=failure_title)

    def _show_session(self, spec: str, session: Session, lanes: list[Lane], not_running: str = "") -> None:
        self.state.set_session(session)
        if not spec.startswith("zoo:"):
            self.settings.setValue("last_model_folder", str(Path(spec).parent))
        self.state.remember_recent(spec)
        self.model_panel.show_model(session.baseline)
        session.frames = self.frames_setting.load_for(session.baseline.provenance.sha256)
        self.jobs.side("counting layers", lambda ctx: _layer_table(session.baseline), done=self.model_panel.show_layers,
                       error=lambda message: self.show_status(f"counting layers: {message}"))
        self.central.show_session(session, lanes)
        self.variant_tabs.session_changed(select="base")
        params = "unknown" if session.baseline.params is None else f"{session.baseline.params:,}"
        self.show_status(f"No preview: {not_running}" if not_running else
                         f"{session.baseline.display_name}: {session.baseline.task}, {params} parameters. "
                         "Drop another model to replace it.")
        autosave(self)

    def _show_title(self, session: Session | None) -> None:
        self.setWindowTitle(f"Deploy Studio — {session.baseline.display_name}" if session else "Deploy Studio")

    def _frames_changed(self, frames: Path | None) -> None:
        """Variants made from now on calibrate and are judged on these frames (the table says which)."""
        if self.session is not None:
            self.session.frames = frames
            self.show_status(f"New variants and exports calibrate and are judged on {frames or 'the bundled media'}.")
            autosave(self)

    # -- what the other parts call ---------------------------------------------------------------
    def run_plugin(self, plugin_id: str, values: dict) -> None:
        self.variant_tabs.run_plugin(plugin_id, values)

    def toggle_preview(self) -> None:
        self.central.pane.toggle()

    def open_export_dialog(self) -> ExportDialog | None:
        return self.exports.open_dialog()

    def export_again(self) -> None:
        self.exports.export_again()

    def start_job(self, title: str, fn, on_success, failure_title: str = "Failed") -> Job | None:
        """Run ``fn(ctx)`` as the window's one job (refused while another runs); a failure is shown in a box."""
        if self.jobs.running:
            self.show_status(f"Busy with {self.job.title}: cancel it or wait.")
            return None
        return self.jobs.start(title, fn, done=on_success,
                               error=lambda message: self.show_failure(failure_title, message),
                               cancelled=lambda: self.show_status(f"Cancelled {title}; nothing was kept."))

    def show_failure(self, title: str, message: str) -> None:
        self.show_status(f"{title}: {message}")
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("job_error")
        box.open()  # not exec(): the event loop (and the preview) keeps running

    def show_status(self, text: str) -> None:
        self.job_status.show(text)

    # -- drag and drop, persistence --------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_model(paths[0])

    def _restore_layout(self) -> None:
        geometry, state = self.settings.value("geometry"), self.settings.value("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        preview = self.central.pane.close_down()  # its threads are told to stop now, joined below
        # Every job (the window's, the optimize panel's checks, the language views' runs) is cancelled at once,
        # then each gets 3 s to reach its next cancellation check (a generation at its next token).
        self.jobs.shutdown(timeout=3.0)
        if preview is not None:
            preview.stop(timeout=2.0)  # shutdown joins with a timeout; threads are daemons past it
        closed_cleanly()
        super().closeEvent(event)
