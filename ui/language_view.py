"""What the two language views share: the session, the A/B row of variants, the jobs, Stop and Hold.

``PromptView`` (causal LMs) and ``SimilarityView`` (sentence encoders) differ in what one run does and
shows; the window treats both as a ``LanguageView``: ``set_session``, ``set_variants``, ``choose`` (the
Variants tab's "Preview as A / as B"), ``hold`` (a latency measurement runs), ``stop``, and ``charts``,
the widget it places in its "Live charts" dock while the view is shown.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from studio.session import Session, Variant
from ui.jobs import JobRunner
from ui.variant_choice import choose_pair, refresh_pair, variant_row


class LanguageView(QWidget):
    status = Signal(str)
    failed = Signal(str, str)  # title, one-line message
    STOPPING: str | None = None  # said when Stop cancels a run
    STOP_WHEN_HELD = False  # whether a latency measurement stops a run (else it only waits to start the next)

    # Made by the subclass: the widget for the "Live charts" dock, the button that starts a run, and the
    # widget that shows side B (hidden without A/B).
    charts: QWidget
    run_button: QPushButton

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session: Session | None = None
        self.jobs = JobRunner(self, latest_only=True)  # a replaced session's results are dropped
        self._held: str | None = None
        self._newest: str | None = None

    def _variant_row(self, ab_tooltip: str) -> QHBoxLayout:
        """The "A [variant] ☐A/B B [variant]" row the view starts with."""
        row, self.a_combo, self.b_combo, self.ab_box = variant_row(ab_tooltip)
        self.ab_box.toggled.connect(self._on_ab_toggled)
        return row

    def _side_b(self) -> QWidget:
        raise NotImplementedError

    def _reset(self, session: Session) -> None:
        """A different session: drop what belonged to the old one (loaded runtimes, results, charts)."""

    def _update_titles(self) -> None:
        """The variants chosen changed."""

    # -- session and variants ---------------------------------------------------------------------
    def set_session(self, session: Session) -> None:
        """Show ``session``'s variants; a different session drops the loaded runtimes and the results."""
        if session is not self.session:
            self.stop()
            self.jobs.forget()  # it unwinds in the background; its results belong to the old session
            self.session, self._newest = session, None
            self._reset(session)
        self.set_variants(session.variants)
        self._sync_buttons()

    def set_variants(self, variants: list[Variant]) -> None:
        if not variants:
            return
        self._newest = refresh_pair(self.a_combo, self.b_combo, variants, self._newest)
        self._update_titles()

    def choose(self, a: str | None = None, b: str | None = None) -> None:
        choose_pair(self.a_combo, self.b_combo, self.ab_box, a, b)
        self._update_titles()

    def _chosen(self) -> tuple[list[str], list[str]]:
        """The keys and labels a run goes through: A's, then B's with A/B on."""
        combos = [self.a_combo, self.b_combo][:2 if self.ab_box.isChecked() else 1]
        return [c.currentData() for c in combos], [c.currentText() for c in combos]

    def _on_ab_toggled(self, on: bool) -> None:
        self.b_combo.setEnabled(on)
        self._side_b().setVisible(on)

    # -- runs ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        # Not ``Job.running``: the thread is still alive when its queued ``finished`` reaches the GUI.
        return self.jobs.busy

    def stop(self) -> None:
        if self.jobs.busy:
            self.jobs.current.cancel()  # takes effect at the run's next cancellation check
            if self.STOPPING:
                self.status.emit(self.STOPPING)

    def hold(self, reason: str | None) -> None:
        """Wait while ``reason`` (a latency measurement) runs, so the two never share the cores."""
        self._held = reason
        if reason and self.STOP_WHEN_HELD:
            self.stop()
        self._sync_buttons()

    def _refused(self, nothing_open: str, running: str, held: str) -> bool:
        """Whether a run cannot start now (no session, one running, or held); the reason goes to the status."""
        reason = (nothing_open if self.session is None else running if self.busy else
                  held.format(self._held) if self._held else None)
        if reason:
            self.status.emit(reason)
        return bool(reason)

    def _sync_buttons(self) -> None:
        self.run_button.setEnabled(self.session is not None and not self.busy and not self._held)
