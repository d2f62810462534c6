"""Panels built from every installed plugin's settings: defaults round-trip, bounds hold, help shows."""

from __future__ import annotations

from studio.plugin_api import settings_from_dict
from studio.registry import default_registry
from ui.settings_form import SettingsForm


def test_every_plugin_gets_a_form_whose_defaults_are_valid(qtbot):
    registry = default_registry()
    assert len(registry.plugins) >= 10
    for plugin in registry.plugins.values():
        form = SettingsForm(plugin.Settings)
        qtbot.addWidget(form)
        assert form.values() == {}, plugin.id  # untouched: nothing differs from the defaults
        settings_from_dict(plugin, form.values(), plugin.settings_version)


def test_a_changed_setting_reaches_the_plugin_with_its_bounds_and_help(qtbot):
    plugin = default_registry().get("prune.channels")
    form = SettingsForm(plugin.Settings)
    qtbot.addWidget(form)
    ratio, criterion = form.widgets["ratio"], form.widgets["criterion"]
    assert "Per layer" in ratio.toolTip() and "0.05..0.9" in ratio.toolTip()
    ratio.setValue(5.0)  # beyond the slider's bound: clamped, never an invalid setting
    assert form.values()["ratio"] == 0.9
    ratio.setValue(0.5)
    criterion.setCurrentText("l1")
    form.widgets["recovery_steps"].setValue(50)
    values = form.values()
    assert values == {"ratio": 0.5, "criterion": "l1", "recovery_steps": 50}
    settings = settings_from_dict(plugin, values, plugin.settings_version)
    assert (settings.ratio, settings.criterion, settings.recovery_steps) == (0.5, "l1", 50)
    form.set_values({"ratio": 0.3, "criterion": "bn_scale"})
    assert form.values() == {"criterion": "bn_scale", "recovery_steps": 50}  # ratio is back at its default
