"""The export capability table, read from what the installed plugins declare.

Each exporter declares its rows (``studio.plugin_api.Exports``: the kind of model, the precisions, the
file name's ending) and each quantizer the precisions it makes (``Provides``). Everything that offers or
refuses an export — the engine, the CLI's choices and help, the export dialog — asks here, so the
format × precision matrix exists once, in the plugins, and a third-party exporter or quantizer shows up
everywhere as soon as its entry point is installed. No plugin id or format name is written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from studio.errors import UnsupportedError
from studio.model import ModelHandle, Task
from studio.plugin_api import FLOAT, LANGUAGE, VISION, Exports, Kind, Provides, settings_from_dict
from studio.recipe import Step

MODEL_KINDS = (VISION, LANGUAGE)


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    from studio.registry import default_registry

    return default_registry()


def model_kind(model: ModelHandle | None) -> str:
    """VISION or LANGUAGE (None: a vision model, as the export dialog assumes before a model is known)."""
    from studio.lm.variants import is_language_model

    return LANGUAGE if model is not None and is_language_model(model) else VISION


def exporters(registry: Any = None) -> list[Any]:
    """Every installed exporter, by format name (entry points come in no fixed order across packages)."""
    return sorted(_registry(registry).by_kind(Kind.EXPORT), key=lambda exporter: exporter.format)


def formats(registry: Any = None) -> list[str]:
    return [exporter.format for exporter in exporters(registry)]


def exporters_for(names: Iterable[str], registry: Any = None) -> list[Any]:
    """The exporter of each format in ``names``, or an UnsupportedError naming the installed formats."""
    available = {exporter.format: exporter for exporter in exporters(registry)}
    names = list(names)
    missing = [name for name in names if name not in available]
    if missing:
        raise UnsupportedError(f"no exporter for {', '.join(missing)}",
                               fix=f"available formats: {', '.join(sorted(available))}")
    return [available[name] for name in names]


def row(exporter: Any, kind: str, task: Task | None = None) -> Exports | None:
    """What ``exporter`` writes for ``kind`` models (of ``task``), or None when it takes none of them."""
    for entry in exporter.exports:
        if entry.models == kind and (task is None or entry.tasks is None or task in entry.tasks):
            return entry
    return None


def suffix(exporter: Any, kind: str) -> str:
    """The output's name ending (after the model's name) for ``kind`` models."""
    entry = row(exporter, kind)
    return entry.suffix if entry is not None and entry.suffix else exporter.suffix


def _bits(precision: str) -> int:
    digits = "".join(c for c in precision if c.isdigit())
    return int(digits) if digits else 0


def ordered(precisions: Iterable[str]) -> tuple[str, ...]:
    """Widest first (fp32, fp16, int8, int4), so every list of precisions reads the same way."""
    return tuple(sorted(set(precisions), key=lambda p: (-_bits(p), p)))


def precisions(kind: str | None = None, registry: Any = None) -> tuple[str, ...]:
    """Every precision some exporter writes (for ``kind`` models; None: for any)."""
    kinds = MODEL_KINDS if kind is None else (kind,)
    return ordered(p for exporter in exporters(registry) for entry in exporter.exports if entry.models in kinds
                   for p in entry.precisions)


def provided(kind: str, registry: Any = None) -> tuple[str, ...]:
    """Every precision some quantizer makes for ``kind`` models."""
    return ordered(o.precision for plugin in _registry(registry).by_kind(Kind.QUANTIZE)
                   for o in getattr(plugin, "provides", ()) if o.models == kind)


def _titles(found: list[Any]) -> str:
    return ", ".join(exporter.title for exporter in found)


def precision_refusal(kind: str | None, precision: str, registry: Any = None) -> UnsupportedError | None:
    """Why no export of a ``kind`` model at ``precision`` exists (None: some exporter writes it). ``kind``
    None asks about any kind of model: only a precision no exporter writes at all is refused."""
    if precision in precisions(kind, registry):
        return None
    if precision not in precisions(None, registry):
        return UnsupportedError(f"unknown precision '{precision}'",
                                fix=f"choose one of {', '.join(precisions(None, registry))}")
    others = [k for k in MODEL_KINDS if precision in precisions(k, registry)]
    return UnsupportedError(f"{precision.upper()} export is for {' and '.join(others)} models",
                            fix=f"export {kind} models at {', '.join(precisions(kind, registry))}")


def refusal(exporter: Any, kind: str, precision: str, task: Task | None = None,
            registry: Any = None) -> UnsupportedError | None:
    """Why ``exporter`` cannot write a ``kind`` model at ``precision`` (None: it can), decided from the table
    alone, before any work: the engine raises it, the export dialog shows it on the format's check box."""
    entry = row(exporter, kind, task)
    if entry is None:
        takers = [e for e in exporters(registry) if row(e, kind, task) is not None]
        return UnsupportedError(f"{exporter.title} export of {kind} models is not available",
                                fix=f"export {kind} models to {_titles(takers)}")
    if precision in entry.precisions:
        return None
    others = [e for e in exporters(registry) if precision in getattr(row(e, kind, task), "precisions", ())]
    if not others:
        return precision_refusal(kind, precision, registry) or UnsupportedError(
            f"no exporter writes {precision.upper()} {kind} models")
    offered = "/".join(entry.precisions)
    return UnsupportedError(f"{precision.upper()} {kind} models are exported to {_titles(others)} only; "
                            f"{exporter.title} takes them at {offered} only",
                            fix=f"choose {offered} for {exporter.title}, or {_titles(others)} for {precision}")


def quantizer_for(precision: str, model: ModelHandle, registry: Any = None) -> tuple[Any, Provides] | None:
    """The quantizer that makes ``precision`` for ``model`` and how (its declaration), or None.

    One declared ``preferred_for`` the model's task wins (e.g. the mixed INT8 search for detectors, whose
    plain INT8 head finds nothing); then one declared for every task; a specialist for other tasks last.
    Ties go to the first in the registry's order.
    """
    kind = model_kind(model)
    best: tuple[int, Any, Provides] | None = None
    for plugin in _registry(registry).by_kind(Kind.QUANTIZE):
        for offer in getattr(plugin, "provides", ()):
            if offer.precision != precision or offer.models != kind:
                continue
            score = 2 if model.task in offer.preferred_for else 0 if offer.preferred_for else 1
            if best is None or score > best[0]:
                best = (score, plugin, offer)
    return None if best is None else (best[1], best[2])


def precision_steps(model: ModelHandle, precision: str, registry: Any = None,
                    recipe: Iterable[Step] = ()) -> list[Step]:
    """The recipe step that makes ``precision`` for ``model``: none for the float model, for a model already at
    ``precision`` (an onnxruntime variant reloaded from its folder), or when a step of ``recipe`` makes it."""
    registry = _registry(registry)
    if precision == FLOAT or model.metadata.get("precision") == precision:
        return []
    if any(step_makes(step, precision, model_kind(model), registry) for step in recipe):
        return []
    found = quantizer_for(precision, model, registry)
    if found is None:
        raise UnsupportedError(f"no installed quantizer makes {precision.upper()} {model_kind(model)} models",
                               fix="install a plugin that provides it, or choose another precision")
    plugin, offer = found
    return [Step(plugin.id, dict(offer.settings), plugin.settings_version)]


def step_makes(step: Step, precision: str, kind: str, registry: Any) -> bool:
    """Whether ``step``'s plugin, with its settings (defaults filled in), provides ``precision``."""
    plugin = registry.plugins.get(step.plugin)
    offers = [o for o in getattr(plugin, "provides", ()) if o.precision == precision and o.models == kind]
    if not offers:
        return False
    settings = settings_from_dict(plugin, step.settings, step.settings_version)
    return any(all(getattr(settings, k, None) == v for k, v in o.settings.items()) for o in offers)


def providers(precision: str, kind: str, registry: Any = None) -> list[Any]:
    """Every quantizer that makes ``precision`` for ``kind`` models (for messages that name them)."""
    return [plugin for plugin in _registry(registry).by_kind(Kind.QUANTIZE)
            if any(o.precision == precision and o.models == kind for o in getattr(plugin, "provides", ()))]
