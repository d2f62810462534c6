"""Recipes: TOML in and out, every malformed input refused with the file named."""

from __future__ import annotations

import pytest

from studio.errors import BadInputError, StudioError
from studio.recipe import Recipe, Step, load_recipe, save_recipe, validate_recipe
from studio.registry import default_registry


def test_round_trip(tmp_path):
    recipe = Recipe((Step("quantize.static_int8", {"samples": 16, "exclude": ["/model.22/*"]}, 1),
                     Step("quantize.fp16", {}, 1)))
    path = tmp_path / "r.toml"
    save_recipe(recipe, path)
    assert load_recipe(path) == recipe
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


@pytest.mark.parametrize(("text", "message"), [
    ("[[steps]\nplugin=", "not valid TOML"),
    ('format = "something-else"', "format is"),
    ("version = 99", "newer than this studio"),
    ("steps = 3", "must be a list"),
    ("[[steps]]\nsettings = {}", "needs a 'plugin'"),
])
def test_malformed_recipes(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as info:
        load_recipe(path)
    assert str(path) in str(info.value)


def test_unknown_plugin_is_named():
    with pytest.raises(StudioError, match=r"no plugin 'prune\.magic'"):
        validate_recipe(Recipe((Step("prune.magic"),)), default_registry())
