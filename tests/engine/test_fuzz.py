"""Fuzzing the readers of untrusted text: recipes and plugin settings, Ultralytics metadata in an ONNX
file, Darknet .cfg files, GGUF headers. Whatever the input, the result is a value or a StudioError —
never another exception (which the CLI would report as an internal error and the GUI as a crash)."""

from __future__ import annotations

import contextlib
import struct
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from studio.errors import StudioError
from studio.loaders.language import check_gguf_header
from studio.loaders.ultralytics_meta import parse_ultralytics_meta
from studio.recipe import load_recipe, parse_recipe, validate_recipe
from studio.registry import default_registry

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@FUZZ
@given(data=values)
def test_any_parsed_data_is_a_recipe_or_a_clear_error(data):
    with contextlib.suppress(StudioError):
        parse_recipe(data, "fuzz.toml")


def _setting_values(registry):
    plugins = sorted(plugin.id for plugin in registry.plugins.values())
    step = st.fixed_dictionaries({"plugin": st.sampled_from([*plugins, "no.such.plugin"])},
                                 optional={"settings": st.dictionaries(st.text(max_size=24), values, max_size=4),
                                           "settings_version": st.one_of(st.integers(-2, 5), scalars)})
    return st.fixed_dictionaries({"version": st.sampled_from([1, 1, 1, 0, 2, "1"])},
                                 optional={"steps": st.lists(step, max_size=3)})


def test_any_recipe_steps_with_any_settings_validate_or_fail_clearly(registry):
    known_keys = {plugin.id: list(_field_names(plugin)) for plugin in registry.plugins.values()}

    @FUZZ
    @given(data=_setting_values(registry), st_data=st.data())
    def check(data, st_data):
        for step in data.get("steps", []):  # also real setting names with hostile values, not only random keys
            names = known_keys.get(step["plugin"])
            if names and isinstance(step.get("settings"), dict):
                step["settings"][st_data.draw(st.sampled_from(names))] = st_data.draw(values)
        with contextlib.suppress(StudioError):
            validate_recipe(parse_recipe(data, "fuzz.toml"), registry)

    check()


def _field_names(plugin):
    import dataclasses

    return [field.name for field in dataclasses.fields(plugin.Settings)]


@FUZZ
@given(text=st.text(max_size=300))
def test_any_recipe_file_text_loads_or_fails_clearly(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(b"")
        with contextlib.suppress(StudioError):
            load_recipe(path)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


literal_texts = st.one_of(st.text(max_size=40), values.map(repr), st.just("[" * 5000 + "]" * 5000),
                          st.just("{0: 'a', 'x': 'b'}"), st.just("(1, 2, 3)"), st.just("10**10"))
meta_dicts = st.dictionaries(st.sampled_from(["task", "names", "imgsz", "stride", "version", "author"]),
                             literal_texts, max_size=6)


@FUZZ
@given(meta=meta_dicts)
def test_any_ultralytics_metadata_parses_or_fails_clearly(meta):
    try:
        fields = parse_ultralytics_meta(meta, Path("fuzz.onnx"))
    except StudioError:
        return
    assert all(1 <= side <= 8192 for side in fields.imgsz) and 1 <= fields.stride <= 256


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=meta_dicts)
def test_an_onnx_file_with_any_metadata_loads_or_fails_clearly(meta):
    """The same through the real ONNX loader, with the metadata an Ultralytics export carries."""
    from studio.loaders.onnx_file import load

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32).tolist())
    graph = helper.make_graph([helper.make_node("Conv", ["images", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 32, 32])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"author": "Ultralytics", **meta})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        onnx.save(model, str(path))
        with contextlib.suppress(StudioError):
            load(path)


cfg_values = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["leaky", "linear", "mish", "x", "", "1e9",
                                                                          "-1,-3", "0,1,2", "10,14,23,27"]))
cfg_sections = st.lists(st.tuples(
    st.sampled_from(["convolutional", "maxpool", "upsample", "route", "shortcut", "yolo", "frobnicate"]),
    st.dictionaries(st.sampled_from(["filters", "size", "stride", "pad", "groups", "batch_normalize", "activation",
                                     "layers", "from", "mask", "anchors", "classes", "padding"]), cfg_values,
                    max_size=6)), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=st.dictionaries(st.sampled_from(["width", "height", "channels"]), cfg_values, max_size=3),
       sections=cfg_sections)
@example(net={}, sections=[("route", {"groups": "0"})])  # found by a CI run: ZeroDivisionError, now one line
def test_any_darknet_cfg_builds_or_fails_clearly(net, sections):
    from studio.nets.darknet import DarknetNet
    from studio.nets.darknet_cfg import parse_cfg

    lines = ["[net]", *(f"{k}={v}" for k, v in net.items())]
    for kind, options in sections:
        lines += ["", f"[{kind}]", *(f"{k}={v}" for k, v in options.items())]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.cfg"
        path.write_text("\n".join(lines))
        with contextlib.suppress(StudioError):
            DarknetNet(parse_cfg(path), path, max_params=1_000_000)  # a 4 MB .weights file's worth


@FUZZ
@given(version=st.integers(0, 2**32 - 1), tensors=st.integers(0, 2**64 - 1), entries=st.integers(0, 2**64 - 1),
       tail=st.binary(max_size=64))
def test_any_gguf_header_is_accepted_only_when_it_fits_the_file(version, tensors, entries, tail):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        path.write_bytes(b"GGUF" + struct.pack("<IQQ", version, tensors, entries) + tail)
        try:
            check_gguf_header(path)
        except StudioError:
            return
        assert version in (2, 3) and tensors * 33 + entries * 14 <= path.stat().st_size
