"""Where the studio keeps derived files (exported ONNX graphs, settings). Never beside a source model."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The studio's cache folder: ``$DEPLOY_STUDIO_CACHE``, else ``$XDG_CACHE_HOME/deploy-studio``."""
    explicit = os.environ.get("DEPLOY_STUDIO_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = base / "deploy-studio"
    path.mkdir(parents=True, exist_ok=True)
    return path
