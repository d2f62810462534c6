"""The Search tab's logic, Qt-free: which plugins a search offers, the spec the form makes, the table's rows.

``ui.search_panel`` draws them; kept apart so the panel stays about widgets.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from studio.evaluate.evidence import metric_label
from studio.paths import cache_dir
from studio.plugin_api import Kind, settings_schema
from studio.search.spec import SearchSpec, Stage

# A stage per kind, in the order a recipe applies them: a trial picks one plugin of each stage, or none.
STAGE_KINDS = (Kind.INPUT, Kind.PRUNE, Kind.LOWRANK, Kind.QUANTIZE)
# Quantizers with nothing to tune are still a choice of the quantize stage (FP16 against INT8, or neither).
UNTUNED_CHOICES = ("quantize.fp16",)
OBJECTIVES = {"latency": ("latency",), "size": ("size",), "latency and size": ("latency", "size")}


def searchable(registry: Any) -> list[Any]:
    """The plugins a search can choose: those declaring searchable settings, and the untuned quantizers."""
    found = []
    for kind in STAGE_KINDS:
        for plugin in registry.by_kind(kind):
            ranges = [e for e in settings_schema(plugin.Settings) if e.get("search")]
            if ranges or plugin.id in UNTUNED_CHOICES:
                found.append(plugin)
    return found


def ranges_text(plugin: Any) -> str:
    """'size 256–640 step 32': what the search tries of a plugin (its declared ranges)."""
    parts = []
    for entry in settings_schema(plugin.Settings):
        declared = entry.get("search")
        if not declared:
            continue
        if "choices" in declared:
            parts.append(f"{entry['name']} ∈ {{{', '.join(map(str, declared['choices']))}}}")
        else:
            step = f" step {declared['step']}" if declared.get("step") else ""
            parts.append(f"{entry['name']} {declared['low']}–{declared['high']}{step}")
    return "; ".join(parts) or "nothing to tune: applied or not"


def stages_for(plugins: list[Any]) -> tuple[Stage, ...]:
    """One optional stage per kind, in ``STAGE_KINDS`` order, with the chosen plugins of that kind."""
    return tuple(Stage(tuple(p.id for p in plugins if p.kind == kind), optional=True)
                 for kind in STAGE_KINDS if any(p.kind == kind for p in plugins))


def quick_frames(frames: int) -> int:
    """The quick judgement's frames: the spec's default 6, fewer for a small judging set (half of it)."""
    return max(1, min(SearchSpec.quick_frames, frames // 2))


def default_folder(handle: Any) -> Path:
    """A new folder for a search of ``handle``: the studio's cache, per model, per start time."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", handle.name)[:40]
    return cache_dir() / "search" / f"{slug}-{handle.provenance.sha256[:10]}" / time.strftime("%Y%m%d-%H%M%S")


def started(folder: Path) -> bool:
    """Whether a search has run in ``folder`` (then it resumes with the folder's own spec)."""
    return (folder / "study.db").exists() or (folder / "model.json").exists()


def state_text(row: dict[str, Any]) -> str:
    if row["state"] == "complete":
        return "on the front" if row.get("on_front") else "at the target" if row.get("feasible") else "below the target"
    return row["state"]


def axis_labels(spec: SearchSpec, summary: dict[str, Any] | None) -> tuple[str, str]:
    """How each axis was measured, from the spec the trials ran with (the caption holds the summary's method)."""
    metric = next((r["metric"] for r in (summary or {}).get("trials", []) if r.get("metric")), None)
    return (f"pipeline p50 latency, ms ({spec.runtime}, {spec.threads} thread(s), {spec.runs} timed frames)",
            f"fidelity{f' ({metric_label(metric)})' if metric else ''} against the model, {spec.fidelity_frames} "
            "judging frames")


def table_entries(summary: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    """The table's rows as plain tuples (compared between polls): the model itself first, then each trial."""
    base = (summary or {}).get("baseline") or {}
    entries: list[tuple[Any, ...]] = []
    if base.get("latency_p50_ms"):
        entries.append((-1, "the model itself", None, base["latency_p50_ms"], 1.0, base.get("size_mb"),
                        "the model itself", None, "the reference every fidelity is judged against"))
    for row in (summary or {}).get("trials", []):
        judged = ""
        if row.get("fidelity") is not None:
            metric = metric_label(row["metric"]) if row.get("metric") else "fidelity"
            if row["state"] == "pruned":
                judged = f"{metric} on {row.get('fidelity_frames')} choosing frames (the quick judgement: pruned)"
            else:
                judged = f"{metric} on {row.get('fidelity_frames')} judging frames"
                if row.get("choosing_fidelity") is not None and row["choosing_fidelity"] != row["fidelity"]:
                    judged += f"; chosen on frames held out of calibration: {row['choosing_fidelity']:.3f}"
        if row.get("same_graph_as") is not None:
            judged += f"; the same graph as trial {row['same_graph_as']}: its figures, not measured again"
        entries.append((row["number"], state_text(row), row.get("fidelity"), row.get("latency_p50_ms"),
                        row.get("speedup"), row.get("size_mb"), row["summary"], row.get("error"), judged))
    return entries


def read_summary(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``read_rows`` for the poll, never raising: a busy SQLite file (the child is writing) is a skipped poll."""
    from studio.search.driver import read_rows

    try:
        return read_rows(folder), None
    except Exception as exc:  # the next poll a second later reads it again
        return None, f"{type(exc).__name__}: {exc}"
