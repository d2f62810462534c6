"""Recipes and plugin settings: parsing, validation, migration and the TOML round trip."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Literal

import pytest

from studio.errors import BadInputError, StudioError
from studio.plugin_api import (
    Kind,
    SettingsError,
    auto_or_number,
    option,
    settings_from_dict,
    settings_schema,
    settings_to_dict,
)
from studio.recipe import Recipe, Step, load_recipe, parse_recipe, resolved_recipe, save_recipe, validate_recipe
from studio.registry import GROUP, contract_problems, default_registry, load_registry


@dataclass
class DemoSettings:
    samples: int = option(32, label="Samples", min=1, max=512)
    ratio: float = option(0.5, label="Ratio", min=0.0, max=1.0, help="share kept")
    mode: Literal["fast", "exact"] = option("fast", label="Mode")
    enabled: bool = option(True, label="On")
    out: Path | None = option(None, label="Output")
    names: list[str] = option([], label="Names")


class Demo:
    id = "demo.plugin"
    title = "Demo"
    kind = Kind.QUANTIZE
    Settings = DemoSettings
    settings_version = 2

    @staticmethod
    def migrate(data: dict, version: int) -> dict:
        return {"mode": "exact", **data}  # version 1 always ran exactly

    def check(self, model):
        return []

    def apply(self, model, settings, ctx):
        return model


class NoMigration:
    id = "demo.frozen"
    Settings = DemoSettings
    settings_version = 2


class Exporter(Demo):
    id = "demo.export"
    kind = Kind.EXPORT


class BrokenSettings(Demo):
    id = "demo.broken"

    @dataclass
    class Settings:
        count: int = option("not a number", label="Count", min=1)

        def __post_init__(self):
            raise ValueError("cannot build")


# -- recipes -------------------------------------------------------------------------------------------------------


def test_a_recipe_without_format_or_version_reads_as_the_current_one():
    recipe = parse_recipe({"steps": [{"plugin": "quantize.fp16"}, {"plugin": "prune.channels",
                                                                   "settings": {"ratio": 0.2}, "settings_version": 3}]})
    assert recipe.steps == (Step("quantize.fp16", {}, None), Step("prune.channels", {"ratio": 0.2}, 3))
    assert recipe.summary() == "quantize.fp16 → prune.channels"
    assert Recipe().summary() == "baseline"
    assert recipe.as_dict()["steps"][0] == {"plugin": "quantize.fp16", "settings_version": 1, "settings": {}}


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "a recipe is a table"),
    ({"format": "other"}, "format is 'other'"),
    ({"version": 2}, "newer than this studio reads"),
    ({"version": "1"}, "recipe version '1'"),
    ({"steps": {"plugin": "x"}}, "'steps' must be a list"),
    ({"steps": [{"plugin": "a"}, {"settings": {}}]}, "step 2 needs a 'plugin' name"),
    ({"steps": [{"plugin": 3}]}, "step 1 needs a 'plugin' name"),
    ({"steps": [{"plugin": "a", "settings": [1]}]}, "step 1: 'settings' must be a table"),
    ({"steps": [{"plugin": "a", "settings_version": "2"}]}, "'settings_version' an integer"),
])
def test_malformed_recipes_are_one_line_errors_naming_the_source(data, message):
    with pytest.raises(BadInputError, match=message) as info:
        parse_recipe(data, source="mine.toml")
    assert str(info.value).startswith("mine.toml: ") and "\n" not in str(info.value)


def test_save_and_load_round_trip(tmp_path):
    recipe = Recipe((Step("quantize.static_int8", {"samples": 16, "exclude": ["/model.22/*"], "ratio": 0.25}, 1),
                     Step("quantize.fp16", {}, 1)))
    path = tmp_path / "deep" / "r.toml"
    save_recipe(recipe, path)
    loaded = load_recipe(path)
    assert loaded == recipe and loaded.source == str(path)  # the source is not part of equality
    assert 'format = "deploy-studio-recipe"' in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["r.toml"]  # nothing temporary left beside it


def test_unreadable_recipe_files(tmp_path):
    with pytest.raises(BadInputError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00steps")
    with pytest.raises(BadInputError, match="not valid TOML"):
        load_recipe(binary)


def test_validation_names_the_recipe_file_and_the_step(tmp_path):
    path = tmp_path / "r.toml"
    save_recipe(Recipe((Step("quantize.fp16", {}, 1), Step("prune.channels", {"ratio": 5.0}, 4))), path)
    with pytest.raises(StudioError) as info:
        validate_recipe(load_recipe(path), default_registry())
    assert str(info.value).startswith(f"{path}: step 2: prune.channels: setting 'ratio' is 5.0, outside 0.05..0.9")


def test_a_resolved_recipe_writes_every_default_and_the_current_versions():
    resolved = resolved_recipe(Recipe((Step("quantize.fp16"), Step("prune.channels", {"ratio": 0.5}, 1))),
                               default_registry())
    fp16, prune = resolved.steps
    assert fp16 == Step("quantize.fp16", {"keep_in_float": []}, 1)
    assert prune.settings_version == 4 and prune.settings["ratio"] == 0.5
    # a version-1 channel-pruning recipe keeps pruning by L1 without compensation (the plugin's migration)
    assert (prune.settings["criterion"], prune.settings["compensate"]) == ("l1", False)
    again = resolved_recipe(resolved, default_registry())
    assert again == resolved  # resolving is idempotent: a replay reads back what was saved


# -- settings ------------------------------------------------------------------------------------------------------


def test_the_schema_is_read_from_the_settings_dataclass():
    schema = {entry["name"]: entry for entry in settings_schema(DemoSettings)}
    assert [e["type"] for e in schema.values()] == ["int", "float", "choice", "bool", "path", "list"]
    assert schema["mode"]["choices"] == ["fast", "exact"] and schema["samples"]["choices"] is None
    assert (schema["samples"]["min"], schema["samples"]["max"]) == (1, 512)
    assert schema["out"]["optional"] and not schema["ratio"]["optional"]
    assert schema["ratio"]["help"] == "share kept" and schema["names"]["default"] == []


def test_values_are_coerced_to_their_fields():
    settings = settings_from_dict(Demo(), {"samples": 64.0, "ratio": 1, "out": "~/x", "names": [1, "b"]})
    assert settings.samples == 64 and isinstance(settings.samples, int)
    assert settings.ratio == 1.0 and isinstance(settings.ratio, float)
    assert settings.out == Path.home() / "x" and settings.names == ["1", "b"]
    assert settings_from_dict(Demo(), None) == DemoSettings()


@pytest.mark.parametrize(("data", "message"), [
    ({"samples": 2.5}, "setting 'samples' should be a int, got 2.5"),
    ({"samples": True}, "should be a int"),
    ({"enabled": "yes"}, "should be a bool"),
    ({"ratio": False}, "should be a float"),
    ({"ratio": "half"}, "should be a float"),
    ({"names": "a,b"}, "should be a list"),
    ({"samples": 0}, "is 0, outside 1..512"),
    ({"ratio": 1.5}, "outside 0.0..1.0"),
    ({"mode": "slow"}, "is 'slow' — choose one of 'fast', 'exact'"),
    ({"samples": None}, "cannot be empty"),
    ({"sample": 3, "zeta": 1}, "unknown setting\\(s\\) sample, zeta — known settings: samples, ratio"),
])
def test_bad_values_are_refused_naming_plugin_and_setting(data, message):
    with pytest.raises(SettingsError, match=message) as info:
        settings_from_dict(Demo(), data)
    assert str(info.value).startswith("demo.plugin")


def test_mutable_defaults_are_not_shared():
    first, second = DemoSettings(), DemoSettings()
    first.names.append("x")
    assert second.names == []


def test_older_settings_are_migrated_and_newer_ones_refused():
    assert settings_from_dict(Demo(), {}, version=1).mode == "exact"
    assert settings_from_dict(Demo(), {"mode": "fast"}, version=1).mode == "fast"
    assert settings_from_dict(Demo(), {}, version=2).mode == "fast"
    with pytest.raises(SettingsError, match="settings version 3 is not readable by this version \\(2\\)"):
        settings_from_dict(Demo(), {}, version=3)
    with pytest.raises(SettingsError, match="settings version 1"):
        settings_from_dict(NoMigration(), {}, version=1)


def test_settings_to_dict_is_plain_data_that_reads_back():
    settings = settings_from_dict(Demo(), {"out": "/tmp/o", "names": ["a"]})
    data = settings_to_dict(settings)
    assert data["out"] == "/tmp/o" and data["names"] == ["a"]
    assert "out" not in settings_to_dict(DemoSettings())  # None is left out (TOML has no null)
    assert settings_from_dict(Demo(), data) == settings


@pytest.mark.parametrize(("text", "expected"), [("auto", None), (" AUTO ", None), ("0.5", 0.5), (0, 0.0), ("1", 1.0)])
def test_auto_or_number_accepts(text, expected):
    assert auto_or_number(text, "threshold", 0.0, 1.0) == expected


@pytest.mark.parametrize(("text", "low_open", "message"), [
    ("abc", False, "threshold: 'abc' is neither auto nor a number — write auto, or a number such as 0.5"),
    ("1.5", False, "threshold: 1.5 is outside 0.0..1.0 — use auto or a value in 0.0..1.0"),
    ("0", True, r"threshold: 0.0 is outside \(0.0, 1.0\]"),
])
def test_auto_or_number_refuses_in_one_line(text, low_open, message):
    with pytest.raises(SettingsError, match=message):
        auto_or_number(text, "threshold", 0.0, 1.0, low_open=low_open)


# -- the plugin contract -------------------------------------------------------------------------------------------


def test_contract_problems_of_hand_written_classes():
    assert contract_problems(Demo) == []
    assert contract_problems(Demo()) == ["is a Demo, not a class"]
    assert contract_problems(Exporter) == [  # an exporter also declares its rows of the capability table
        "an exporter needs a method export()", "an exporter needs a class attribute format (str)",
        "an exporter needs a class attribute suffix (str)",
        "an exporter needs a class attribute exports (a tuple of studio.plugin_api.Exports)"]
    assert any("cannot be built with defaults (cannot build)" in p for p in contract_problems(BrokenSettings))

    class Empty:
        pass

    problems = contract_problems(Empty)
    assert "needs a class attribute id (str)" in problems and "needs a Settings dataclass" in problems
    assert "needs a method check()" in problems and "needs a method apply()" in problems


def test_the_registry_skips_broken_entry_points_with_a_reason():
    def point(name, value):
        return EntryPoint(name=name, value=value, group=GROUP)

    registry = load_registry([point("good", f"{__name__}:Demo"), point("twin", f"{__name__}:Demo"),
                              point("gone", "tests.unit.no_such_module:Plugin"),
                              point("exporter", f"{__name__}:Exporter")])
    assert list(registry.plugins) == ["demo.plugin"]
    problems = "\n".join(registry.problems)
    assert "plugin twin" in problems and "its id 'demo.plugin' is already taken" in problems
    assert "plugin gone" in problems and "failed to import: ModuleNotFoundError" in problems
    assert "plugin exporter" in problems and "export()" in problems
    with pytest.raises(StudioError, match=r"no plugin 'x\.y' is installed — installed plugins: demo\.plugin"):
        registry.get("x.y")
    assert registry.by_kind(Kind.QUANTIZE) == [registry.get("demo.plugin")] and registry.by_kind(Kind.PRUNE) == []


def test_mixed_int8_recipes_of_version_1_replay_against_their_own_input():
    from plugins.quantize.mixed_int8 import MixedInt8
    from studio.plugin_api import settings_from_dict

    assert MixedInt8.migrate({"target": 0.95}, 1) == {"target": 0.95, "reference": "input", "float_stem": False}
    assert MixedInt8.migrate({"target": 0.95}, 3) == {"target": 0.95}
    assert settings_from_dict(MixedInt8, {}, 1).reference == "input"
    assert settings_from_dict(MixedInt8, {}, 2).reference == "original"


def test_int8_recipes_written_before_the_float_stem_still_quantize_it():
    from plugins.quantize.mixed_int8 import MixedInt8
    from plugins.quantize.static_int8 import StaticInt8
    from studio.plugin_api import settings_from_dict

    for plugin, before in ((StaticInt8, 1), (MixedInt8, 2)):
        assert settings_from_dict(plugin, {}, before).float_stem is False
        assert settings_from_dict(plugin, {}, plugin.settings_version).float_stem is True


def test_per_layer_units_keep_each_weight_layer_alone_and_group_the_rest_by_block():
    from onnx import helper

    from plugins.quantize.sensitivity import quant_units

    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], name="/model.22/cv2/Conv"),
             helper.make_node("Conv", ["a", "w1"], ["b"], name="/model.22/dfl/conv/Conv"),
             helper.make_node("Sigmoid", ["b"], ["c"], name="/model.22/Sigmoid"),
             helper.make_node("Mul", ["c", "c"], ["d"], name="/model.22/Mul"),
             helper.make_node("Reshape", ["d", "s"], ["y"], name="/model.22/Reshape")]  # not a unit of its own
    graph = helper.make_graph(nodes, "g", [], [])
    assert quant_units(graph, "node") == {"/model.22/cv2/Conv": ["/model.22/cv2/Conv"],
                                          "/model.22/dfl/conv/Conv": ["/model.22/dfl/conv/Conv"],
                                          "/model.22 [other]": ["/model.22/Sigmoid", "/model.22/Mul"]}
    assert quant_units(graph, "block") == {
        "/model.22 [weights]": ["/model.22/cv2/Conv", "/model.22/dfl/conv/Conv"],
        "/model.22 [other]": ["/model.22/Sigmoid", "/model.22/Mul"]}
