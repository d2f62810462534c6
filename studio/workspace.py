"""The workspace autosave: which model is open, its variants and the preview source, written atomically
after every change, so that a crash or ``kill -9`` of the app loses nothing.

Variants themselves are already published as folders (model, recipe, report); the workspace file only
lists them. A clean exit marks the file; a file left unmarked by a process that no longer runs means
the app did not close cleanly, and the next start restores it (and says so).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from studio.atomic import write_text_atomic
from studio.child_python import pid_alive
from studio.trust import config_dir

VERSION = 1


def workspace_path() -> Path:
    return config_dir() / "workspace.json"


def save_workspace(manifest: dict[str, Any], source: str | None) -> None:
    write_text_atomic(workspace_path(), json.dumps({
        "version": VERSION, "session": manifest, "source": source, "pid": os.getpid(),
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), "saved_epoch": time.time(), "clean_exit": False},
        indent=1))


def mark_clean_exit() -> None:
    data = _read()
    if data is not None and data.get("pid") == os.getpid():
        data["clean_exit"] = True
        write_text_atomic(workspace_path(), json.dumps(data, indent=1))


def _read() -> dict[str, Any] | None:
    try:
        data = json.loads(workspace_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def _alive(pid: Any) -> bool:
    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


def unclean_workspace() -> dict[str, Any] | None:
    """The workspace of an app that ended without closing (crash, kill -9), or None."""
    data = _read()
    if data is None or data.get("clean_exit") or data.get("pid") == os.getpid() or _alive(data.get("pid")):
        return None
    session = data.get("session")
    if not isinstance(session, dict) or not isinstance(session.get("spec"), str):
        return None
    variants = session.get("variants")
    if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("key"), str)
                                                 and isinstance(v.get("folder"), str) for v in variants):
        return None
    return data
