"""Files the user trusted to run code when loaded, remembered by content hash (never by name).

A pickle-based checkpoint that needs classes outside the allow-list (studio.safe_pickle) can run any
code while it loads. The user may vouch for one file (CLI ``--trust``, the GUI's question); the
decision is stored as the SHA-256 of its bytes, so a renamed copy stays trusted and a file changed
under the same name does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from studio.atomic import write_text_atomic
from studio.hashing import sha256_file


def config_dir() -> Path:
    """``$DEPLOY_STUDIO_CONFIG``, else ``$XDG_CONFIG_HOME/deploy-studio`` (``~/.config/deploy-studio``)."""
    explicit = os.environ.get("DEPLOY_STUDIO_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "deploy-studio"


def _store() -> Path:
    return config_dir() / "trusted-files.json"


def _load() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: trust nothing (never fail open)
    entries = data.get("sha256") if isinstance(data, dict) else None
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


def is_trusted(path: Path) -> bool:
    return sha256_file(path) in _load()


def remember_trust(path: Path) -> str:
    """Record that the user trusts this file's bytes; returns their hash."""
    digest = sha256_file(path)
    entries = _load()
    entries[digest] = {"first_seen_as": str(Path(path).resolve())}  # for the user's information only
    write_text_atomic(_store(), json.dumps({"sha256": entries}, indent=1))
    return digest


def forget_trust(path: Path) -> bool:
    digest = sha256_file(path)
    entries = _load()
    if entries.pop(digest, None) is None:
        return False
    write_text_atomic(_store(), json.dumps({"sha256": entries}, indent=1))
    return True
