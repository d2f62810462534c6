"""The question asked when a pickle-based model file needs code outside the allow-list to load.

Yes records the file's hash as trusted (studio.trust) and opens it; No leaves everything as it was.
The default button is No: a stray Enter never runs a stranger's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget


@dataclass(frozen=True)
class NeedsTrust:
    """What a load job returns instead of a session when the file asked for trust."""

    spec: str
    message: str


def ask_trust(parent: QWidget, request: NeedsTrust, on_trusted) -> QMessageBox:
    name = Path(request.spec).name
    box = QMessageBox(QMessageBox.Icon.Warning, "Trust this model file?",
                      f"{name} is a pickle that asks to run code outside the studio's allow-list while it "
                      "loads. Loading it can run any program with your permissions.\n\n"
                      "Trust it only if you know its author. The decision is remembered for these exact "
                      "bytes (a changed file asks again).", QMessageBox.StandardButton.No, parent)
    box.setObjectName("trust_question")
    box.setDetailedText(request.message)
    trust = box.addButton("Trust and open", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.No)

    def answered(button) -> None:
        if button is trust:
            from studio.trust import remember_trust

            remember_trust(Path(request.spec))
            on_trusted(request.spec)

    box.buttonClicked.connect(answered)
    box.open()
    return box
