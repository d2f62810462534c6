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

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.evaluate.evidence import metric_label
from studio.lm.variants import is_language_model
from studio.paths import cache_dir
from studio.plugin_api import Kind, settings_schema
from studio.search.spec import RUNTIMES, SearchSpec, Stage
from ui.jobs import Job, JobRunner
from ui.model_panel import NumberItem
from ui.search_child import SearchChild, search_args
from ui.search_plot import SearchPlot

if TYPE_CHECKING:
    from studio.session import Session

# A stage per kind, in the order a recipe applies them: a trial picks one plugin of each stage, or none.
STAGE_KINDS = (Kind.INPUT, Kind.PRUNE, Kind.LOWRANK, Kind.QUANTIZE)
# Quantizers with nothing to tune are still a choice of the quantize stage (FP16 against INT8, or neither).
UNTUNED_CHOICES = ("quantize.fp16",)
DEFAULT_STAGES = ("input.size", "quantize.fp16")
OBJECTIVES = {"latency": ("latency",), "size": ("size",), "latency and size": ("latency", "size")}
COLUMNS = ["#", "State", "Fidelity", "p50 ms", "Speed-up", "Size MB", "Variant", "Error"]
POLL_MS = 1000
RESIZE_UP_TO = 40  # sizing the columns reads every cell (~0.1 ms a row): done while the table is short
STATE_COLORS = {"at the target": "#34c759", "on the front": "#ffd60a", "below the target": "#ff9f0a",
                "pruned": "#8e8e93", "failed": "#ff453a"}


def searchable(registry: Any) -> list[Any]:
    """The plugins a search can choose: those declaring searchable settings, and the untuned quantizers."""
    found = []
    for kind in STAGE_KINDS:
        for plugin in registry.by_kind(kind):
            ranges = [e for e in settings_schema(plugin.Settings) if e.get("search")]
            if ranges or plugin.id in UNTUNED_CHOICES:
                found.append(plugin)
    return found


def ranges_text(plugin: Any) -> str:
    """'size 256–640 step 32': what the search tries of a plugin (its declared ranges)."""
    parts = []
    for entry in settings_schema(plugin.Settings):
        declared = entry.get("search")
        if not declared:
            continue
        if "choices" in declared:
            parts.append(f"{entry['name']} ∈ {{{', '.join(map(str, declared['choices']))}}}")
        else:
            step = f" step {declared['step']}" if declared.get("step") else ""
            parts.append(f"{entry['name']} {declared['low']}–{declared['high']}{step}")
    return "; ".join(parts) or "nothing to tune: applied or not"


def stages_for(plugins: list[Any]) -> tuple[Stage, ...]:
    """One optional stage per kind, in ``STAGE_KINDS`` order, with the chosen plugins of that kind."""
    return tuple(Stage(tuple(p.id for p in plugins if p.kind == kind), optional=True)
                 for kind in STAGE_KINDS if any(p.kind == kind for p in plugins))


def quick_frames(frames: int) -> int:
    """The quick judgement's frames: the spec's default 6, fewer for a small judging set (half of it)."""
    return max(1, min(SearchSpec.quick_frames, frames // 2))


def default_folder(handle: Any) -> Path:
    """A new folder for a search of ``handle``: the studio's cache, per model, per start time."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", handle.name)[:40]
    return cache_dir() / "search" / f"{slug}-{handle.provenance.sha256[:10]}" / time.strftime("%Y%m%d-%H%M%S")


def started(folder: Path) -> bool:
    """Whether a search has run in ``folder`` (then it resumes with the folder's own spec)."""
    return (folder / "study.db").exists() or (folder / "model.json").exists()


def state_text(row: dict[str, Any]) -> str:
    if row["state"] == "complete":
        return "on the front" if row.get("on_front") else "at the target" if row.get("feasible") else "below the target"
    return row["state"]


def axis_labels(spec: SearchSpec, summary: dict[str, Any] | None) -> tuple[str, str]:
    """How each axis was measured, from the spec the trials ran with (the caption holds the summary's method)."""
    metric = next((r["metric"] for r in (summary or {}).get("trials", []) if r.get("metric")), None)
    return (f"pipeline p50 latency, ms ({spec.runtime}, {spec.threads} thread(s), {spec.runs} timed frames)",
            f"fidelity{f' ({metric_label(metric)})' if metric else ''} against the model, {spec.fidelity_frames} "
            "judging frames")


def table_entries(summary: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    """The table's rows as plain tuples (compared between polls): the model itself first, then each trial."""
    base = (summary or {}).get("baseline") or {}
    entries: list[tuple[Any, ...]] = []
    if base.get("latency_p50_ms"):
        entries.append((-1, "the model itself", None, base["latency_p50_ms"], 1.0, base.get("size_mb"),
                        "the model itself", None, "the reference every fidelity is judged against"))
    for row in (summary or {}).get("trials", []):
        judged = ""
        if row.get("fidelity") is not None:
            judged = (f"{metric_label(row['metric']) if row.get('metric') else 'fidelity'} on "
                      f"{row.get('fidelity_frames')} frames" + (" (the quick judgement: pruned)"
                                                              if row["state"] == "pruned" else ""))
        entries.append((row["number"], state_text(row), row.get("fidelity"), row.get("latency_p50_ms"),
                        row.get("speedup"), row.get("size_mb"), row["summary"], row.get("error"), judged))
    return entries


def read_summary(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``read_rows`` for the poll, never raising: a busy SQLite file (the child is writing) is a skipped poll."""
    from studio.search.driver import read_rows

    try:
        return read_rows(folder), None
    except Exception as exc:  # the next poll a second later reads it again
        return None, f"{type(exc).__name__}: {exc}"


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
        self.controls = QWidget()
        controls = QVBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self._build_form())
        controls.addWidget(self._build_stages(registry))
        layout.addWidget(self.controls)
        layout.addLayout(self._build_folder_row())
        layout.addLayout(self._build_buttons())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._build_results(layout)
        self.timer = QTimer(self, interval=POLL_MS, timeout=self.poll)
        self._enable(False, "Open a model first.")

    # -- construction --------------------------------------------------------------------------------
    def _build_form(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.target = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.01, value=0.95)
        self.target.setToolTip("a trial reaches the target when its fidelity against the model (its task's metric, "
                               "on the judging frames) is at least this")
        self.objective = QComboBox()
        self.objective.addItems(list(OBJECTIVES))
        self.objective.setToolTip("what the search minimises among the trials at the target (both: a front)")
        self.trials = QSpinBox(minimum=0, maximum=100_000, value=20, specialValueText="no limit")
        self.minutes = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=100_000.0, value=0.0,
                                      specialValueText="no limit", suffix=" min")
        budget = QHBoxLayout()
        budget.addWidget(QLabel("trials"))
        budget.addWidget(self.trials)
        budget.addWidget(QLabel("and/or"))
        budget.addWidget(self.minutes)
        self.workers = QSpinBox(minimum=1, maximum=256, value=min(2, os.cpu_count() or 1))
        self.workers.setToolTip("trials built at once on this machine (every latency is timed alone: one "
                                "measurement slot per machine)")
        self.cluster = QLineEdit()
        self.cluster.setPlaceholderText("none: Ray on this machine (or ray://host:10001, host:6379)")
        self.runtime = QComboBox()
        self.runtime.addItems(list(RUNTIMES))
        self.runs = QSpinBox(minimum=3, maximum=10_000, value=SearchSpec.runs)
        self.runs.setToolTip("timed frames per trial, after 5 warm-up")
        self.frames = QSpinBox(minimum=2, maximum=100_000, value=SearchSpec.fidelity_frames)
        self.frames.setToolTip("frames each trial is judged on; a trial far below the target on the first few "
                               "(half, at most 6) is pruned before the full judgement and is never timed")
        form.addRow("Target fidelity", self.target)
        form.addRow("Minimise", self.objective)
        form.addRow("Budget", budget)
        form.addRow("Latency on", self.runtime)
        form.addRow("Timed frames", self.runs)
        form.addRow("Judging frames", self.frames)
        form.addRow("Workers", self.workers)
        form.addRow("Cluster", self.cluster)
        return box

    def _build_stages(self, registry: Any) -> QGroupBox:
        box = QGroupBox("Stages (each trial picks one plugin per kind, or none)")
        grid = QGridLayout(box)
        self.plugins = {p.id: p for p in searchable(registry)}
        self.stage_boxes: dict[str, QCheckBox] = {}
        self.stage_notes: dict[str, QLabel] = {}
        for row, plugin in enumerate(self.plugins.values()):
            check = QCheckBox(f"{plugin.id} — {plugin.title}")
            check.setObjectName(f"stage_{plugin.id}")
            check.setChecked(plugin.id in DEFAULT_STAGES)
            note = QLabel(ranges_text(plugin))
            note.setWordWrap(True)
            note.setStyleSheet("color: #8e8e93")
            grid.addWidget(check, row, 0)
            grid.addWidget(note, row, 1)
            self.stage_boxes[plugin.id], self.stage_notes[plugin.id] = check, note
        return box

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
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
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
        from studio.torch_lock import TORCH_MODULE_LOCK

        handle, self.pending_check = self.pending_check, None
        if handle is None:
            return
        plugins = list(self.plugins.values())

        def check_all(ctx) -> dict[str, list[str]]:
            found = {}
            for plugin in plugins:
                ctx.check_cancelled()
                try:
                    with TORCH_MODULE_LOCK:  # checks trace the model (torch-pruning): one thread at a time
                        found[plugin.id] = list(plugin.check(handle))
                except Exception as exc:  # a broken check disables its plugin, not the panel
                    found[plugin.id] = [f"check failed: {type(exc).__name__}: {exc}"]
            return found

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
                self._show_spec(self.shown_spec)
                self._say("This folder holds a search: Start resumes it with its own spec (search.toml); "
                          "New folder searches anew.")
                self.poll()
        else:
            self._say("")
        self._enable(self.session is not None, "")

    def _show_spec(self, spec: SearchSpec) -> None:
        """The form shows a folder's spec (fixed: resuming needs the same spec)."""
        self.target.setValue(spec.target)
        names = {v: k for k, v in OBJECTIVES.items()}
        self.objective.setCurrentText(names.get(tuple(spec.objectives), "latency"))
        self.trials.setValue(spec.trials or 0)
        self.minutes.setValue(spec.minutes or 0.0)
        self.runtime.setCurrentText(spec.runtime)
        self.runs.setValue(spec.runs)
        self.frames.setValue(spec.fidelity_frames)
        chosen = {p for stage in spec.stages for p in stage.plugins}
        for plugin_id, box in self.stage_boxes.items():
            box.setChecked(plugin_id in chosen)

    def _enable(self, enabled: bool, reason: str) -> None:
        running = self.jobs.busy
        fixed = self.shown_spec is not None  # a folder's spec: shown, not edited
        self.controls.setEnabled(enabled and not running)
        for widget in (self.target, self.objective, self.trials, self.minutes, self.runtime, self.runs, self.frames):
            widget.setEnabled(not fixed)
        for plugin_id, box in self.stage_boxes.items():
            refused = (self.reasons or {}).get(plugin_id)
            box.setEnabled(not fixed and self.reasons is not None and not refused)
            if refused:
                box.setChecked(False)
            note = ranges_text(self.plugins[plugin_id])
            if self.reasons is None and enabled:
                note = "checking whether it applies…"
            elif refused:
                note = "cannot run on this model: " + "; ".join(refused)
            self.stage_notes[plugin_id].setText(note)
            box.setToolTip(note)
        self.start_button.setEnabled(enabled and not running)
        self.start_button.setText("Resume search" if fixed else "Start search")
        self.start_button.setToolTip(reason)
        self.stop_button.setEnabled(running)
        self.folder_edit.setEnabled(not running)
        for button in self.folder_buttons:
            button.setEnabled(enabled and not running)
        self._on_selection()

    # -- the search ----------------------------------------------------------------------------------
    def spec_from_form(self) -> SearchSpec:
        chosen = [p for pid, p in self.plugins.items() if self.stage_boxes[pid].isChecked()
                  and self.stage_boxes[pid].isEnabled()]
        return SearchSpec(stages=stages_for(chosen), target=round(self.target.value(), 3),
                          objectives=OBJECTIVES[self.objective.currentText()], runtime=self.runtime.currentText(),
                          runs=self.runs.value(), trials=self.trials.value() or None,
                          minutes=self.minutes.value() or None, fidelity_frames=self.frames.value(),
                          quick_frames=quick_frames(self.frames.value()))

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
            spec = self.spec_from_form()
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
        args = search_args(session.spec, folder / "search.toml", folder, workers=self.workers.value(),
                           cluster=self.cluster.text().strip() or None, frames=session.frames, trust=session.trust)
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

