"""Recipes: the ordered steps that made a variant, saved as a small TOML file and replayed exactly.

    format = "deploy-studio-recipe"
    version = 1

    [[steps]]
    plugin = "<an installed plugin's id>"   # ``deploy-studio plugins`` lists them
    settings_version = 1
    [steps.settings]
    samples = 32                            # fields of that plugin's Settings
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import BadInputError, StudioError
from studio.model import ModelHandle
from studio.plugin_api import settings_from_dict, settings_to_dict
from studio.tasks import TaskContext

FORMAT = "deploy-studio-recipe"
VERSION = 1


@dataclass(frozen=True)
class Step:
    plugin: str
    settings: dict[str, Any] = field(default_factory=dict)
    settings_version: int | None = None


@dataclass(frozen=True)
class Recipe:
    steps: tuple[Step, ...] = ()
    source: str | None = field(default=None, compare=False)  # the file it was read from, for messages

    def summary(self) -> str:
        return " → ".join(step.plugin for step in self.steps) or "baseline"

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION,
                "steps": [{"plugin": s.plugin, "settings_version": s.settings_version or 1, "settings": s.settings}
                          for s in self.steps]}


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """A Recipe from parsed TOML/JSON data; anything malformed is a one-line BadInputError."""
    fix = "see the recipe format in studio/recipe.py (or save one from the GUI)"
    if not isinstance(data, dict):
        raise BadInputError("a recipe is a table with a 'steps' list", path=source, fix=fix)
    if data.get("format", FORMAT) != FORMAT:
        raise BadInputError(f"format is {data.get('format')!r}, not {FORMAT!r}", path=source, fix=fix)
    if not isinstance(data.get("version", VERSION), int) or data.get("version", VERSION) > VERSION:
        raise BadInputError(f"recipe version {data.get('version')!r} is newer than this studio reads ({VERSION})",
                            path=source, fix="update Deploy Studio")
    raw_steps = data.get("steps", [])
    if not isinstance(raw_steps, list):
        raise BadInputError("'steps' must be a list of tables", path=source, fix=fix)
    steps = []
    for index, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("plugin"), str):
            raise BadInputError(f"step {index} needs a 'plugin' name", path=source, fix=fix)
        settings = raw.get("settings", {})
        version = raw.get("settings_version")
        if not isinstance(settings, dict) or (version is not None and not isinstance(version, int)):
            raise BadInputError(f"step {index}: 'settings' must be a table and 'settings_version' an integer",
                                path=source, fix=fix)
        steps.append(Step(raw["plugin"], dict(settings), version))
    return Recipe(tuple(steps), source)


def load_recipe(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError("no such recipe file", path=path, fix="check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"not valid TOML ({exc})", path=path, fix="check the recipe's syntax") from exc
    return parse_recipe(data, str(path))


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write atomically: a temporary file beside ``path``, then a rename."""
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        tomli_w.dump(recipe.as_dict(), handle)
    os.replace(tmp, path)


def validate_recipe(recipe: Recipe, registry: Any) -> list[tuple[Any, Any]]:
    """(plugin, settings) per step, every one checked before any work starts. An error names the
    recipe file (when it came from one) and the step."""
    planned = []
    for index, step in enumerate(recipe.steps, start=1):
        try:
            plugin = registry.get(step.plugin)
            planned.append((plugin, settings_from_dict(plugin, step.settings, step.settings_version)))
        except StudioError as exc:
            if exc.path is None and recipe.source:
                raise type(exc)(f"step {index}: {exc.what}", path=recipe.source, fix=exc.fix) from exc
            raise
    return planned


def resolved_recipe(recipe: Recipe, registry: Any) -> Recipe:
    """The same steps with every setting written out (defaults included) and the current versions,
    so that a replay does not depend on the defaults of a later release."""
    return Recipe(tuple(Step(plugin.id, settings_to_dict(settings), plugin.settings_version)
                        for plugin, settings in validate_recipe(recipe, registry)))


def apply_recipe(model: ModelHandle, recipe: Recipe, registry: Any, ctx: TaskContext) -> ModelHandle:
    """Run every step in order; each returns a new handle (the source model is never modified)."""
    planned = validate_recipe(recipe, registry)
    source = ctx.source_model or model  # a caller that built the input itself names the model it came from
    for index, (plugin, settings) in enumerate(planned):
        reasons = plugin.check(model)
        if reasons:
            raise BadInputError(f"step {index + 1} ({plugin.id}) cannot run on {model.name}: {'; '.join(reasons)}")
        step_ctx = ctx.sub(index / len(planned), (index + 1) / len(planned))
        step_ctx.source_model = source
        model = plugin.apply(model, settings, step_ctx)
        ctx.add_report({"step": index + 1, "plugin": plugin.id, "title": plugin.title,
                        "settings_version": plugin.settings_version, "settings": settings_to_dict(settings),
                        "details": step_ctx.reports})
    return model
