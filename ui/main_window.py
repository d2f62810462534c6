"""The main window: preview in the middle, model / optimize / variants on the right, charts below.

A language model replaces the frame preview with a prompt view (causal LMs) or a similarity view
(sentence encoders) in the middle; the Model / Optimize / Variants tabs work the same for both.

It holds no logic the command line cannot reach: models load through ``studio.session``, variants
are ``deploy-studio optimize`` runs, exports are ``deploy-studio export`` in a child process, the
preview is ``studio.preview``. The GUI thread only draws; everything else is a ``Job``.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
)

from studio.errors import NeedsTrustError
from studio.lm.variants import is_language_model
from studio.media import bundled_video
from studio.model import Task
from studio.preview import Lane, LivePreview
from studio.session import Session
from ui.autosave import autosave, closed_cleanly
from ui.charts import ChartsPanel
from ui.export_dialog import ExportChoice, ExportDialog, choice_fits, run_export_job
from ui.frame_view import FrameView
from ui.frames_setting import FramesSetting
from ui.gui_gc import collect_on_gui_thread
from ui.jobs import Job, JobRunner, wait_all
from ui.model_panel import ModelPanel
from ui.prompt_view import PromptView
from ui.similarity_view import SimilarityView
from ui.training_dock import TrainingDock
from ui.trust_question import NeedsTrust, ask_trust

DEMO_MODEL = "zoo:yolov8s-fall"
FRAME_INTERVAL_MS = 33  # ≤ 30 Hz: the newest result is pulled, never one signal per frame
CHART_INTERVAL_MS = 200  # 5 Hz
MAX_RECENT = 8
PREVIEW_THREADS = 2


def camera_indices() -> list[int]:
    """Cameras worth offering: the /dev/video* nodes on Linux; index 0 elsewhere (opening is bounded)."""
    if sys.platform.startswith("linux"):
        return sorted(int(p.removeprefix("/dev/video")) for p in glob.glob("/dev/video*")
                      if p.removeprefix("/dev/video").isdigit())[:4]
    return [0]


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
        self.session: Session | None = None
        self.preview: LivePreview | None = None
        self.lane_keys: list[str] = []
        self.jobs = JobRunner(self)  # the window's jobs; the optimize panel's and the language views' join it
        self.jobs.started.connect(self._job_started)
        self.jobs.progress.connect(self._job_progress)
        self.jobs.ended.connect(self._job_finished)
        self.last_export: ExportChoice | None = None
        self.source_spec = str(self.settings.value("source", "") or bundled_video("bikes.mp4"))
        self.registry = None
        self.optimize_panel = None
        self.variants_panel = None
        self.language_views: dict[Task, PromptView | SimilarityView] = {}  # made on first use
        self._build_preview()
        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_status()
        self.frame_timer = QTimer(self, interval=FRAME_INTERVAL_MS, timeout=self._show_latest)
        self.chart_timer = QTimer(self, interval=CHART_INTERVAL_MS, timeout=self._refresh_charts)
        self.frame_timer.start()
        self.chart_timer.start()
        self._restore_layout()

    # -- construction ----------------------------------------------------------------------------
    def _build_preview(self) -> None:
        self.views = [FrameView(), FrameView()]
        self.views[1].hide()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for view in self.views:
            self.splitter.addWidget(view)
        # The frame preview and the language views take turns in the middle (see _show_central).
        self.central = QStackedWidget()
        self.central.addWidget(self.splitter)
        self.setCentralWidget(self.central)

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
        self.charts = ChartsPanel()
        self.embed_charts_note = QLabel("Sentence encoders have no live charts: each Embed measures its encode "
                                        "time, shown under the similarity matrix.")
        self.embed_charts_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.chart_stack = QStackedWidget()  # the preview's charts, or the prompt view's
        self.chart_stack.addWidget(self.charts)
        self.chart_stack.addWidget(self.embed_charts_note)
        bottom = QDockWidget("Live charts", self)
        bottom.setObjectName("charts")
        bottom.setWidget(self.chart_stack)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bottom)
        self.training = TrainingDock(self, bottom)  # recovery curves, a tab beside the live charts
        self.docks = [right, bottom, self.training.widget]
        self.resizeDocks([right], [520], Qt.Orientation.Horizontal)
        self.resizeDocks([bottom], [250], Qt.Orientation.Vertical)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.open_action = QAction("Open model…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.choose_model)
        bar.addAction(self.open_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Source "))
        self.source_combo = QComboBox()
        self.source_combo.setMinimumWidth(220)
        self._fill_sources()
        self.source_combo.activated.connect(self._on_source_chosen)
        bar.addWidget(self.source_combo)
        self.play_action = QAction("Pause", self, triggered=self.toggle_preview)
        bar.addAction(self.play_action)
        self.ab_box = QCheckBox("A/B")
        self.ab_box.setToolTip("Show two variants side by side on the same frames")
        self.ab_box.toggled.connect(self._on_ab_toggled)
        bar.addWidget(self.ab_box)
        self.video_tips = {widget: widget.toolTip() for widget in (self.source_combo, self.ab_box)}
        bar.addSeparator()
        self.export_action = QAction("Export…", self, triggered=self.open_export_dialog)
        self.export_again_action = QAction("Export again", self, triggered=self.export_again, enabled=False)
        bar.addAction(self.export_action)
        bar.addAction(self.export_again_action)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = QMenu("Open recent", self)
        file_menu.addMenu(self.recent_menu)
        self.zoo_menu = QMenu("Open from the zoo", self)
        file_menu.addMenu(self.zoo_menu)
        self.zoo_menu.aboutToShow.connect(self._fill_zoo)
        file_menu.addSeparator()
        file_menu.addAction(QAction("Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close))
        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())
        self._fill_recent()

    def _build_status(self) -> None:
        self.status_text = QLabel("Ready.")
        self.job_progress = QProgressBar()
        self.job_progress.setRange(0, 1000)
        self.job_progress.setMaximumWidth(240)
        self.job_progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_job)
        bar = self.statusBar()
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.job_progress)
        bar.addPermanentWidget(self.cancel_button)

    def finish_startup(self) -> None:
        """What can wait until the window is on screen: the plugin registry and its panels."""
        from studio.registry import default_registry
        from ui.optimize_panel import OptimizePanel
        from ui.variants_panel import VariantsPanel

        self.registry = default_registry()
        self.optimize_panel = OptimizePanel(self.registry)
        self.jobs.adopt(self.optimize_panel.jobs)
        self.optimize_panel.run_requested.connect(self.run_plugin)
        self.optimize_panel.job_started.connect(self.training.watch)
        self.variants_panel = VariantsPanel()
        self.variants_panel.selected.connect(self._on_variant_selected)
        self.variants_panel.preview_a.connect(lambda key: self.preview_variants([key, *self.lane_keys[1:2]]))
        self.variants_panel.preview_b.connect(self._preview_as_b)
        self.variants_panel.save_recipe.connect(self.save_recipe)
        self.variants_panel.load_recipe.connect(self.load_recipe)
        for index, widget in ((1, self.optimize_panel), (2, self.variants_panel)):
            old = self.tabs.widget(index)
            title = self.tabs.tabText(index)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, widget, title)
            old.deleteLater()
        if self.session is not None:
            self._session_changed(select=self.lane_keys[0] if self.lane_keys else "base")

    # -- sources ---------------------------------------------------------------------------------
    def _fill_sources(self) -> None:
        combo = self.source_combo
        combo.clear()
        combo.addItem(Path(self.source_spec).name or self.source_spec, self.source_spec)
        bikes = str(bundled_video("bikes.mp4"))
        if self.source_spec != bikes:
            combo.addItem("bikes.mp4 (bundled)", bikes)
        for index in camera_indices():
            combo.addItem(f"Camera {index}", str(index))
        combo.addItem("Video file…", "@video")
        combo.addItem("Image folder…", "@folder")

    def _on_source_chosen(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data == "@video":
            path, _ = QFileDialog.getOpenFileName(self, "Preview a video", "",
                                                  "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)")
            data = path or None
        elif data == "@folder":
            data = QFileDialog.getExistingDirectory(self, "Preview an image folder") or None
        if data:
            self.set_source(data)
        else:
            self.source_combo.setCurrentIndex(0)

    def set_source(self, spec: str) -> None:
        self.source_spec = str(spec)
        self.settings.setValue("source", self.source_spec)
        self._fill_sources()
        autosave(self)
        if self.lane_keys:
            self.preview_variants(self.lane_keys)

    # -- models ----------------------------------------------------------------------------------
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
            return session, self._make_lanes(session, ["base"], ctx)

        def loaded(result) -> None:
            if isinstance(result, NeedsTrust):
                self.show_status(f"{Path(result.spec).name} needs your trust to load: answer the question.")
                ask_trust(self, result, self.open_model)
                return
            self._model_opened(spec, *result)
            if then is not None:
                then(result[0])

        return self._start_job(title, work, loaded, failure_title=failure_title)

    def use_source(self, spec: str) -> None:
        """Preview ``spec`` from now on, for this run only (the command line's or a restored workspace's)."""
        self.source_spec = str(spec)
        self._fill_sources()

    def _model_opened(self, spec: str, session: Session, lanes: list[Lane]) -> None:
        self.session = session
        if not spec.startswith("zoo:"):
            self.settings.setValue("last_model_folder", str(Path(spec).parent))
        self._remember_recent(spec)
        self.setWindowTitle(f"Deploy Studio — {session.baseline.display_name}")
        self.model_panel.show_model(session.baseline)
        session.frames = self.frames_setting.load_for(session.baseline.provenance.sha256)
        self.jobs.side("counting layers", lambda ctx: _layer_table(session.baseline), done=self.model_panel.show_layers,
                       error=lambda message: self.show_status(f"counting layers: {message}"))
        language = self._language_view(session.baseline.task) if is_language_model(session.baseline) else None
        if language is not None:
            self.stop_preview()
            self.lane_keys = []
            language.set_session(session)
        self._show_central(language)
        self._session_changed(select="base")
        if language is None:
            self._start_preview(["base"], lanes)
        self.show_status(f"{session.baseline.display_name}: {session.baseline.task}, "
                         f"{session.baseline.params:,} parameters. Drop another model to replace it.")
        autosave(self)

    def _frames_changed(self, frames: Path | None) -> None:
        """Variants made from now on calibrate and are judged on these frames (the table says which)."""
        if self.session is not None:
            self.session.frames = frames
            self.show_status(f"New variants and exports calibrate and are judged on {frames or 'the bundled media'}.")
            autosave(self)

    def _session_changed(self, select: str | None = None) -> None:
        language = self._active_language_view()
        if language is not None:
            language.set_variants(self.session.variants)
        if self.session is None or self.variants_panel is None:
            return
        self.variants_panel.set_rows(self.session.rows(), select=select)
        key = select or "base"
        variant = self.session.get(key)
        self.optimize_panel.set_target(key, variant.title, variant.handle)

    def _on_variant_selected(self, key: str) -> None:
        if self.session is not None and self.optimize_panel is not None:
            variant = self.session.get(key)
            self.optimize_panel.set_target(key, variant.title, variant.handle)

    # -- variants --------------------------------------------------------------------------------
    def run_plugin(self, plugin_id: str, values: dict) -> None:
        if self.session is None:
            return
        parent = (self.variants_panel.current_key() if self.variants_panel else None) or "base"
        session = self.session
        self._measuring_job(f"{plugin_id} on {parent}", lambda ctx: session.derive(parent, plugin_id, values, ctx),
                            f"{plugin_id} failed")

    def _measuring_job(self, title: str, fn, failure_title: str) -> None:
        """A job that measures latency: the preview pauses so the two do not share the cores, and resumes."""
        resume = list(self.lane_keys) if self.preview is not None else []
        if self._start_job(title, fn, self._variant_made, failure_title=failure_title) is None:
            return
        language = self._active_language_view()
        if language is not None:
            language.hold(title)  # generating beside the measurement would skew both
            self.job.finished.connect(lambda: language.hold(None))
            self.show_status(f"{title}… (generation waits while latency is measured)")
            return
        self.stop_preview()
        self.play_action.setText("Play")
        self.show_status(f"{title}… (preview paused while latency is measured)")
        if resume:
            self.job.finished.connect(lambda: self.preview is None and self.preview_variants(resume))

    def _variant_made(self, variant) -> None:
        self._session_changed(select=variant.key)
        autosave(self)  # the variant is published; the workspace now lists it (kill -9 loses nothing)
        row = variant.row()
        fidelity = "–" if row["fidelity"] is None else f"{row['fidelity']:.3f} {row['fidelity_metric']}"
        self.show_status(f"{variant.key} ready: {row['size_mb']:.1f} MB, {row['speedup']:.2f}× the base model's "
                         f"speed, fidelity {fidelity}. Preview it from the Variants tab.")
        self.tabs.setCurrentWidget(self.variants_panel)

    def save_recipe(self, key: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the recipe", f"{key}.toml", "Recipes (*.toml)")
        if path and self.session is not None:
            self.session.save_recipe(key, Path(path))
            self.show_status(f"Saved {key}'s recipe to {path} (replay: deploy-studio optimize MODEL --recipe …)")

    def load_recipe(self) -> None:
        if self.session is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load a recipe", "", "Recipes (*.toml)")
        if path:
            session = self.session
            self._measuring_job(f"recipe {Path(path).name}", lambda ctx: session.load_recipe(Path(path), ctx),
                                "Cannot apply the recipe")

    # -- language models -------------------------------------------------------------------------
    def _language_view(self, task: Task) -> PromptView | SimilarityView:
        """The prompt view (causal LMs) or the similarity view (sentence encoders), made on first use."""
        view = self.language_views.get(task)
        if view is None:
            view = PromptView() if task == Task.GENERATE else SimilarityView()
            view.status.connect(self.show_status)
            view.failed.connect(self._job_failed)
            self.jobs.adopt(view.jobs)
            self.central.addWidget(view)
            if isinstance(view, PromptView):
                self.chart_stack.addWidget(view.charts)
            self.language_views[task] = view
        return view

    def _active_language_view(self) -> PromptView | SimilarityView | None:
        if self.session is None or not is_language_model(self.session.baseline):
            return None
        return self.language_views.get(self.session.baseline.task)

    def _show_central(self, language: PromptView | SimilarityView | None) -> None:
        """The language view, or (None) the frame preview; the video-only controls follow."""
        for view in self.language_views.values():
            if view is not language:
                view.stop()  # a hidden view does not keep the cores busy
        self.central.setCurrentWidget(language or self.splitter)
        charts = (language.charts if isinstance(language, PromptView) else
                  self.embed_charts_note if language is not None else self.charts)
        self.chart_stack.setCurrentWidget(charts)
        video = language is None
        if not video and self.ab_box.isChecked():
            self.ab_box.blockSignals(True)  # the language view has its own A/B
            self.ab_box.setChecked(False)
            self.ab_box.blockSignals(False)
        reason = "" if video else "Language models have no video preview; their view has its own A/B."
        for widget in (self.source_combo, self.ab_box):
            widget.setEnabled(video)
            widget.setToolTip(reason or self.video_tips[widget])
        self.play_action.setEnabled(video)

    # -- preview ---------------------------------------------------------------------------------
    def _make_lanes(self, session: Session, keys: list[str], ctx) -> list[Lane]:
        from studio.sources import take_frames

        warm = None
        try:
            warm = take_frames(self.source_spec, 1)[0]
        except Exception:  # the preview reports a bad source itself; warming up is optional
            warm = None
        lanes = []
        for index, key in enumerate(keys):
            ctx.check_cancelled()
            lanes.append(Lane.create(key, session.get(key).handle, threads=PREVIEW_THREADS, warmup_frame=warm))
            ctx.progress(0.6 + 0.4 * (index + 1) / len(keys), f"session for {key} ready")
        return lanes

    def preview_variants(self, keys: list[str]) -> None:
        if self.session is None or not keys:
            return
        language = self._active_language_view()
        if language is not None:  # the Variants tab's "Preview as A" picks the language view's A (and B)
            language.choose(a=keys[0], b=keys[1] if len(keys) > 1 else None)
            return
        session = self.session
        self.jobs.side("preparing the preview", lambda ctx: self._make_lanes(session, keys, ctx),
                       done=lambda lanes: self._start_preview(keys, lanes),
                       error=lambda message: self.show_status(f"preparing the preview: {message}"))

    def _preview_as_b(self, key: str) -> None:
        language = self._active_language_view()
        if language is not None:
            language.choose(b=key)
            return
        self.ab_box.blockSignals(True)
        self.ab_box.setChecked(True)
        self.ab_box.blockSignals(False)
        self.preview_variants([self.lane_keys[0] if self.lane_keys else "base", key])

    def _on_ab_toggled(self, on: bool) -> None:
        if not self.lane_keys:
            return
        if on:
            other = next((v.key for v in reversed(self.session.variants) if v.key != self.lane_keys[0]), None)
            if other is None:
                self.show_status("A/B needs a second variant: run a plugin first.")
                self.ab_box.setChecked(False)
                return
            self.preview_variants([self.lane_keys[0], other])
        else:
            self.preview_variants(self.lane_keys[:1])

    def _start_preview(self, keys: list[str], lanes: list[Lane]) -> None:
        self.stop_preview()
        self.lane_keys = keys
        self.preview = LivePreview(self.source_spec, lanes).start()
        self.views[1].setVisible(len(lanes) > 1)
        if len(lanes) > 1:
            half = max(self.splitter.width() // 2, 1)
            self.splitter.setSizes([half, half])
        self.play_action.setText("Pause")

    def stop_preview(self) -> None:
        if self.preview is not None:
            self.preview.stop(timeout=0.0)  # threads are told to stop; the GUI does not wait on them
            self.preview = None

    def toggle_preview(self) -> None:
        if self.preview is not None:
            self.stop_preview()
            self.play_action.setText("Play")
        elif self.lane_keys:
            self.preview_variants(self.lane_keys)

    def _show_latest(self) -> None:
        preview = self.preview
        if preview is None:
            return
        if preview.error:
            self.show_status(f"Preview stopped: {preview.error}")
            self.stop_preview()
            self.play_action.setText("Play")
            return
        snapshot = preview.latest()
        if snapshot is None or snapshot is getattr(self, "_shown", None):
            return
        self._shown = snapshot
        for index, prediction in enumerate(snapshot.predictions):
            lane = preview.lanes[index]
            fps = lane.fps()
            caption = (f"{'AB'[index]} · {self._lane_title(lane.name)} · "
                       f"{'–' if fps is None else f'{fps:.1f}'} fps · {prediction.times.total:.1f} ms")
            if snapshot.disagreements is not None:
                caption += f" · {snapshot.disagreements} disagreements"
            self.views[index].show_frame(snapshot.frame, prediction.result, caption)

    def _lane_title(self, key: str) -> str:
        title = self.session.get(key).title if self.session else key
        return title if key == "base" else f"{key}: {title}"

    def _refresh_charts(self) -> None:
        preview = self.preview
        names = [self._lane_title(key) for key in self.lane_keys] if self.session else []
        self.charts.refresh(preview, names, [lane.model_mb for lane in preview.lanes] if preview else [])

    # -- export ----------------------------------------------------------------------------------
    def _export_target(self):
        if self.session is None:
            return None
        key = (self.variants_panel.current_key() if self.variants_panel else None) or (
            self.lane_keys[0] if self.lane_keys else "base")
        return self.session.get(key)

    def open_export_dialog(self) -> ExportDialog | None:
        variant = self._export_target()
        if variant is None:
            self.show_status("Open a model first.")
            return None
        recipe = variant.folder / "recipe.toml" if variant.folder else None
        choice = self.last_export or ExportChoice(folder=str(self.settings.value("export_folder", "")))
        dialog = ExportDialog(self.session.spec, recipe, f"{variant.key} ({variant.title})", choice, self,
                              handle=variant.handle, frames=self.session.frames)
        dialog.exported.connect(self._exported)
        dialog.show()
        return dialog

    def _exported(self, choice: ExportChoice, report: dict) -> None:
        self.last_export = choice
        self.settings.setValue("export_folder", choice.folder)
        self.export_again_action.setEnabled(True)
        self.export_again_action.setToolTip(f"{', '.join(choice.formats)} {choice.precision} → {choice.folder}")
        self.show_status(f"Exported {len(report['exports'])} file(s) to {choice.folder}, each verified.")

    def export_again(self) -> None:
        variant, choice = self._export_target(), self.last_export
        if variant is None or choice is None:
            return
        if not choice_fits(choice, variant.handle):  # the last export was for another kind of model
            self.show_status(f"{', '.join(choice.formats)} {choice.precision} does not apply to {variant.key}: "
                             "choose again in the export dialog.")
            self.open_export_dialog()
            return
        recipe = variant.folder / "recipe.toml" if variant.folder else None
        spec, frames = self.session.spec, self.session.frames
        self._start_job(f"exporting {variant.key}", lambda ctx: run_export_job(spec, recipe, choice, ctx, frames),
                        lambda report: self._exported(choice, report), failure_title="Export failed")

    # -- jobs and status -------------------------------------------------------------------------
    @property
    def job(self) -> Job | None:
        """The window's newest job (opening a model, a plugin run, an export): kept after it ended."""
        return self.jobs.current

    def _start_job(self, title: str, fn, on_success, failure_title: str = "Failed") -> Job | None:
        if self.jobs.running:
            self.show_status(f"Busy with {self.job.title}: cancel it or wait.")
            return None
        return self.jobs.start(title, fn, done=on_success,
                               error=lambda message: self._job_failed(failure_title, message),
                               cancelled=lambda: self.show_status(f"Cancelled {title}; nothing was kept."))

    def _job_started(self, job: Job) -> None:
        self.job_progress.setValue(0)
        self.job_progress.show()
        self.cancel_button.show()
        if self.optimize_panel is not None:
            self.optimize_panel.set_busy(True, job)  # its Cancel / Stop and keep best act on this job
        self.show_status(f"{job.title}…")

    def _job_progress(self, fraction: float, text: str) -> None:
        self.job_progress.setValue(int(fraction * 1000))
        if self.optimize_panel is not None and self.optimize_panel.busy:
            self.optimize_panel.show_progress(fraction, text)
        if text:
            self.show_status(f"{self.job.title if self.job else ''}: {text}")

    def _job_failed(self, title: str, message: str) -> None:
        self.show_status(f"{title}: {message}")
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("job_error")
        box.open()  # not exec(): the event loop (and the preview) keeps running

    def _job_finished(self, _job: Job) -> None:
        self.job_progress.hide()
        self.cancel_button.hide()
        if self.optimize_panel is not None:
            self.optimize_panel.set_busy(False)

    def cancel_job(self) -> None:
        if self.jobs.running:
            self.show_status(f"cancelling {self.job.title}…")
            self.jobs.cancel()

    def show_status(self, text: str) -> None:
        self.status_text.setText(text)

    # -- drag and drop, recent files, persistence -------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_model(paths[0])

    def _remember_recent(self, spec: str) -> None:
        recent = [r for r in self._recent() if r != spec]
        self.settings.setValue("recent_models", [spec, *recent][:MAX_RECENT])
        self._fill_recent()

    def _recent(self) -> list[str]:
        value = self.settings.value("recent_models", []) or []
        return [value] if isinstance(value, str) else list(value)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for spec in self._recent():
            self.recent_menu.addAction(spec, lambda s=spec: self.open_model(s))
        self.recent_menu.setEnabled(bool(self._recent()))

    def _fill_zoo(self) -> None:
        from studio import zoo

        self.zoo_menu.clear()
        for item in zoo.ENTRIES:
            action = self.zoo_menu.addAction(f"{item.name} — {item.description}",
                                             lambda n=item.name: self.open_model(f"zoo:{n}"))
            action.setEnabled(item.loadable())

    def _restore_layout(self) -> None:
        geometry, state = self.settings.value("geometry"), self.settings.value("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.frame_timer.stop()
        self.chart_timer.stop()
        preview = self.preview
        self.stop_preview()
        running = self.jobs.cancel_all()  # the window's, the optimize panel's and the language views' jobs
        if preview is not None:
            preview.stop(timeout=2.0)  # shutdown joins with a timeout; threads are daemons past it
        wait_all(running, timeout=3.0)  # jobs check cancel between steps (a generation at its next token)
        closed_cleanly()
        super().closeEvent(event)
