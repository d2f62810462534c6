"""The Search tab's form: target, objective, budget, where and how it measures, workers, cluster, and the stages.

Each searchable plugin is a check box with the ranges the search tries beside it; a plugin the model refuses
(``check``) is disabled with its reason. A folder that holds a search shows its spec here, fixed: resuming needs
the same spec.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.search.spec import RUNTIMES, SearchSpec
from ui.search_logic import OBJECTIVES, quick_frames, ranges_text, searchable, stages_for

DEFAULT_STAGES = ("input.size", "quantize.fp16")


class SearchForm(QWidget):
    def __init__(self, registry: Any, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_form())
        layout.addWidget(self._build_stages(registry))

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

    def show_spec(self, spec: SearchSpec) -> None:
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

    def set_state(self, *, fixed: bool, reasons: dict[str, list[str]] | None, checking: bool) -> None:
        """``fixed``: a folder's spec is shown (not edited); ``reasons``: each plugin's refusals (None: not known yet,
        ``checking`` while they are being asked)."""
        for widget in (self.target, self.objective, self.trials, self.minutes, self.runtime, self.runs, self.frames):
            widget.setEnabled(not fixed)
        for plugin_id, box in self.stage_boxes.items():
            refused = (reasons or {}).get(plugin_id)
            box.setEnabled(not fixed and reasons is not None and not refused)
            if refused:
                box.setChecked(False)
            note = ranges_text(self.plugins[plugin_id])
            if checking:
                note = "checking whether it applies…"
            elif refused:
                note = "cannot run on this model: " + "; ".join(refused)
            self.stage_notes[plugin_id].setText(note)
            box.setToolTip(note)

    def spec(self) -> SearchSpec:
        """The spec the form says: one optional stage per kind with the checked (and enabled) plugins."""
        chosen = [p for pid, p in self.plugins.items() if self.stage_boxes[pid].isChecked()
                  and self.stage_boxes[pid].isEnabled()]
        return SearchSpec(stages=stages_for(chosen), target=round(self.target.value(), 3),
                          objectives=OBJECTIVES[self.objective.currentText()], runtime=self.runtime.currentText(),
                          runs=self.runs.value(), trials=self.trials.value() or None,
                          minutes=self.minutes.value() or None, fidelity_frames=self.frames.value(),
                          quick_frames=quick_frames(self.frames.value()))
