"""The Search tab: set a target, an objective and a budget, watch trials land on the plot, stop, make a variant.

What ``deploy-studio search MODEL --spec S.toml -o DIR`` does, in the window. Start writes the spec
(``search.toml``) into the results folder and runs the CLI as a child process (``ui.search_child``: Ray never
runs in the window's process); while it runs, a timer reads the folder's rows (``read_rows``: the study's
SQLite) off the GUI thread about once a second and redraws the plot and the table when they changed. Stop
interrupts the child, which leaves the study resumable: Start with the same folder resumes it. "Make variant"
hands a trial's recipe (``trials/NNNN/recipe.toml``) to the window, which builds it as the Optimize tab builds a
loaded recipe, so it joins the Variants tab with its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.lm.variants import is_language_model
from studio.paths import cache_dir
from studio.search.spec import SearchSpec
from ui.jobs import Job, JobRunner
from ui.model_panel import NumberItem
from ui.plugin_checks import plugin_reasons
from ui.search_child import SearchChild, search_args
from ui.search_form import SearchForm
from ui.search_logic import (
    axis_labels,
    default_folder,
    read_summary,
    started,
    table_entries,
)
from ui.search_plot import SearchPlot
from ui.tables import results_table

if TYPE_CHECKING:
    from studio.session import Session

COLUMNS = ["#", "State", "Fidelity", "p50 ms", "Speed-up", "Size MB", "Variant", "Error"]
POLL_MS = 1000
RESIZE_UP_TO = 40  # sizing the columns reads every cell (~0.1 ms a row): done while the table is short
STATE_COLORS = {"at the target": "#34c759", "on the front": "#ffd60a", "below the target": "#ff9f0a",
                "pruned": "#8e8e93", "failed": "#ff453a"}


class SearchPanel(QWidget):
    """``make_variant(recipe_path, title)``: build this trial's recipe as a variant of the open model.
    ``job_started(job)``: a search began (the window pauses its live preview until ``job.finished``: the search
    times its variants on this machine's cores)."""

    make_variant = Signal(str, str)
    job_started = Signal(object)

    def __init__(self, registry: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = JobRunner(self)  # the search (current) and its polls and plugin checks (side jobs)
        self.session: Session | None = None
        self.child: SearchChild | None = None
        self.summary: dict[str, Any] | None = None
        self.shown_spec: SearchSpec | None = None
        self.signature: Any = None
        self.entries: list[tuple[Any, ...]] = []  # the table's rows as last drawn
        self.polling = False
        self.reasons: dict[str, list[str]] | None = None
        self.pending_check: Any = None  # the model whose plugins are to be checked when the tab is shown
        layout = QVBoxLayout(self)
        self.target_label = QLabel("No model loaded.")
        self.target_label.setWordWrap(True)
        layout.addWidget(self.target_label)
        self.form = SearchForm(registry)
        layout.addWidget(self.form)
        layout.addLayout(self._build_folder_row())
        layout.addLayout(self._build_buttons())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._build_results(layout)
        self.timer = QTimer(self, interval=POLL_MS, timeout=self.poll)
        self._enable(False, "Open a model first.")

    # -- construction --------------------------------------------------------------------------------
    def _build_folder_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Results in"))
        self.folder_edit = QLineEdit()
        self.folder_edit.setToolTip("the search's folder: search.toml (the spec), study.db, trials/NNNN/. A folder "
                                    "that holds a search resumes it")
        self.folder_edit.editingFinished.connect(lambda: self.set_folder(Path(self.folder_edit.text())))
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        new = QPushButton("New folder")
        new.setToolTip("a new, empty folder in the studio's cache: Start searches anew")
        new.clicked.connect(self.new_folder)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(choose)
        row.addWidget(new)
        self.folder_buttons = (choose, new)
        return row

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.start_button = QPushButton("Start search")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the search: trials in flight are cancelled, finished ones kept; Start "
                                    "with the same folder resumes it")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.variant_button = QPushButton("Make variant")
        self.variant_button.setToolTip("Build the selected trial's recipe as a variant (Variants tab), measured "
                                       "and judged as every variant is")
        self.variant_button.setEnabled(False)
        self.variant_button.clicked.connect(self._make_variant)
        for button in (self.start_button, self.stop_button, self.variant_button):
            row.addWidget(button)
        row.addStretch(1)
        return row

    def _build_results(self, layout: QVBoxLayout) -> None:
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.plot = SearchPlot()
        self.plot.sigPointClicked.connect(self.select_trial)
        self.table = results_table(COLUMNS)
        self.table.itemSelectionChanged.connect(self._on_selection)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.table)
        layout.addWidget(splitter, 1)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: #8e8e93")
        layout.addWidget(self.caption)

    # -- the model and the folder --------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        """The window's session: the search covers its source model, on its frames. A search still running
        goes on (its folder names its model); a new model gets a new folder."""
        if session is self.session:
            return
        self.session = session
        self.pending_check = None
        handle = None if session is None else session.baseline
        if handle is None or is_language_model(handle) or handle.image_input is None:
            self.target_label.setText("No model loaded." if handle is None else
                                      "Search covers image models: compress a language model from the Optimize tab.")
            self._enable(False, self.target_label.text())
            return
        self.target_label.setText(f"Searches <b>{handle.display_name}</b> (the session's source model) for the "
                                  "fastest variants that keep the target, trial by trial in a child process.")
        if not self.jobs.busy:
            self.new_folder()
        self.reasons, self.pending_check = None, handle
        self._enable(True, "")
        if self.isVisible():
            self._check_plugins()

    def showEvent(self, event) -> None:
        # The checks trace the model (channel pruning): run when the tab is looked at, not at every model opened
        self._check_plugins()
        super().showEvent(event)

    def _check_plugins(self) -> None:
        """Each stage's plugin checked against the model off the GUI thread (once per model): one that refuses
        it is disabled, with its reason."""
        handle, self.pending_check = self.pending_check, None
        if handle is None:
            return
        plugins = list(self.form.plugins.values())

        def check_all(ctx) -> dict[str, list[str]]:
            return plugin_reasons(plugins, handle, ctx)

        def checked(found: dict[str, list[str]]) -> None:
            if self.session is not None and self.session.baseline is handle:  # else: an answer for an old model
                self.reasons = found
                self._enable(True, "")

        self.jobs.side("check search plugins", check_all, done=checked)

    def new_folder(self) -> None:
        if self.session is not None:
            self.set_folder(default_folder(self.session.baseline))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A search's folder (or a new, empty one)",
                                                str(cache_dir() / "search"))
        if path:
            self.set_folder(Path(path))

    def set_folder(self, folder: Path) -> None:
        """Results go to ``folder``; one that holds a search shows it, and Start resumes it with its own spec."""
        if self.jobs.busy:
            return
        self.folder = folder.expanduser()
        self.folder_edit.setText(str(self.folder))
        self.summary, self.signature = None, None
        self._show(None)
        self.shown_spec = None
        if started(self.folder):
            from studio.search.spec import load_spec

            try:
                self.shown_spec = load_spec(self.folder / "search.toml")
            except Exception as exc:  # a broken spec file is said, not raised
                self._say(f"This folder's search.toml cannot be read: {exc}", error=True)
            else:
                self.form.show_spec(self.shown_spec)
                self._say("This folder holds a search: Start resumes it with its own spec (search.toml); "
                          "New folder searches anew.")
                self.poll()
        else:
            self._say("")
        self._enable(self.session is not None, "")

    def _enable(self, enabled: bool, reason: str) -> None:
        running = self.jobs.busy
        fixed = self.shown_spec is not None  # a folder's spec: shown, not edited
        self.form.setEnabled(enabled and not running)
        self.form.set_state(fixed=fixed, reasons=self.reasons, checking=self.reasons is None and enabled)
        self.start_button.setEnabled(enabled and not running)
        self.start_button.setText("Resume search" if fixed else "Start search")
        self.start_button.setToolTip(reason)
        self.stop_button.setEnabled(running)
        self.folder_edit.setEnabled(not running)
        for button in self.folder_buttons:
            button.setEnabled(enabled and not running)
        self._on_selection()

    # -- the search ----------------------------------------------------------------------------------
    def start(self) -> Job | None:
        """Run (or resume) the search in a child process; refused while one runs."""
        from studio.search.spec import save_spec

        session = self.session
        if self.jobs.busy:
            self._say("A search is running: stop it first (one search at a time).", error=True)
            return None
        if session is None or not self.start_button.isEnabled():
            return None
        folder = self.folder
        if self.shown_spec is None:  # a new search: the form's spec, written into an empty folder
            spec = self.form.spec()
            if not spec.stages:
                self._say("Check at least one stage.", error=True)
                return None
            if spec.trials is None and spec.minutes is None:
                self._say("Give a budget: a number of trials, minutes, or both.", error=True)
                return None
            stray = [p.name for p in folder.iterdir() if not p.name.startswith(".")
                     and p.name != "search.toml"] if folder.is_dir() else []
            if stray:
                self._say(f"{folder} holds other files: choose an empty folder (New folder), or a search's.",
                          error=True)
                return None
            folder.mkdir(parents=True, exist_ok=True)
            save_spec(spec, folder / "search.toml")
        else:
            spec = self.shown_spec
        self.shown_spec = spec
        args = search_args(session.spec, folder / "search.toml", folder, workers=self.form.workers.value(),
                           cluster=self.form.cluster.text().strip() or None, frames=session.frames, trust=session.trust)
        self.child = SearchChild(args)
        self.model_spec = session.spec
        job = self.jobs.start("search", self.child.run, done=self._done, error=self._failed,
                              cancelled=lambda: self._say("Search cancelled; its folder resumes it."),
                              finished=self._ended)
        self._enable(True, "")
        self._say(f"Searching… results in {folder}")
        self.timer.start()
        self.job_started.emit(job)
        return job

    def stop(self) -> None:
        """Interrupt the search: the child cancels its trials in flight and keeps the finished ones."""
        job = self.jobs.current
        if job is not None and job.running and not job.ctx.stop_requested:
            job.request_stop()
            self.stop_button.setEnabled(False)
            self._say("Stopping: the trials in flight are cancelled, the finished ones kept…")

    def poll(self) -> None:
        """Read the folder's rows off the GUI thread (one read at a time); draw them when they changed."""
        folder = getattr(self, "folder", None)
        if self.polling or folder is None or not (folder / "search.toml").exists():
            return
        self.polling = True

        def read(_ctx) -> tuple[Path, dict[str, Any] | None, str | None]:
            return (folder, *read_summary(folder))

        self.jobs.side("read search rows", read, done=self._read, error=lambda _m: setattr(self, "polling", False))

    def _read(self, result: tuple[Path, dict[str, Any] | None, str | None]) -> None:
        self.polling = False
        folder, summary, _error = result
        if summary is None or folder != self.folder:
            return  # a busy database (read again in a second), or a folder no longer shown
        self.summary = summary
        rows = summary["trials"]
        signature = (tuple((r["number"], r["state"], r.get("on_front"), r.get("speedup")) for r in rows),
                     summary["baseline"].get("latency_p50_ms"))
        if signature != self.signature:
            self.signature = signature
            self._show(summary)
        if self.jobs.busy and self.child is not None:
            counts = summary["counts"]
            line = self.child.last_line()
            self._say(f"Searching… {counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed"
                      f"{f' — {line}' if line else ''}. Results in {folder}")

    def _show(self, summary: dict[str, Any] | None) -> None:
        """The plot, the table and the caption from a summary (None: empty)."""
        spec = self.shown_spec
        self.plot.show_summary(summary, axis_labels(spec, summary) if spec is not None else None)
        selected = self.selected_number()
        entries = table_entries(summary)
        self.table.setRowCount(len(entries))
        for index, entry in enumerate(entries):  # only the rows that changed: a poll adds one trial at a time
            if index >= len(self.entries) or self.entries[index] != entry:
                self._fill(index, *entry)
        if len(entries) != len(self.entries) and len(entries) <= RESIZE_UP_TO:
            self.table.resizeColumnsToContents()
        self.entries = entries
        self.select_trial(selected)
        method = (summary or {}).get("method") or {}
        notes = (summary or {}).get("notes") or []
        self.caption.setText(" ".join(f"{name.capitalize()}: {text}." for name, text in method.items())
                             + "".join(f" Note: {n}." for n in notes))

    def _fill(self, index: int, number: int, state: str, fidelity: float | None, p50: float | None,
              speedup: float | None, size: float | None, summary: str, error: str | None, judged: str) -> None:
        def number_item(value: float | None, text: str) -> NumberItem:
            return NumberItem(value or 0, "–" if value is None else text)

        first = NumberItem(number, "model" if number < 0 else str(number))
        first.setData(Qt.ItemDataRole.UserRole + 1, number)
        status = QTableWidgetItem(state)
        status.setForeground(QBrush(QColor(STATE_COLORS.get(state, "#e5e5ea"))))
        cells = [first, status, number_item(fidelity, f"{fidelity or 0:.3f}"), number_item(p50, f"{p50 or 0:.1f}"),
                 number_item(speedup, f"{speedup or 0:.2f}×"), number_item(size, f"{size or 0:.2f}"),
                 QTableWidgetItem(summary), QTableWidgetItem(error or "")]
        cells[2].setToolTip(judged)
        cells[-1].setToolTip(error or "")
        for column, cell in enumerate(cells):
            self.table.setItem(index, column, cell)

    # -- selection and variants ------------------------------------------------------------------------
    def selected_number(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return int(self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole + 1))

    def select_trial(self, number: int | None) -> None:
        if number is None:
            self.table.clearSelection()
            return
        for index in range(self.table.rowCount()):
            if int(self.table.item(index, 0).data(Qt.ItemDataRole.UserRole + 1)) == number:
                self.table.selectRow(index)
                return

    def selected_row(self) -> dict[str, Any] | None:
        number = self.selected_number()
        return next((r for r in (self.summary or {}).get("trials", []) if r["number"] == number), None)

    def _on_selection(self) -> None:
        row = self.selected_row()
        self.plot.select(self.selected_number())
        same_model = self.session is not None and (self.summary or {}).get("model") == self.session.spec
        usable = row is not None and row["state"] in ("complete", "pruned") and row["recipe"].get("steps")
        self.variant_button.setEnabled(bool(usable) and same_model)
        self.variant_button.setToolTip(
            "Build the selected trial's recipe as a variant (Variants tab)" if same_model or row is None else
            f"this search is of {(self.summary or {}).get('model')}, not the open model")

    def recipe_path(self, number: int) -> Path:
        return self.folder / "trials" / f"{number:04d}" / "recipe.toml"

    def _make_variant(self) -> None:
        row = self.selected_row()
        if row is not None and self.recipe_path(row["number"]).exists():
            self.make_variant.emit(str(self.recipe_path(row["number"])), f"trial {row['number']}: {row['summary']}")

    # -- the end of a search --------------------------------------------------------------------------
    def _done(self, result: dict[str, Any]) -> None:
        if result.get("stopped"):
            self._say(f"Stopped. The finished trials are kept; Resume with this folder goes on ({self.folder}).")
        else:
            self._say(f"Done. Results in {self.folder}")

    def _failed(self, message: str) -> None:
        self._say(f"Search failed: {message}", error=True)

    def _ended(self) -> None:
        self.timer.stop()
        if not started(self.folder):  # refused before it began (a cluster that did not answer): the form is free
            self.shown_spec = None
        self._enable(self.session is not None, "")
        self.polling = False
        self.poll()  # the last rows, and the summary the search wrote

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #ff453a" if error else "")
        self.status.setText(text)

