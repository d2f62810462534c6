"""The window's side of the workspace autosave (studio.workspace): save after every change, restore
at start-up when the last session did not close cleanly, and say so."""

from __future__ import annotations

import contextlib
from typing import Any

from studio.session import Session
from studio.workspace import mark_clean_exit, save_workspace, unclean_workspace


def autosave(window: Any) -> None:
    """Write the workspace now; a failure to write is shown, never raised (the work itself is safe)."""
    if window.session is None:
        return
    try:
        save_workspace(window.session.manifest(), window.state.source)
    except OSError as exc:
        window.show_status(f"The workspace could not be saved ({exc.strerror}); your variants are still on disk.")


def closed_cleanly() -> None:
    with contextlib.suppress(OSError):  # unmarked, the next start restores the workspace: harmless
        mark_clean_exit()


def start(window: Any, model: str | None, demo: str) -> None:
    """A model given to the program opens; else the workspace of a session that did not close cleanly is
    restored; else the demo model opens."""
    crashed = None if model else unclean_workspace()
    if crashed is None:
        window.open_model(model or demo)
        return
    manifest, source = crashed["session"], crashed.get("source")
    if isinstance(source, str) and source:
        window.state.set_source(source)
    missing: list[str] = []

    def load(ctx) -> Session:
        since = crashed.get("saved_epoch")
        session, gone = Session.restore(manifest, ctx.sub(0.0, 0.8),
                                        published_since=since if isinstance(since, (int, float)) else None)
        missing.extend(gone)
        return session

    def restored(session: Session) -> None:
        count = len(session.variants) - 1
        text = (f"Restored the workspace of a session that did not close cleanly (saved {crashed.get('saved_at')}): "
                f"{session.baseline.display_name} with {count} variant(s).")
        if missing:
            text += f" {len(missing)} variant folder(s) were gone: {', '.join(missing)}."
        window.show_status(text)

    window.open_session(manifest["spec"], "restoring the last workspace", load, then=restored,
                        failure_title="Cannot restore the workspace of the last session")
