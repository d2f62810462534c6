"""The search spec: which plugins, over which ranges, for which target and objective, within which budget.

    format = "deploy-studio-search"
    version = 1

    [target]
    fidelity = 0.95          # the variant's fidelity against the model (its task's metric) must reach this
    [objective]
    minimize = ["latency"]   # "latency" (pipeline p50), "size" (bytes of the graph), or both
    runtime = "ort"          # where latency is measured: ort, openvino, torch
    threads = 1
    runs = 20                # timed frames per variant, after 5 warm-up
    [budget]
    trials = 20              # and/or minutes = 30
    [judge]
    frames = 25              # judging frames for the fidelity of a trial
    quick_frames = 6         # a trial below (fidelity - quick_margin) on these is pruned before the full run
    quick_margin = 0.15
    [sampler]
    name = "tpe"             # tpe or nsga2 (both honour the fidelity constraint)
    seed = 0

    [[stages]]               # applied in this order; a trial picks one plugin of each stage, or none
    plugins = ["prune.channels"]
    optional = true
    [stages.settings."prune.channels"]   # fixed settings
    recovery = false
    [stages.search."prune.channels"]     # searched settings (default: what the plugin declares searchable)
    ratio = [0.1, 0.5]                   # [low, high] or [low, high, step] for numbers, choices otherwise

The spec is saved beside the results (search.toml); resuming needs the same spec.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.atomic import write_bytes_atomic
from studio.errors import BadInputError

FORMAT = "deploy-studio-search"
VERSION = 1
OBJECTIVES = ("latency", "size")
RUNTIMES = ("ort", "openvino", "torch")
SAMPLERS = ("tpe", "nsga2")
FIX = "see the search spec format in the README (Search) or studio/search/spec.py"


@dataclass(frozen=True)
class Stage:
    plugins: tuple[str, ...]
    optional: bool = True
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # plugin id → fixed settings
    search: dict[str, dict[str, Any]] = field(default_factory=dict)  # plugin id → setting → range (as written)


@dataclass(frozen=True)
class SearchSpec:
    stages: tuple[Stage, ...]
    target: float = 0.95
    objectives: tuple[str, ...] = ("latency",)
    runtime: str = "ort"
    threads: int = 1
    runs: int = 20
    trials: int | None = 20
    minutes: float | None = None
    fidelity_frames: int = 25
    quick_frames: int = 6
    quick_margin: float = 0.15
    sampler: str = "tpe"
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        budget: dict[str, Any] = {}
        if self.trials is not None:
            budget["trials"] = self.trials
        if self.minutes is not None:
            budget["minutes"] = self.minutes
        return {
            "format": FORMAT, "version": VERSION,
            "target": {"fidelity": self.target},
            "objective": {"minimize": list(self.objectives), "runtime": self.runtime, "threads": self.threads,
                          "runs": self.runs},
            "budget": budget,
            "judge": {"frames": self.fidelity_frames, "quick_frames": self.quick_frames,
                      "quick_margin": self.quick_margin},
            "sampler": {"name": self.sampler, "seed": self.seed},
            "stages": [{"plugins": list(s.plugins), "optional": s.optional,
                        **({"settings": s.settings} if s.settings else {}),
                        **({"search": s.search} if s.search else {})} for s in self.stages],
        }


def _table(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise BadInputError(f"[{name}] must be a table", path=source, fix=FIX)
    return value


def _number(table: dict[str, Any], key: str, default: Any, kind: type, low: float, high: float, where: str,
            source: str) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    integral = not isinstance(value, (int, float)) or not (kind is int and not float(value).is_integer())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not integral:
        raise BadInputError(f"{where}.{key} must be a number, got {value!r}", path=source, fix=FIX)
    if not low <= value <= high:
        raise BadInputError(f"{where}.{key} is {value}, outside {low}..{high}", path=source, fix=FIX)
    return kind(value)


def parse_spec(data: Any, source: str = "search spec") -> SearchSpec:
    """A SearchSpec from parsed TOML; anything malformed is a one-line BadInputError naming ``source``."""
    if not isinstance(data, dict):
        raise BadInputError("a search spec is a TOML table", path=source, fix=FIX)
    if data.get("format", FORMAT) != FORMAT:
        raise BadInputError(f"format is {data.get('format')!r}, not {FORMAT!r}", path=source, fix=FIX)
    if data.get("version", VERSION) != VERSION:
        raise BadInputError(f"search spec version {data.get('version')!r} is not {VERSION}", path=source,
                            fix="update Deploy Studio, or write a version 1 spec")
    known = {"format", "version", "target", "objective", "budget", "judge", "sampler", "stages"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(f"unknown table(s) {', '.join(unknown)}", path=source,
                            fix=f"known: {', '.join(sorted(known))}")
    target, objective = _table(data, "target", source), _table(data, "objective", source)
    budget, judge = _table(data, "budget", source), _table(data, "judge", source)
    sampler = _table(data, "sampler", source)
    minimize = objective.get("minimize", ["latency"])
    if isinstance(minimize, str):
        minimize = [minimize]
    if not minimize or not all(m in OBJECTIVES for m in minimize) or len(set(minimize)) != len(minimize):
        raise BadInputError(f"objective.minimize is {minimize!r}", path=source,
                            fix=f"a list of one or both of {', '.join(OBJECTIVES)}")
    runtime = objective.get("runtime", "ort")
    if runtime not in RUNTIMES:
        raise BadInputError(f"objective.runtime is {runtime!r}", path=source, fix=f"one of {', '.join(RUNTIMES)}")
    name = sampler.get("name", "tpe")
    if name not in SAMPLERS:
        raise BadInputError(f"sampler.name is {name!r}", path=source, fix=f"one of {', '.join(SAMPLERS)}")
    trials = _number(budget, "trials", None, int, 1, 100000, "budget", source)
    minutes = _number(budget, "minutes", None, float, 0.1, 100000, "budget", source)
    if trials is None and minutes is None:
        trials = 20
    spec = SearchSpec(
        stages=_stages(data.get("stages"), source),
        target=_number(target, "fidelity", 0.95, float, 0.0, 1.0, "target", source),
        objectives=tuple(minimize), runtime=runtime,
        threads=_number(objective, "threads", 1, int, 1, 256, "objective", source),
        runs=_number(objective, "runs", 20, int, 3, 10000, "objective", source),
        trials=trials, minutes=minutes,
        fidelity_frames=_number(judge, "frames", 25, int, 2, 100000, "judge", source),
        quick_frames=_number(judge, "quick_frames", 6, int, 1, 100000, "judge", source),
        quick_margin=_number(judge, "quick_margin", 0.15, float, 0.0, 1.0, "judge", source),
        sampler=name, seed=_number(sampler, "seed", 0, int, 0, 2**31 - 1, "sampler", source),
    )
    return spec


def _stages(raw: Any, source: str) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadInputError("the spec needs at least one [[stages]] table with a 'plugins' list", path=source, fix=FIX)
    stages: list[Stage] = []
    seen: set[str] = set()
    for index, item in enumerate(raw, start=1):
        where = f"stage {index}"
        plugins = item.get("plugins") if isinstance(item, dict) else None
        if isinstance(plugins, str):
            plugins = [plugins]
        if not isinstance(plugins, list) or not plugins or not all(isinstance(p, str) for p in plugins):
            raise BadInputError(f"{where} needs 'plugins', a list of plugin ids", path=source, fix=FIX)
        twice = seen & set(plugins)
        if twice or len(set(plugins)) != len(plugins):
            raise BadInputError(f"{where}: plugin {sorted(twice or plugins)[0]} appears twice in the spec", path=source,
                                fix="list each plugin in one stage only")
        seen |= set(plugins)
        optional = item.get("optional", True)
        settings, search = item.get("settings", {}), item.get("search", {})
        if not isinstance(optional, bool) or not isinstance(settings, dict) or not isinstance(search, dict):
            raise BadInputError(f"{where}: 'optional' is true/false, 'settings' and 'search' are tables", path=source,
                                fix=FIX)
        for table in (settings, search):
            stray = sorted(set(table) - set(plugins))
            if stray or not all(isinstance(v, dict) for v in table.values()):
                raise BadInputError(f"{where}: settings/search tables are keyed by the stage's plugin ids "
                                    f"({', '.join(stray) or 'not a table'})", path=source, fix=FIX)
        stages.append(Stage(tuple(plugins), optional, {k: dict(v) for k, v in settings.items()},
                            {k: dict(v) for k, v in search.items()}))
    return tuple(stages)


def load_spec(path: Path) -> SearchSpec:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError("no such search spec", path=path, fix="check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"not valid TOML ({exc})", path=path, fix="check the spec's syntax") from exc
    return parse_spec(data, str(path))


def save_spec(spec: SearchSpec, path: Path) -> None:
    """Atomically: a temporary file beside ``path``, then a rename."""
    import tomli_w

    write_bytes_atomic(path, tomli_w.dumps(spec.as_dict()).encode())
