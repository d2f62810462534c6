"""Choosing variants for the language views: combo boxes filled from the session, A and B sides."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

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
