"""Every registered plugin honours the contract; a broken one is skipped with a message."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from studio.plugin_api import Kind, SettingsError, settings_from_dict, settings_schema, settings_to_dict
from studio.registry import GROUP, default_registry, load_registry

FIRST_PARTY = {"quantize.static_int8", "quantize.dynamic_int8", "quantize.fp16", "quantize.mixed_int8", "quantize.qat",
               "prune.channels", "prune.magnitude", "lowrank.svd", "early_exit.video_cascade",
               "early_exit.classifier", "export.onnx", "export.openvino",
               "export.tflite", "export.coreml"}


def test_first_party_plugins_load_from_entry_points():
    registry = default_registry()
    assert set(registry.plugins) >= FIRST_PARTY
    assert registry.problems == []


@pytest.mark.parametrize("plugin_id", sorted(FIRST_PARTY))
def test_plugin_defaults_and_schema(plugin_id, darknet_handle, effnet_handle, fall_handle):
    plugin = default_registry().get(plugin_id)
    assert isinstance(plugin.kind, Kind) and plugin.title
    schema = settings_schema(plugin.Settings)
    assert schema and all(entry["label"] for entry in schema)
    defaults = plugin.Settings()
    assert settings_from_dict(plugin, settings_to_dict(defaults), plugin.settings_version) == defaults
    # Each plugin can run on a model of the kind it is for (a float PyTorch detector suits most).
    suitable = {"early_exit.classifier": effnet_handle, "early_exit.video_cascade": fall_handle}
    assert plugin.check(suitable.get(plugin_id, darknet_handle)) == []
    assert all(isinstance(reason, str) and reason for reason in plugin.check(effnet_handle))


def _broken_points():
    return [
        EntryPoint("ghost", "plugins.does_not_exist:Nothing", GROUP),
        EntryPoint("not-a-plugin", "studio.errors:StudioError", GROUP),
        EntryPoint("good", "plugins.quantize.fp16:Fp16", GROUP),
        EntryPoint("duplicate", "plugins.quantize.fp16:Fp16", GROUP),
    ]


def test_broken_plugins_are_skipped_with_a_message():
    registry = load_registry(_broken_points())
    assert list(registry.plugins) == ["quantize.fp16"]
    assert len(registry.problems) == 3
    assert "failed to import" in registry.problems[0]
    assert "needs a class attribute id" in registry.problems[1]
    assert "already taken" in registry.problems[2]


def test_plugins_command_lists_kinds_and_schemas():
    from tests.engine.cli_helpers import run_json

    listing = run_json("plugins")
    by_id = {p["id"]: p for p in listing["plugins"]}
    assert set(by_id) >= FIRST_PARTY
    static = {entry["name"]: entry for entry in by_id["quantize.static_int8"]["settings"]}
    assert static["samples"]["min"] == 8 and static["samples"]["max"] == 2048
    assert static["method"]["choices"] == ["minmax", "entropy", "percentile"]
    assert static["calibration"]["type"] == "path" and static["calibration"]["optional"]


@pytest.mark.parametrize(("data", "message"), [
    ({"samples": 4}, "outside 8..2048"),
    ({"samples": "many"}, "should be a int"),
    ({"method": "magic"}, "choose one of"),
    ({"per_channel": "yes"}, "should be a bool"),
    ({"colour": "red"}, "unknown setting"),
    ({"exclude": "one"}, "should be a list"),
])
def test_settings_are_validated(data, message):
    plugin = default_registry().get("quantize.static_int8")
    with pytest.raises(SettingsError, match=message):
        settings_from_dict(plugin, data, 1)


def test_settings_from_a_newer_version_are_refused():
    plugin = default_registry().get("quantize.static_int8")
    with pytest.raises(SettingsError, match="not readable"):
        settings_from_dict(plugin, {}, plugin.settings_version + 1)


def test_auto_or_number_settings_refuse_in_one_line():
    from studio.plugin_api import SettingsError, auto_or_number

    assert auto_or_number(" Auto ", "threshold", 0.0, 1.0) is None
    assert auto_or_number("0.8", "threshold", 0.0, 1.0, low_open=True) == 0.8
    assert auto_or_number(0.0, "reuse_below", 0.0, 255.0) == 0.0  # closed range: the bound is allowed
    for value, match in (("0", r"outside \(0.0, 1.0\]"), ("often", "neither auto nor a number"), ("1.5", "outside")):
        with pytest.raises(SettingsError, match=match):
            auto_or_number(value, "threshold", 0.0, 1.0, low_open=True)
