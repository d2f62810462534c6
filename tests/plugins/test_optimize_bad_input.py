"""optimize refuses bad input clearly, honours cancel, never half-writes OUT_DIR, never touches the source."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, save

from studio.errors import StudioError
from studio.hashing import sha256_file
from studio.optimize import run_optimize
from studio.recipe import Recipe, Step, save_recipe
from studio.tasks import Cancelled, TaskContext
from tests.engine.cli_helpers import run_cli


def _recipe(tmp_path: Path, plugin: str = "quantize.static_int8", **settings) -> Path:
    path = tmp_path / "recipe.toml"
    save_recipe(Recipe((Step(plugin, settings, 1),)), path)
    return path


def _one_line_exit_2(done, *words):
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_setting_out_of_bounds_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    done = run_cli("optimize", "zoo:yolov3-tiny-coco", "--recipe", _recipe(tmp_path, samples=3), "-o", out)
    _one_line_exit_2(done, "samples", "outside 8..2048")
    assert not out.exists()


def test_plugin_on_a_model_it_cannot_handle_gives_its_reasons(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    model = tmp_path / "relu.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    done = run_cli("optimize", model, "--recipe", _recipe(tmp_path), "-o", tmp_path / "out")
    _one_line_exit_2(done, "cannot run on relu", "does not take images")
    assert not (tmp_path / "out").exists()


def test_non_empty_output_folder_needs_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = run_cli("optimize", "zoo:yolov3-tiny-coco", "--recipe", _recipe(tmp_path), "-o", out)
    _one_line_exit_2(done, "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_empty_calibration_folder(tmp_path):
    empty = tmp_path / "calib"
    empty.mkdir()
    with pytest.raises(StudioError, match="no usable frames"):
        run_optimize("zoo:yolov3-tiny-coco", _recipe(tmp_path, calibration=str(empty)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_calibration_images_are_skipped_and_counted(tmp_path, bus_path, zidane_path, darknet_handle):
    calib = tmp_path / "calib"
    calib.mkdir()
    for index in range(4):
        shutil.copy(bus_path if index % 2 else zidane_path, calib / f"good{index}.jpg")
    (calib / "broken.jpg").write_bytes(np.random.default_rng(3).bytes(2000))
    (calib / "empty.png").write_bytes(b"")
    from studio.registry import default_registry

    plugin = default_registry().get("quantize.static_int8")
    ctx = TaskContext(workdir=tmp_path / "work")
    plugin.apply(darknet_handle, plugin.Settings(calibration=calib, samples=8, outlier_report=False), ctx)
    calibration = ctx.reports[0]["calibration"]
    assert calibration["frames"] == 4
    assert sorted(calibration["skipped"]) == ["broken.jpg", "empty.png"]


def test_cancel_during_calibration_leaves_nothing(tmp_path, darknet_handle):
    source = Path(darknet_handle.source_paths[1])
    before = sha256_file(source)
    seen: list[str] = []
    ctx = TaskContext()

    def on_progress(fraction: float, text: str) -> None:
        seen.append(text)
        if text.startswith("calibrating 3/"):
            ctx.cancel()

    ctx.on_progress = on_progress
    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        run_optimize("zoo:yolov3-tiny-coco", _recipe(tmp_path, samples=16), out, ctx=ctx)
    assert any(t.startswith("calibrating") for t in seen)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.toml"]  # the staging folder is gone too
    assert sha256_file(source) == before
