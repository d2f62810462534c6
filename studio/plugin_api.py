"""The plugin contract. Plugins (quantize, prune, low-rank, early exit, export) know only this module.

A plugin is a class with ``id``, ``title``, ``kind``, ``Settings`` (a dataclass whose fields are made
with ``option``), ``settings_version``, ``check(model) -> reasons`` and
``apply(model, settings, ctx) -> ModelHandle``. The GUI builds its panel from ``settings_schema``,
and recipes and the CLI read settings through ``settings_from_dict`` — the same fields everywhere.

What a plugin can do for an export is declared here too, so the engine asks for a capability and never
for a plugin id: an exporter (``kind`` EXPORT) has ``format``, ``suffix``, the rows it can write
(``exports``: ``Exports``) and ``export(model, settings, target, ctx) -> dict`` (the report's details;
one that is verified against the float model may also take a ``reference`` keyword: the engine passes
that model); a quantizer lists the precisions it makes (``provides``: ``Provides``).
``studio.capabilities`` reads them into one table.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from studio.errors import StudioError
from studio.model import ModelHandle, Task
from studio.tasks import TaskContext


class Kind(StrEnum):
    QUANTIZE = "quantize"
    PRUNE = "prune"
    LOWRANK = "lowrank"
    EARLY_EXIT = "early_exit"
    EXPORT = "export"
    INPUT = "input"  # the input size a model runs at


# The two kinds of model an export row or a quantizer is declared for (``studio.capabilities.model_kind``).
VISION = "vision"
LANGUAGE = "language"
FLOAT = "fp32"  # the precision of a model as loaded: made by no quantizer


@dataclass(frozen=True)
class Exports:
    """One row of an exporter's capability table: what it writes for one kind of model.

    ``native`` are the precisions the exporter makes itself from the float model (its Settings then has a
    ``precision`` field the engine sets); any other precision of ``precisions`` is made before the export
    by a quantizer that ``provides`` it.
    """

    models: str  # VISION or LANGUAGE
    precisions: tuple[str, ...]
    native: tuple[str, ...] = ()
    suffix: str | None = None  # the output's name ending for these models, when not the exporter's ``suffix``
    tasks: tuple[Task, ...] | None = None  # only these tasks of the kind (None: every one)


@dataclass(frozen=True)
class Provides:
    """A precision a quantizer makes, for which models, with which settings.

    ``preferred_for``: tasks for which this quantizer is chosen over one declared for every task (a
    specialist); a quantizer with ``preferred_for`` is still a fallback for the other tasks.
    """

    precision: str
    models: str  # VISION or LANGUAGE
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    preferred_for: tuple[Task, ...] = ()


class SettingsError(StudioError):
    """A setting is unknown, of the wrong type, or out of bounds."""


def option(default: Any, *, label: str, help: str = "", min: float | None = None,
           max: float | None = None, choices: tuple[Any, ...] | None = None, search: Any = None) -> Any:
    """A settings field with what a UI needs to show it and a validator needs to check it.

    ``search`` declares the field searchable by ``deploy-studio search`` (``studio.search.space``): for a
    number ``(low, high)`` or ``(low, high, step)`` inside min..max; for a choice or a bool ``True`` (every
    value) or a tuple of the values worth trying. Fields without it are never searched.
    """
    meta = {"label": label, "help": help, "min": min, "max": max, "choices": choices, "search": search}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@runtime_checkable
class Plugin(Protocol):
    id: ClassVar[str]
    title: ClassVar[str]
    kind: ClassVar[Kind]
    Settings: ClassVar[type]
    settings_version: ClassVar[int]

    def check(self, model: ModelHandle) -> list[str]: ...

    def apply(self, model: ModelHandle, settings: Any, ctx: TaskContext) -> ModelHandle: ...


def _type_name(annotation: Any) -> tuple[str, tuple[Any, ...] | None, bool]:
    """(kind, literal choices, optional) for a settings annotation."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", typing.get_args(annotation), optional
    if origin in (list, tuple):
        return "list", None, optional
    names = {bool: "bool", int: "int", float: "float", str: "str", Path: "path"}
    return names.get(annotation, "str"), None, optional


def auto_or_number(setting: Any, name: str, low: float, high: float, *, low_open: bool = False,
                   example: str = "0.5") -> float | None:
    """A setting that is "auto" (None: the plugin chooses) or a number in ``low..high`` (``(low, high]`` with
    ``low_open``); anything else is a one-line SettingsError naming the setting."""
    text = str(setting).strip().lower()
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}: {setting!r} is neither auto nor a number",
                            fix=f"write auto, or a number such as {example}") from None
    inside = (low < value if low_open else low <= value) and value <= high
    if not inside:
        bounds = f"({low}, {high}]" if low_open else f"{low}..{high}"
        raise SettingsError(f"{name}: {value} is outside {bounds}", fix=f"use auto or a value in {bounds}")
    return value


def _field_default(field: dataclasses.Field[Any]) -> Any:
    """A settings field's default value: every field has one (``option`` gives a default or a factory)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"settings field '{field.name}' has no default: declare it with option(...)")


def settings_schema(settings_cls: type) -> list[dict[str, Any]]:
    """One entry per field: name, type, default, label, help, min, max, choices, optional."""
    hints = typing.get_type_hints(settings_cls)
    schema = []
    for field in dataclasses.fields(settings_cls):
        kind, literal, optional = _type_name(hints[field.name])
        default = _field_default(field)
        meta = dict(field.metadata)
        schema.append({
            "name": field.name, "type": kind, "optional": optional,
            "default": str(default) if isinstance(default, Path) else default,
            "label": meta.get("label", field.name), "help": meta.get("help", ""),
            "min": meta.get("min"), "max": meta.get("max"),
            "choices": list(literal or meta.get("choices") or []) or None,
            "search": _search_range(field.name, kind, meta.get("search"), literal or meta.get("choices")),
        })
    return schema


def _search_range(name: str, kind: str, declared: Any, choices: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """A field's declared search range as data: {"low", "high", "step"} for numbers, {"choices"} otherwise."""
    if declared is None or declared is False:
        return None
    if kind in ("int", "float"):
        if not (isinstance(declared, tuple) and len(declared) in (2, 3)):
            raise TypeError(f"setting '{name}': search= takes (low, high) or (low, high, step) for a number")
        low, high, *step = declared
        return {"low": low, "high": high, "step": step[0] if step else None}
    if kind == "bool":
        values: tuple[Any, ...] = (False, True) if declared is True else tuple(declared)
    elif kind == "choice":
        values = tuple(choices or ()) if declared is True else tuple(declared)
    else:
        raise TypeError(f"setting '{name}': a {kind} setting cannot be searched")
    return {"choices": list(values)}


def _coerce(entry: dict[str, Any], value: Any, plugin_id: str) -> Any:
    name, kind = entry["name"], entry["type"]
    where = f"{plugin_id}: setting '{name}'"
    if value is None:
        if entry["optional"]:
            return None
        raise SettingsError(f"{where} cannot be empty", fix=f"give a {kind}")
    try:
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            coerced: Any = value
        elif kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            coerced = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise TypeError
            coerced = float(value)
        elif kind == "path":
            coerced = Path(str(value)).expanduser()
        elif kind == "list":
            if not isinstance(value, (list, tuple)):
                raise TypeError
            coerced = [str(v) for v in value]
        else:
            coerced = value if kind == "choice" else str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where} should be a {kind}, got {value!r}") from None
    if entry["choices"] and coerced not in entry["choices"]:
        raise SettingsError(f"{where} is {coerced!r}", fix=f"choose one of {', '.join(map(repr, entry['choices']))}")
    low, high = entry["min"], entry["max"]
    if kind in ("int", "float") and ((low is not None and coerced < low) or (high is not None and coerced > high)):
        raise SettingsError(f"{where} is {coerced}, outside {low}..{high}", fix=f"use a value from {low} to {high}")
    return coerced


def settings_from_dict(plugin: Any, data: dict[str, Any] | None, version: int | None = None) -> Any:
    """Validated settings for ``plugin`` from plain data (a recipe step, CLI options, a GUI panel).

    Data written for an older ``settings_version`` is passed through the plugin's ``migrate`` first.
    """
    data = dict(data or {})
    current = plugin.settings_version
    if version is not None and version != current:
        if version > current or not hasattr(plugin, "migrate"):
            raise SettingsError(f"{plugin.id}: settings version {version} is not readable by this version "
                                f"({current})", fix="update Deploy Studio, or re-save the recipe")
        data = plugin.migrate(data, version)
    schema = {entry["name"]: entry for entry in settings_schema(plugin.Settings)}
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise SettingsError(f"{plugin.id}: unknown setting(s) {', '.join(unknown)}",
                            fix=f"known settings: {', '.join(schema)}")
    values = {name: _coerce(schema[name], value, plugin.id) for name, value in data.items()}
    return plugin.Settings(**values)


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """Plain, TOML-ready data (paths as strings, None left out) for a settings object."""
    out = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None:
            continue
        out[field.name] = str(value) if isinstance(value, Path) else value
    return out
