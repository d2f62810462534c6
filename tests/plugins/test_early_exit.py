"""Early exit: classifier exit heads (present, trained, used) and the video cascade (paths, fidelity)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.optimize import run_optimize
from studio.plugin_api import SettingsError, settings_from_dict
from studio.recipe import Recipe, Step, save_recipe
from studio.registry import default_registry
from studio.tasks import TaskContext


@pytest.fixture(scope="module")
def exit_variant(effnet_handle):
    plugin = default_registry().get("early_exit.classifier")
    ctx = TaskContext()
    variant = plugin.apply(effnet_handle, plugin.Settings(steps=60, threshold=0.3), ctx)
    return variant, ctx.reports[-1]


def test_exit_heads_are_present_and_trained(exit_variant):
    variant, report = exit_variant
    heads = [s.head for s in variant.torch_module.segments if s.head is not None]
    assert len(heads) == 2 and report["exits_after_blocks"] == [7, 11]
    assert report["training"]["loss_end"] < report["training"]["loss_start"]


def test_exit_curve_covers_thresholds_and_exits_are_used(exit_variant):
    _, report = exit_variant
    curve = {point["threshold"]: point for point in report["curve"]}
    assert set(curve) >= {0.3, 0.5, 0.9}
    for point in curve.values():
        assert sum(point["exit_share"]) == pytest.approx(1.0, abs=1e-3)
        assert 0.0 <= point["top1_agreement"] <= 1.0 and point["mean_ms"] > 0
    # At the lowest threshold some samples leave early (60 training steps make weak heads: whether any of them
    # clears 0.3 varied between runs with the order of parallel float sums; 0.1 of 1000 classes is clear).
    assert sum(curve[min(curve)]["exit_share"][:-1]) > 0
    # A sample that never leaves early agrees with the full model by construction.
    assert all(p["top1_agreement"] == 1.0 for p in curve.values() if p["exit_share"][-1] == 1.0)
    assert curve[0.3]["exit_share"][-1] <= curve[0.9]["exit_share"][-1]


def test_early_exit_variant_runs_on_both_runtimes(exit_variant, bus_path):
    import cv2

    from studio.runtime.predictor import make_predictor

    variant, _ = exit_variant
    frame = cv2.imread(str(bus_path))
    for runtime in ("ort", "torch"):
        prediction = make_predictor(variant, runtime, threads=1)(frame)
        assert prediction.path.startswith("exit") and len(prediction.result.as_list()) == 5


def test_early_exit_optimize_writes_segments_and_reloads(tmp_path, bus_path):
    recipe = tmp_path / "r.toml"
    save_recipe(Recipe((Step("early_exit.classifier", {"steps": 5}, 1),)), recipe)
    report = run_optimize("zoo:efficientnet-lite0", recipe, tmp_path / "out", runs=3, fidelity_frames_count=4)
    assert [Path(f).name for f in report["files"]] == ["segment_0.onnx", "segment_1.onnx", "segment_2.onnx"]
    from tests.engine.cli_helpers import run_json

    predicted = run_json("predict", tmp_path / "out" / "model.pt", bus_path)
    assert predicted["frames"][0]["path"].startswith("exit")


def test_exit_blocks_out_of_range_are_refused(effnet_handle):
    plugin = default_registry().get("early_exit.classifier")
    with pytest.raises(SettingsError, match="numbered"):
        plugin.apply(effnet_handle, settings_from_dict(plugin, {"exits": "3,40", "steps": 1}, 1), TaskContext())


def test_early_exit_refuses_a_detector(fall_handle):
    assert default_registry().get("early_exit.classifier").check(fall_handle)


@pytest.fixture
def still_then_moving_video(tmp_path, bus_path) -> Path:
    """bus.jpg held still for 6 frames, then panned 12 px a frame: every path has frames to take."""
    import cv2

    image = cv2.imread(str(bus_path))
    path = tmp_path / "bus.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for index in range(20):
        shift = 0 if index < 6 else 12 * (index - 5)
        writer.write(cv2.resize(image[shift:shift + 800, :], (640, 480)))
    writer.release()
    return path


def test_video_cascade_reports_paths_latency_and_fidelity(fall_handle, still_then_moving_video):
    plugin = default_registry().get("early_exit.video_cascade")
    assert plugin.check(fall_handle) == []
    ctx = TaskContext()
    settings = plugin.Settings(evaluation_video=still_then_moving_video, evaluation_frames=20, escalate_below=0.3)
    variant = plugin.apply(fall_handle, settings, ctx)
    report = ctx.reports[-1]
    assert report["frames"] == 20
    assert sum(report["path_share"].values()) == pytest.approx(1.0, abs=1e-3)
    # The still frames are reused; the people on the bus are found at low resolution, so "low" is taken.
    assert report["path_share"]["reuse"] >= 4 / 20 and report["path_share"]["low"] > 0
    assert report["mean_ms_full"] > 0 and report["mean_ms_cascade"] > 0
    assert 0.0 <= report["fidelity"]["map50"] <= 1.0 and report["fidelity"]["targets"] > 0
    assert json.loads(variant.metadata["runtime_settings"])["escalate_below"] == 0.3


def test_video_cascade_runs_from_the_cli_predict(fall_handle, bikes_path, tmp_path):
    from studio.predict_cmd import run_predict

    plugin = default_registry().get("early_exit.video_cascade")
    variant = plugin.apply(fall_handle, plugin.Settings(evaluation_frames=10), TaskContext())
    report = run_predict(variant, str(bikes_path), max_frames=12)
    paths = {frame["path"] for frame in report["frames"]}
    assert paths <= {"reuse", "low", "full"} and len(report["frames"]) == 12


def test_video_cascade_needs_a_dynamic_detector(effnet_handle, darknet_handle):
    plugin = default_registry().get("early_exit.video_cascade")
    assert any("detectors" in r for r in plugin.check(effnet_handle))
    assert any("several input sizes" in r for r in plugin.check(darknet_handle))


def test_cli_runs_a_variant_from_a_recipe(tmp_path, still_then_moving_video):
    from tests.engine.cli_helpers import run_json

    recipe = tmp_path / "cascade.toml"
    save_recipe(Recipe((Step("early_exit.video_cascade", {"evaluation_frames": 10}, 1),)), recipe)
    report = run_json("predict", "zoo:yolov8s-fall", still_then_moving_video, "--recipe", recipe, "--max-frames", "20")
    paths = [frame["path"] for frame in report["frames"]]
    assert "reuse" in paths and set(paths) <= {"reuse", "low", "full"}
    assert "cascade" in report["model"]
