"""The embedding-model preview: a few sentences, their cosine-similarity matrix, and the encode time.

Encoding runs in a ``Job`` (torch or onnxruntime load there, never on the GUI thread). With A/B the
two variants encode the same sentences one after the other, and the view shows both matrices and the
largest difference between them: how far a variant's embeddings moved from the base model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.session import Session
from ui.jobs import Job
from ui.language_view import LanguageView
from ui.variant_choice import SIDES, THREADS

# Two pairs that mean nearly the same thing in different words, and one sentence unlike the others:
# a working encoder scores each pair well above any cross pair.
DEFAULT_SENTENCES = (
    "A man is playing a guitar on stage.",
    "Someone performs a song on the guitar.",
    "Share prices fell sharply this morning.",
    "The stock market dropped at the opening bell.",
    "A cat is asleep on the windowsill.",
)
HEADER_CHARS = 20  # row headers stay narrow enough for two matrices side by side
LOW, HIGH = QColor("#2c2c2e"), QColor("#0a84ff")


def cell_color(value: float) -> QColor:
    """Dark for ≤ 0, full blue for 1: cosine similarity of normalised sentence embeddings."""
    t = float(np.clip(value, 0.0, 1.0))
    return QColor(*(round(a + (b - a) * t) for a, b in zip(LOW.getRgb()[:3], HIGH.getRgb()[:3], strict=True)))


@dataclass
class Embedding:
    key: str
    label: str
    matrix: np.ndarray  # (N, N) cosine similarities
    encode_ms: float
    dim: int
    runtime: str


class MatrixTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, 0, parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)

    def show_matrix(self, matrix: np.ndarray, sentences: list[str]) -> None:
        count = len(sentences)
        self.setRowCount(count)
        self.setColumnCount(count)
        self.setHorizontalHeaderLabels([str(i + 1) for i in range(count)])
        self.setVerticalHeaderLabels([f"{i + 1} · {s[:HEADER_CHARS]}{'…' if len(s) > HEADER_CHARS else ''}"
                                      for i, s in enumerate(sentences)])
        for row in range(count):
            self.verticalHeaderItem(row).setToolTip(sentences[row])
            for column in range(count):
                value = float(matrix[row, column])
                item = QTableWidgetItem(f"{value:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(cell_color(value))
                item.setForeground(QColor("white"))
                item.setToolTip(f"{sentences[row]}\n{sentences[column]}\ncosine {value:.4f}")
                self.setItem(row, column, item)
        self.resizeColumnsToContents()


class SimilarityView(LanguageView):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # What the window's "Live charts" dock shows while this view is up: there is no time series to draw.
        self.charts = QLabel("Sentence encoders have no live charts: each Embed measures its encode time, shown "
                             "under the similarity matrix.")
        self.charts.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._encoders: dict[str, Any] = {}  # one loaded encoder per variant key, made (and warmed) in the worker
        self.embeddings: list[Embedding] = []  # the last Embed's result per side
        layout = QVBoxLayout(self)
        row = self._variant_row("Encode the same sentences with a second variant, after the first")
        self.embed_button = self.run_button = QPushButton("Embed")
        self.embed_button.clicked.connect(self.embed)
        row.addWidget(self.embed_button)
        layout.addLayout(row)
        layout.addWidget(QLabel("Sentences, one per line:"))
        self.sentences = QPlainTextEdit("\n".join(DEFAULT_SENTENCES))
        self.sentences.setMaximumHeight(140)
        layout.addWidget(self.sentences)
        tables = QHBoxLayout()
        self.titles = [QLabel(side) for side in SIDES]
        self.tables = [MatrixTable(), MatrixTable()]
        self.columns = []
        for title, table in zip(self.titles, self.tables, strict=True):
            column = QWidget()
            inner = QVBoxLayout(column)
            inner.setContentsMargins(0, 0, 0, 0)
            title.setStyleSheet("font-weight: bold")
            inner.addWidget(title)
            inner.addWidget(table, 1)
            tables.addWidget(column, 1)
            self.columns.append(column)
        layout.addLayout(tables, 1)
        self.summary = QLabel("Press Embed to compare the sentences.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self._on_ab_toggled(False)
        self._sync_buttons()

    def _reset(self, session: Session) -> None:
        self._encoders, self.embeddings = {}, []
        for table in self.tables:
            table.setRowCount(0)
            table.setColumnCount(0)
        self.summary.setText("Press Embed to compare the sentences.")

    def _side_b(self) -> QWidget:
        return self.columns[1]

    # -- embed -----------------------------------------------------------------------------------
    def embed(self) -> Job | None:
        if self._refused("Open an embedding model first.", "Still embedding.",
                         "Embedding waits while {} measures latency."):
            return None
        sentences = [line.strip() for line in self.sentences.toPlainText().splitlines() if line.strip()]
        if len(sentences) < 2:
            self.status.emit("Give at least two sentences, one per line.")
            return None
        keys, labels = self._chosen()
        session, encoders = self.session, self._encoders

        def work(ctx) -> list[Embedding]:
            from studio.lm.embed import cosine_matrix
            from studio.lm.runners import text_encoder  # torch / onnxruntime load here, off the GUI thread

            out = []
            for key, label in zip(keys, labels, strict=True):
                ctx.check_cancelled()
                encoder = encoders.get(key)
                if encoder is None:
                    encoder = text_encoder(session.get(key).handle, threads=THREADS)
                    encoder.encode(sentences[:1])  # the first call pays one-off set-up: not part of the timing
                    encoders[key] = encoder
                start = time.perf_counter()
                vectors = encoder.encode(sentences)
                elapsed = (time.perf_counter() - start) * 1e3
                runtime = getattr(encoder, "runtime", None) or getattr(encoder, "precision", "?")
                out.append(Embedding(key, label, cosine_matrix(vectors), elapsed, int(vectors.shape[1]), runtime))
            return out

        job = self.jobs.start(f"embedding ({', '.join(keys)})", work, done=lambda result: self._show(result, sentences),
                              error=lambda message: self.failed.emit("Embedding failed", message),
                              finished=self._sync_buttons)
        self._sync_buttons()
        self.status.emit(f"Embedding {len(sentences)} sentences…")
        return job

    def _show(self, embeddings: list[Embedding], sentences: list[str]) -> None:
        self.embeddings = embeddings
        lines = []
        for side, item in enumerate(embeddings):
            self.tables[side].show_matrix(item.matrix, sentences)
            self.titles[side].setText(f"{SIDES[side]} · {item.label}")
            lines.append(f"<b>{SIDES[side]} · {item.label}</b>: {len(sentences)} sentences → {item.dim}-d vectors "
                         f"in {item.encode_ms:.1f} ms ({item.runtime}, {THREADS} threads, one call, perf_counter, "
                         "after a warm-up call)")
        if len(embeddings) == 2:
            gap = float(np.abs(embeddings[0].matrix - embeddings[1].matrix).max())
            lines.append(f"Largest |A − B| over all sentence pairs: {gap:.4f}")
        lines.append("<span style='color:#8e8e93'>Cell = cosine similarity of the two sentences' embeddings "
                     "(1 = same direction).</span>")
        self.summary.setText("<br>".join(lines))
        self.status.emit(f"Embedded {len(sentences)} sentences.")
