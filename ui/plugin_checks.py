"""Every plugin's ``check`` on one model, as a background job: what the Optimize and Search tabs grey out."""

from __future__ import annotations

from typing import Any

from studio.torch_lock import TORCH_MODULE_LOCK


def plugin_reasons(plugins: list[Any], handle: Any, ctx: Any) -> dict[str, list[str]]:
    """Plugin id → why it cannot run on ``handle`` (empty when it can)."""
    found = {}
    for plugin in plugins:
        ctx.check_cancelled()
        try:
            with TORCH_MODULE_LOCK:  # checks trace the model (torch-pruning): one thread at a time
                found[plugin.id] = list(plugin.check(handle))
        except Exception as exc:  # a broken check disables its plugin, not the panel
            found[plugin.id] = [f"check failed: {type(exc).__name__}: {exc}"]
    return found
