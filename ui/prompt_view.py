"""The language-model preview: a prompt, the text streamed as it is generated, and what it cost.

Generation runs in a ``Job`` on a worker thread. The worker writes the text so far into a ``Stream``
(a lock and a few fields) and the GUI reads it at ≤ 30 Hz, so a fast runtime never floods the event
loop with one signal per token. A/B runs A, then B, on the same prompt in the same job: the two never
share the cores, so their timings can be compared. Every number shown comes from a ``Generation``.

The charts (``PromptView.charts``) are a separate widget: the host places them (the main window puts
them in its "Live charts" dock, where the vision preview's charts go).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.lm.generate import Generation, GenerationSettings
from studio.session import Session
from ui.generation_charts import GenerationCharts, decoding_text
from ui.jobs import Job
from ui.language_view import LanguageView
from ui.variant_choice import SIDES, THREADS

POLL_MS = 33  # ≤ 30 Hz: the newest text is pulled from the stream, never one signal per token
FALLBACK_CONTEXT = 2048  # the longest request allowed when the model does not say its context length
DEFAULTS = GenerationSettings()


def runtime_name(method: str) -> str:
    """The runtime part of ``Generation.method`` (before its first ';', which starts the timing notes)."""
    return method.split(";")[0].strip()


def measured_caption(generation: Generation) -> str:
    tps = generation.decode_tokens_per_s
    parts = [f"TTFT {generation.ttft_ms:.1f} ms",
             f"{'–' if tps is None else f'{tps:.1f}'} tokens/s decode",
             f"{len(generation.new_tokens)} new tokens (prompt {generation.prompt_tokens})",
             runtime_name(generation.method)]
    if generation.layers_used is not None:
        parts.append(f"{generation.layers_used:.1f} layers per token")
    return " · ".join(parts)


class Stream:
    """What the worker has produced so far, per side; the GUI's timer reads a copy under the lock."""

    def __init__(self, sides: int):
        self._lock = threading.Lock()
        self.texts = [""] * sides
        self.states = ["waiting"] * sides
        self.results: list[Generation | None] = [None] * sides
        self.version = 0

    def update(self, side: int, *, text: str | None = None, state: str | None = None,
               result: Generation | None = None) -> None:
        with self._lock:
            if text is not None:
                self.texts[side] = text
            if state is not None:
                self.states[side] = state
            if result is not None:
                self.results[side] = result
            self.version += 1

    def snapshot(self) -> tuple[int, list[str], list[str], list[Generation | None]]:
        with self._lock:
            return self.version, list(self.texts), list(self.states), list(self.results)


@dataclass
class Run:
    """One click of Generate: its prompt number, the variants per side and the settings they share."""

    number: int
    keys: list[str]
    labels: list[str]
    settings: GenerationSettings
    stream: Stream
    shown: int = -1
    charted: set[int] = field(default_factory=set)


class OutputPane(QWidget):
    """One side's streamed text and, under it, what was measured."""

    def __init__(self, side: str, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(side)
        self.title.setStyleSheet("font-weight: bold")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setPlaceholderText("The generated text streams here.")
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.caption)

    def set_text(self, text: str) -> None:
        if text != self.text.toPlainText():
            self.text.setPlainText(text)
            bar = self.text.verticalScrollBar()
            bar.setValue(bar.maximum())


class PromptView(LanguageView):
    """Prompt box, Generate / Stop, settings, A/B of two variants and one output pane per side."""

    STOPPING = "Stopping the generation…"
    STOP_WHEN_HELD = True  # a token's time measured beside a latency measurement would skew both

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.charts = GenerationCharts()
        self._generators: dict[str, Any] = {}  # one loaded runtime per variant key, made in the worker
        self._run: Run | None = None
        self._runs = 0
        self.results: list[Generation] = []  # every finished generation of this session, in order
        self._build()
        self.poll_timer = QTimer(self, interval=POLL_MS, timeout=self._poll)
        self._sync_buttons()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        variants = self._variant_row(
            "Run the same prompt on a second variant, after the first (never at the same time)")
        for combo in (self.a_combo, self.b_combo):
            combo.currentIndexChanged.connect(lambda _index: self._update_titles())
        layout.addLayout(variants)
        self.prompt = QPlainTextEdit("Explain in two sentences why the sky is blue.")
        self.prompt.setPlaceholderText("Type a prompt (Ctrl+Enter generates)")
        self.prompt.setMaximumHeight(110)
        layout.addWidget(self.prompt)
        controls = QHBoxLayout()
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, FALLBACK_CONTEXT)
        self.max_tokens.setValue(DEFAULTS.max_new_tokens)
        self.decoding = QComboBox()
        self.decoding.addItem("greedy", False)
        self.decoding.addItem("sampling", True)
        self.decoding.currentIndexChanged.connect(self._on_decoding_changed)
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=2.0, singleStep=0.05)
        self.temperature.setValue(DEFAULTS.temperature)
        self.top_p = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=1.0, singleStep=0.05)
        self.top_p.setValue(DEFAULTS.top_p)
        self.generate_button = self.run_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        for label, widget in (("Max new tokens", self.max_tokens), ("Decoding", self.decoding),
                              ("Temperature", self.temperature), ("Top-p", self.top_p)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.generate_button)
        controls.addWidget(self.stop_button)
        layout.addLayout(controls)
        self.panes = [OutputPane(side) for side in SIDES]
        self.pane_splitter = QSplitter(Qt.Orientation.Horizontal)
        for pane in self.panes:
            self.pane_splitter.addWidget(pane)
        layout.addWidget(self.pane_splitter, 1)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.generate,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._on_decoding_changed()
        self._on_ab_toggled(False)

    # -- session and variants ---------------------------------------------------------------------
    def _reset(self, session: Session) -> None:
        self.poll_timer.stop()
        self._generators = {}  # a worker still holding the old dict keeps it; nothing is shared
        self._run, self._runs = None, 0
        self.results = []
        self.charts.clear()
        for pane in self.panes:
            pane.set_text("")
            pane.caption.setText("")
        stated = int(session.baseline.metadata.get("context_length") or 0)
        self.max_tokens.setMaximum(stated or FALLBACK_CONTEXT)
        self.max_tokens.setToolTip(f"the model's context is {stated} tokens, prompt included" if stated else
                                   f"the model does not state its context; capped at {FALLBACK_CONTEXT}")

    def _side_b(self) -> QWidget:
        return self.panes[1]

    def _update_titles(self) -> None:
        for side, combo in enumerate((self.a_combo, self.b_combo)):
            self.panes[side].title.setText(f"{SIDES[side]} · {combo.currentText()}")

    def _on_decoding_changed(self) -> None:
        sampling = bool(self.decoding.currentData())
        self.temperature.setEnabled(sampling)
        self.top_p.setEnabled(sampling)

    def generation_settings(self) -> GenerationSettings:
        return replace(DEFAULTS, max_new_tokens=self.max_tokens.value(), sample=bool(self.decoding.currentData()),
                       temperature=self.temperature.value(), top_p=self.top_p.value(), threads=THREADS)

    # -- generate / stop -------------------------------------------------------------------------
    def generate(self) -> Job | None:
        if self._refused("Open a language model first.", "Still generating: Stop it or wait.",
                         "Generation waits while {} measures latency."):
            return None
        prompt = self.prompt.toPlainText().strip()
        if not prompt:
            self.status.emit("Type a prompt first.")
            return None
        keys, labels = self._chosen()
        self._runs += 1
        run = Run(self._runs, keys, labels, self.generation_settings(), Stream(len(keys)))
        self._run = run
        self._update_titles()
        for side, pane in enumerate(self.panes):
            pane.set_text("")
            pane.caption.setText("waiting for A to finish" if side else "")
        session, generators, stream, settings = self.session, self._generators, run.stream, run.settings

        def work(ctx) -> None:
            from studio.lm.runners import text_generator  # torch / onnxruntime load here, off the GUI thread

            for side, key in enumerate(run.keys):
                ctx.check_cancelled()
                generator = generators.get(key)
                if generator is None:
                    stream.update(side, state="loading")
                    generator = generators[key] = text_generator(session.get(key).handle, threads=THREADS)
                stream.update(side, state="generating")

                def on_text(text: str, side: int = side) -> None:
                    stream.update(side, text=text)
                    ctx.check_cancelled()  # Stop: Cancelled raised here unwinds the runtime's decode loop

                # A copy per side: a runner may fill in fields (threads) of the settings it is given.
                result = generator.generate(prompt, replace(settings), on_text)
                stream.update(side, text=result.text, state="done", result=result)

        job = self.jobs.start(f"generating ({', '.join(run.keys)})", work,
                              error=lambda message: self._failed(run, message),
                              cancelled=lambda: self._stopped(run), finished=lambda: self._finished(run))
        self.poll_timer.start()
        self._sync_buttons()
        self.status.emit(f"Generating {settings.max_new_tokens} tokens at most, {decoding_text(settings)}…")
        return job

    def _sync_buttons(self) -> None:
        super()._sync_buttons()
        self.generate_button.setToolTip(f"Waits while {self._held} runs" if self._held else "Ctrl+Enter")
        self.stop_button.setEnabled(self.busy)

    def _poll(self) -> None:
        run = self._run
        if run is None:
            return
        version, texts, states, results = run.stream.snapshot()
        if version == run.shown:
            return
        run.shown = version
        for side in range(len(run.keys)):
            pane, result = self.panes[side], results[side]
            pane.set_text(texts[side])
            if result is not None and side not in run.charted:
                run.charted.add(side)
                self.results.append(result)
                pane.caption.setText(measured_caption(result))
                pane.caption.setToolTip(result.method)
                self.charts.add(run, side, result)
            elif result is None and states[side] == "loading":
                pane.caption.setText("loading the runtime (once per variant)…")
            elif result is None and states[side] == "generating":
                pane.caption.setText("generating…")

    def _failed(self, run: Run, message: str) -> None:
        if run is self._run:
            self._poll()
            for side in range(len(run.keys)):
                if side not in run.charted:
                    self.panes[side].caption.setText(f"failed: {message}")
            self.failed.emit("Generation failed", message)

    def _stopped(self, run: Run) -> None:
        if run is self._run:
            self._poll()
            _, texts, _, _ = run.stream.snapshot()
            for side in range(len(run.keys)):
                if side not in run.charted:
                    self.panes[side].caption.setText(
                        f"stopped after {len(texts[side])} characters; an unfinished run is not measured"
                        if texts[side] else "stopped before it started")
            self.status.emit("Generation stopped.")

    def _finished(self, run: Run) -> None:
        if run is self._run:  # the current generation ended (a replaced session's run is not shown)
            self.poll_timer.stop()
            self._poll()
            results = run.stream.snapshot()[3]
            if all(results):
                self.status.emit("Generated. " + " | ".join(
                    f"{SIDES[side]}: {measured_caption(result)}" for side, result in enumerate(results)))
        self._sync_buttons()
