"""Choosing variants for the language views: combo boxes filled from the session, A and B sides."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel

from studio.session import Variant

SIDES = "AB"
THREADS = 2  # the language views' budget on the 2-core target; the same for every variant and both sides


def variant_label(variant: Variant) -> str:
    return "base model" if variant.key == "base" else f"{variant.key}: {variant.title}"


def fill_variant_combo(combo: QComboBox, variants: list[Variant], choose: str | None) -> None:
    """Refill ``combo`` with the session's variants (data = key), selecting ``choose`` (else the first)."""
    combo.blockSignals(True)
    combo.clear()
    for variant in variants:
        combo.addItem(variant_label(variant), variant.key)
    combo.setCurrentIndex(max(combo.findData(choose), 0) if choose is not None else 0)
    combo.blockSignals(False)


def newest_choice(combo: QComboBox, variants: list[Variant], newest_before: str | None) -> str:
    """B's key after a refresh: the newest variant when one was just added, else what B showed."""
    newest = variants[-1].key
    current = combo.currentData()
    if newest != newest_before or current not in {v.key for v in variants}:
        return newest
    return current


def refresh_pair(a_combo: QComboBox, b_combo: QComboBox, variants: list[Variant], newest_before: str | None) -> str:
    """Refill both sides from the session (A keeps its choice, B moves to a new variant); the newest key."""
    keep_a = a_combo.currentData()
    b = newest_choice(b_combo, variants, newest_before)
    fill_variant_combo(a_combo, variants, keep_a if keep_a is not None else "base")
    fill_variant_combo(b_combo, variants, b)
    return variants[-1].key


def choose_pair(a_combo: QComboBox, b_combo: QComboBox, ab_box: QCheckBox, a: str | None, b: str | None) -> None:
    """Select variants from outside (the Variants tab's "Preview as A / as B"); choosing B turns A/B on."""
    if a is not None:
        a_combo.setCurrentIndex(max(a_combo.findData(a), 0))
    if b is not None:
        b_combo.setCurrentIndex(max(b_combo.findData(b), 0))
        ab_box.setChecked(True)


def variant_row(ab_tooltip: str) -> tuple[QHBoxLayout, QComboBox, QComboBox, QCheckBox]:
    """The "A [variant] ☐A/B B [variant]" row both language views start with."""
    row = QHBoxLayout()
    a_combo, b_combo = QComboBox(), QComboBox()
    ab_box = QCheckBox("A/B")
    ab_box.setToolTip(ab_tooltip)
    for widget, stretch in ((QLabel("A"), 0), (a_combo, 1), (ab_box, 0), (QLabel("B"), 0), (b_combo, 1)):
        row.addWidget(widget, stretch)
    return row, a_combo, b_combo, ab_box
