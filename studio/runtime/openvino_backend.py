"""Placeholder: replaced by the real backend (issue 19)."""

from __future__ import annotations

from typing import Any

from studio.errors import UnsupportedError


class OpenVinoBackend:
    @classmethod
    def for_handle(cls, handle: Any, *, threads: int = 1, device: str | None = None) -> Any:
        raise UnsupportedError(f"the {cls.__name__} runtime is not built yet")
