"""Errors a user can act on. Each renders as one line: the file, what is wrong, and the fix."""

from __future__ import annotations

from pathlib import Path


class StudioError(Exception):
    """A failure caused by the input or the environment, not by a bug in the studio.

    The CLI prints ``str(error)`` as a single line and exits with code 2; the GUI shows it in a dialog.
    """

    def __init__(self, what: str, *, path: str | Path | None = None, fix: str | None = None):
        self.what = what.rstrip(".")
        self.path = str(path) if path is not None else None
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.what}" if self.path else self.what
        if self.fix:
            text += f" — {self.fix.rstrip('.')}"
        return " ".join(text.split())  # always exactly one line


class BadInputError(StudioError):
    """The file exists but is not something the studio can read."""


class NeedsTrustError(StudioError):
    """A pickle-based file needs code outside the allow-list; loading it could run that code."""


class UnsupportedError(StudioError):
    """The request is valid but this model, runtime or source cannot do it."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message, cut at ``limit`` characters, or its type name when it has none.

    Library exceptions often carry pages of context (a converter's graph dump, a traceback of their own);
    one line is what a dialog or a CLI error can show.
    """
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return text or type(exc).__name__
