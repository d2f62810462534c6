"""The middle of the window: the frame preview, or the language view of the open language model.

Each model shows one of them, and the "Live charts" dock the matching page (``chart_stack``): the
preview's charts, or the language view's ``charts``. The Variants tab's "Preview as A / as B" reaches
either through ``preview_as_a`` and ``preview_as_b``: the frame preview's lanes, or the language view's sides.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QStackedWidget

from studio.lm.variants import is_language_model
from studio.model import Task
from studio.preview import Lane
from studio.session import Session
from studio.workspace_state import WorkspaceState
from ui.charts import ChartsPanel
from ui.jobs import JobRunner
from ui.language_view import LanguageView
from ui.preview_pane import PreviewPane
from ui.prompt_view import PromptView
from ui.similarity_view import SimilarityView


class CentralArea(QStackedWidget):
    status = Signal(str)
    failed = Signal(str, str)  # a language view's run failed: title, one-line message

    def __init__(self, state: WorkspaceState, jobs: JobRunner):
        super().__init__()
        self.state, self.jobs = state, jobs
        self.charts = ChartsPanel()
        self.chart_stack = QStackedWidget()  # for the "Live charts" dock
        self.chart_stack.addWidget(self.charts)
        self.pane = PreviewPane(state, jobs, self.charts)
        self.pane.status.connect(self.status)
        self.addWidget(self.pane)
        self.language_views: dict[Task, LanguageView] = {}  # made on first use

    def language_view(self, task: Task) -> LanguageView:
        """The prompt view (causal LMs) or the similarity view (sentence encoders), made on first use."""
        view = self.language_views.get(task)
        if view is None:
            view = PromptView() if task == Task.GENERATE else SimilarityView()
            view.status.connect(self.status)
            view.failed.connect(self.failed)
            self.jobs.adopt(view.jobs)  # shut down with the window's jobs
            self.addWidget(view)
            self.chart_stack.addWidget(view.charts)
            self.language_views[task] = view
        return view

    def active_language_view(self) -> LanguageView | None:
        session = self.state.session
        if session is None or not is_language_model(session.baseline):
            return None
        return self.language_views.get(session.baseline.task)

    def show_session(self, session: Session, lanes: list[Lane]) -> None:
        """A model was opened: its language view, or the frame preview of its base model on ``lanes``."""
        language = self.language_view(session.baseline.task) if is_language_model(session.baseline) else None
        if language is not None:
            self.pane.stop()
            self.state.set_lanes([])
            language.set_session(session)
        self.show_model(language)
        if language is None and lanes:
            self.pane.start(["base"], lanes)
        elif language is None:  # a model that cannot run here (CoreML off macOS): inspected, not previewed
            self.pane.stop()
            self.state.set_lanes([])

    def show_model(self, language: LanguageView | None) -> None:
        """The language view, or (None) the frame preview; the video-only controls follow."""
        for view in self.language_views.values():
            if view is not language:
                view.stop()  # a hidden view does not keep the cores busy
        self.setCurrentWidget(language or self.pane)
        self.chart_stack.setCurrentWidget(self.charts if language is None else language.charts)
        self.pane.set_video_controls(language is None)

    def preview_variants(self, keys: list[str]) -> None:
        """Show ``keys`` (A, or A and B): on frames, or as the language view's sides."""
        if self.state.session is None or not keys:
            return
        language = self.active_language_view()
        if language is not None:  # the Variants tab's "Preview as A" picks the language view's A (and B)
            language.choose(a=keys[0], b=keys[1] if len(keys) > 1 else None)
        else:
            self.pane.show_variants(keys)

    def preview_as_a(self, key: str) -> None:
        """``key`` as side A; side B (if any) stays."""
        self.preview_variants([key, *self.state.lanes[1:2]])

    def preview_as_b(self, key: str) -> None:
        language = self.active_language_view()
        if language is not None:
            language.choose(b=key)
        else:
            self.pane.show_as_b(key)
