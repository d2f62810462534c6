"""Plugin discovery: every entry point of group ``deploy_studio.plugins``, first-party or not.

Each plugin is checked against the contract when it loads; one that fails is skipped and the reason
kept in ``problems`` (the CLI lists them, the GUI shows them), so a broken plugin never stops the app.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from studio.errors import StudioError
from studio.plugin_api import LANGUAGE, VISION, Exports, Kind, Provides, settings_schema

GROUP = "deploy_studio.plugins"


def contract_problems(plugin_cls: Any) -> list[str]:
    """What ``plugin_cls`` lacks to be a plugin (empty when it complies)."""
    if not inspect.isclass(plugin_cls):
        return [f"is a {type(plugin_cls).__name__}, not a class"]
    problems = []
    for name, kind in (("id", str), ("title", str), ("settings_version", int)):
        if not isinstance(getattr(plugin_cls, name, None), kind):
            problems.append(f"needs a class attribute {name} ({kind.__name__})")
    if not isinstance(getattr(plugin_cls, "kind", None), Kind):
        problems.append("needs a class attribute kind (a studio.plugin_api.Kind)")
    settings = getattr(plugin_cls, "Settings", None)
    if not (inspect.isclass(settings) and dataclasses.is_dataclass(settings)):
        problems.append("needs a Settings dataclass")
    else:
        try:
            settings()
            settings_schema(settings)
        except Exception as exc:  # a plugin's own bug: report it, do not crash the registry
            problems.append(f"its Settings cannot be built with defaults ({exc})")
    for method in ("check", "apply"):
        if not callable(getattr(plugin_cls, method, None)):
            problems.append(f"needs a method {method}()")
    if getattr(plugin_cls, "kind", None) == Kind.EXPORT:
        problems += _exporter_problems(plugin_cls)
    provides = getattr(plugin_cls, "provides", ())
    if not (isinstance(provides, tuple) and all(isinstance(p, Provides) for p in provides)):
        problems.append("provides must be a tuple of studio.plugin_api.Provides")
    return problems


def _exporter_problems(plugin_cls: Any) -> list[str]:
    """An exporter's part of the capability table (``studio.capabilities``) must be readable."""
    problems = []
    if not callable(getattr(plugin_cls, "export", None)):
        problems.append("an exporter needs a method export()")
    for name in ("format", "suffix"):
        if not isinstance(getattr(plugin_cls, name, None), str):
            problems.append(f"an exporter needs a class attribute {name} (str)")
    rows = getattr(plugin_cls, "exports", None)
    if not (isinstance(rows, tuple) and rows and all(isinstance(r, Exports) for r in rows)):
        problems.append("an exporter needs a class attribute exports (a tuple of studio.plugin_api.Exports)")
    elif any(r.models not in (VISION, LANGUAGE) or not set(r.native) <= set(r.precisions) for r in rows):
        problems.append("each of its exports rows needs models VISION or LANGUAGE and native ⊆ precisions")
    elif any(r.native for r in rows) and "precision" not in {f.name for f in _fields(plugin_cls)}:
        problems.append("an exporter that makes precisions itself (native) needs a precision setting")
    return problems


def _fields(plugin_cls: Any) -> tuple[dataclasses.Field, ...]:
    settings = getattr(plugin_cls, "Settings", None)
    return dataclasses.fields(settings) if dataclasses.is_dataclass(settings) else ()


@dataclass
class Registry:
    plugins: dict[str, Any] = field(default_factory=dict)  # id -> plugin instance
    problems: list[str] = field(default_factory=list)  # one line per skipped entry point

    def get(self, plugin_id: str) -> Any:
        if plugin_id not in self.plugins:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise StudioError(f"no plugin '{plugin_id}' is installed", fix=f"installed plugins: {known}")
        return self.plugins[plugin_id]

    def by_kind(self, kind: Kind) -> list[Any]:
        return [p for p in self.plugins.values() if p.kind == kind]


def load_registry(points: Iterable[EntryPoint] | None = None) -> Registry:
    """Load and validate every plugin entry point (or the ``points`` given, for tests and tools)."""
    registry = Registry()
    for point in points if points is not None else entry_points(group=GROUP):
        try:
            plugin_cls = point.load()
        except Exception as exc:  # an import error inside a plugin must not take the app down
            registry.problems.append(f"plugin {point.name} ({point.value}) skipped: it failed to import: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        problems = contract_problems(plugin_cls)
        if not problems and plugin_cls.id in registry.plugins:
            problems = [f"its id '{plugin_cls.id}' is already taken"]
        if problems:
            registry.problems.append(f"plugin {point.name} ({point.value}) skipped: {'; '.join(problems)}")
            continue
        registry.plugins[plugin_cls.id] = plugin_cls()
    return registry


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_registry()
    return _DEFAULT
