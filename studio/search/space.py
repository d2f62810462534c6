"""The search space: each stage's choice of plugin and each plugin's searchable settings, as Optuna parameters.

A plugin declares what is worth searching in its settings (``option(..., search=...)``); a spec may narrow a
range or name other settings, always inside the setting's own bounds. Parameter names are stable (``stage1``,
``prune.channels.ratio``), so a resumed study reads its earlier trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import BadInputError
from studio.model import ModelHandle
from studio.plugin_api import settings_from_dict, settings_schema
from studio.recipe import Recipe, Step
from studio.search.spec import FIX, SearchSpec

NONE = "none"  # a stage's choice when it applies no plugin


@dataclass(frozen=True)
class Dimension:
    param: str  # the Optuna parameter name
    plugin: str
    setting: str
    kind: str  # "int", "float" or "categorical"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.param} ∈ {{{', '.join(map(str, self.choices))}}}"
        step = f" step {self.step}" if self.step else ""
        return f"{self.param} ∈ [{self.low}, {self.high}]{step}"


@dataclass(frozen=True)
class StagePlan:
    param: str | None  # None when the stage has one plugin and is not optional: nothing to choose
    choices: tuple[str, ...]  # plugin ids, plus NONE when optional
    fixed: dict[str, dict[str, Any]]
    dimensions: dict[str, tuple[Dimension, ...]]  # plugin id → its searched settings
    versions: dict[str, int]  # plugin id → its settings_version (a trial's saved recipe replays as written)


def _dimension(plugin: Any, entry: dict[str, Any], written: Any, source: str) -> Dimension:
    """One searched setting: the spec's range (``written``) or the plugin's declared one, checked against bounds."""
    name, kind = entry["name"], entry["type"]
    where = f"{plugin.id}.{name}"
    declared = entry.get("search") or {}
    if kind in ("int", "float"):
        if written is None:
            if "low" not in declared:
                raise BadInputError(f"{where} declares no search range", path=source, fix="give one: [low, high]")
            low, high, step = declared["low"], declared["high"], declared["step"]
        elif isinstance(written, list) and len(written) in (2, 3) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in written):
            low, high, step = written[0], written[1], written[2] if len(written) == 3 else None
        else:
            raise BadInputError(f"search range of {where} is {written!r}", path=source,
                                fix="write [low, high] or [low, high, step]")
        bounds = (entry["min"], entry["max"])
        if low >= high or (bounds[0] is not None and low < bounds[0]) or (bounds[1] is not None and high > bounds[1]):
            raise BadInputError(f"search range of {where} [{low}, {high}] is empty or outside the setting's "
                                f"{bounds[0]}..{bounds[1]}", path=source, fix="narrow the range")
        if kind == "int":
            return Dimension(where, plugin.id, name, "int", int(low), int(high), int(step) if step else None)
        return Dimension(where, plugin.id, name, "float", float(low), float(high), float(step) if step else None)
    if kind not in ("bool", "choice"):
        raise BadInputError(f"{where} is a {kind} setting and cannot be searched", path=source, fix=FIX)
    values = declared.get("choices") if written is None else written
    allowed = [False, True] if kind == "bool" else entry["choices"]
    if not isinstance(values, list) or len(values) < 2 or any(v not in allowed for v in values):
        raise BadInputError(f"search values of {where} are {values!r}", path=source,
                            fix=f"a list of two or more of {allowed!r}")
    return Dimension(where, plugin.id, name, "categorical", choices=tuple(values))


def build_space(spec: SearchSpec, registry: Any, model: ModelHandle, source: str = "search spec") -> list[StagePlan]:
    """Every stage checked against the installed plugins and ``model`` before any trial runs."""
    plans = []
    for index, stage in enumerate(spec.stages, start=1):
        dimensions: dict[str, tuple[Dimension, ...]] = {}
        versions: dict[str, int] = {}
        for plugin_id in stage.plugins:
            plugin = registry.get(plugin_id)  # an unknown id is a one-line error naming the installed ones
            versions[plugin_id] = plugin.settings_version
            reasons = plugin.check(model)
            if reasons:
                raise BadInputError(f"stage {index}: {plugin_id} cannot run on {model.name}: {reasons[0]}",
                                    path=source, fix="remove it from the spec")
            schema = {entry["name"]: entry for entry in settings_schema(plugin.Settings)}
            written = stage.search.get(plugin_id)
            names = list(written) if written is not None else [n for n, e in schema.items() if e.get("search")]
            unknown = [n for n in names if n not in schema]
            if unknown:
                raise BadInputError(f"stage {index}: {plugin_id} has no setting {unknown[0]}", path=source,
                                    fix=f"its settings: {', '.join(schema)}")
            clash = sorted(set(names) & set(stage.settings.get(plugin_id, {})))
            if clash:
                raise BadInputError(f"stage {index}: {plugin_id}.{clash[0]} is both fixed and searched", path=source,
                                    fix="keep it in one of settings or search")
            dimensions[plugin_id] = tuple(_dimension(plugin, schema[n], (written or {}).get(n), source) for n in names)
            settings_from_dict(plugin, stage.settings.get(plugin_id, {}))  # fixed settings checked now
        choices = tuple(stage.plugins) + ((NONE,) if stage.optional else ())
        plans.append(StagePlan(f"stage{index}" if len(choices) > 1 else None, choices,
                               {k: dict(v) for k, v in stage.settings.items()}, dimensions, versions))
    if not any(plan.dimensions.get(p) or plan.param for plan in plans for p in plan.choices if p != NONE):
        raise BadInputError("the spec searches nothing: every stage is fixed and no setting is searched",
                            path=source, fix="make a stage optional, give it several plugins, or search a setting")
    return plans


def sample(trial: Any, plans: list[StagePlan]) -> Recipe:
    """The recipe of one Optuna trial (define-by-run: a plugin's settings are asked only when it is chosen)."""
    steps = []
    for plan in plans:
        chosen = plan.choices[0] if plan.param is None else trial.suggest_categorical(plan.param, list(plan.choices))
        if chosen == NONE:
            continue
        settings = dict(plan.fixed.get(chosen, {}))
        for dim in plan.dimensions.get(chosen, ()):
            if dim.kind == "int":
                settings[dim.setting] = trial.suggest_int(dim.param, int(dim.low or 0), int(dim.high or 0),
                                                          step=int(dim.step or 1))
            elif dim.kind == "float":
                settings[dim.setting] = trial.suggest_float(dim.param, float(dim.low or 0), float(dim.high or 0),
                                                            step=dim.step)
            else:
                settings[dim.setting] = trial.suggest_categorical(dim.param, list(dim.choices))
        steps.append(Step(chosen, settings, plan.versions[chosen]))
    return Recipe(tuple(steps))


def baseline_params(plans: list[StagePlan]) -> dict[str, Any] | None:
    """The parameters of "apply nothing", when every stage may be skipped (else None)."""
    if all(NONE in plan.choices for plan in plans):
        return {plan.param: NONE for plan in plans if plan.param}
    return None


def describe_space(plans: list[StagePlan]) -> list[str]:
    lines = []
    for plan in plans:
        if plan.param:
            lines.append(f"{plan.param} ∈ {{{', '.join(plan.choices)}}}")
        lines += [dim.describe() for dims in plan.dimensions.values() for dim in dims]
    return lines


def random_params(plans: list[StagePlan], rng: Any) -> dict[str, Any]:
    """Parameters drawn uniformly from the space (``rng``: a ``random.Random``), named as ``sample`` names them: what
    a search tries when its sampler keeps proposing trials it has already run."""
    params: dict[str, Any] = {}
    for plan in plans:
        chosen = plan.choices[0] if plan.param is None else rng.choice(plan.choices)
        if plan.param is not None:
            params[plan.param] = chosen
        for dim in plan.dimensions.get(chosen, ()) if chosen != NONE else ():
            if dim.kind == "categorical":
                params[dim.param] = rng.choice(dim.choices)
            elif dim.kind == "int":
                step = int(dim.step or 1)
                params[dim.param] = int(dim.low or 0) + step * rng.randrange((int(dim.high or 0) - int(dim.low or 0))
                                                                            // step + 1)
            elif dim.step:
                params[dim.param] = float(dim.low or 0) + dim.step * rng.randrange(
                    round((float(dim.high or 0) - float(dim.low or 0)) / dim.step) + 1)
            else:
                params[dim.param] = rng.uniform(float(dim.low or 0), float(dim.high or 0))
    return params
