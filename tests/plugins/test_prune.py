"""Pruning and low-rank plugins on real zoo models: fewer parameters, smaller exports, saved and reloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.optimize import run_optimize
from studio.plugin_api import SettingsError, settings_from_dict
from studio.recipe import Recipe, Step, save_recipe
from studio.registry import default_registry
from studio.tasks import Cancelled, TaskContext


def _recipe(tmp_path: Path, *steps: tuple[str, dict]) -> Path:
    path = tmp_path / "recipe.toml"
    save_recipe(Recipe(tuple(Step(plugin, settings, 1) for plugin, settings in steps)), path)
    return path


@pytest.fixture(scope="module")
def pruned_fall(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pruned")
    recipe = _recipe(tmp, ("prune.channels", {"ratio": 0.5}))
    return run_optimize("zoo:yolov8s-fall", recipe, tmp / "out", runs=6, fidelity_frames_count=6)


def test_channel_pruning_halves_the_work(pruned_fall):
    base, variant = pruned_fall["baseline"], pruned_fall["variant"]
    assert variant["params"] < 0.45 * base["params"]  # 11.1M -> 3.6M at ratio 0.5
    assert variant["gflops"] < 0.5 * base["gflops"]
    assert pruned_fall["size_ratio"] < 0.45  # the exported ONNX is really smaller
    details = pruned_fall["steps"][0]["details"][0]
    assert details["params_after"] < details["params_before"] and details["kept_whole"] >= 1
    assert "map50" in pruned_fall["fidelity"]  # computed, whatever it is (no recovery here)


def test_pruned_model_reloads_in_a_fresh_process_and_runs(pruned_fall, bus_path):
    saved = Path(pruned_fall["pytorch_model"])
    code = ("import json, sys; from studio.loaders import load_model;"
            "from studio.runtime.predictor import Predictor, make_backend; import cv2;"
            f"h = load_model({str(saved)!r}); p = Predictor(h, make_backend(h, 'ort', threads=1));"
            f"r = p(cv2.imread({str(bus_path)!r})).result;"
            "print(json.dumps({'params': h.params, 'labels': list(h.labels), 'task': str(h.task)}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["params"] == pruned_fall["variant"]["params"]
    assert info["labels"] == ["Normal", "Fall"] and info["task"] == "detect"


def test_pruned_darknet_and_classifier_save_and_reload(tmp_path, darknet_handle, effnet_handle):
    from studio.checkpoint import save_checkpoint
    from studio.loaders import load_model

    plugin = default_registry().get("prune.channels")
    for handle in (darknet_handle, effnet_handle):
        variant = plugin.apply(handle, plugin.Settings(ratio=0.3), TaskContext(workdir=tmp_path))
        assert variant.params < 0.75 * handle.params
        path = save_checkpoint(variant, tmp_path / f"{handle.name}.pt")
        again = load_model(path)  # through the allow-listed weights_only loader
        assert again.params == variant.params and again.labels == handle.labels
        assert again.decoder == handle.decoder and again.image_input == handle.image_input


def test_recovery_runs_and_reports_fidelity_before_and_after(tmp_path, darknet_handle):
    plugin = default_registry().get("prune.channels")
    ctx = TaskContext(workdir=tmp_path)
    plugin.apply(darknet_handle, plugin.Settings(ratio=0.2, recovery_steps=12, recovery_batch=2,
                                                 recovery_imgsz=128), ctx)  # the report is checked, not its figures
    report = ctx.reports[-1]
    recovery = report["recovery"]
    assert recovery["steps"] == 12 and recovery["batchnorm_recalibrated"] > 5
    assert recovery["device"]["device"] == "cpu" and recovery["fidelity_best"] >= recovery["fidelity_start"]
    for key in ("fidelity_before_recovery", "fidelity_after_recovery"):
        assert report[key]["metric"] == "map50" and 0.0 <= report[key]["value"] <= 1.0


def test_cancel_during_fine_tuning_leaves_nothing(tmp_path):
    ctx = TaskContext()

    def on_progress(fraction: float, text: str) -> None:
        if text.startswith("recovery step 2/"):
            ctx.cancel()

    ctx.on_progress = on_progress
    recipe = _recipe(tmp_path, ("prune.channels", {"ratio": 0.3, "recovery_steps": 50, "recovery_imgsz": 128}))
    with pytest.raises(Cancelled):
        run_optimize("zoo:yolov3-tiny-coco", recipe, tmp_path / "out", ctx=ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml"]


def test_a_ratio_that_would_empty_layers_is_refused():
    plugin = default_registry().get("prune.channels")
    with pytest.raises(SettingsError, match=r"outside 0\.05\.\.0\.9"):
        settings_from_dict(plugin, {"ratio": 1.0}, 1)


def test_a_model_torch_pruning_cannot_trace_gets_a_reason():
    from studio.loaders.ultralytics_yaml import load_bundled

    handle = load_bundled("yolov8n.yaml")
    untraceable = handle.replace(metadata={**handle.metadata, "family": "unknown"})  # no C2f rewrite
    reasons = default_registry().get("prune.channels").check(untraceable)
    assert reasons and "torch-pruning cannot trace it" in reasons[0]
    assert default_registry().get("prune.channels").check(handle) == []  # with the rewrite it can


def test_magnitude_pruning_is_honest_about_size(tmp_path):
    recipe = _recipe(tmp_path, ("prune.magnitude", {"sparsity": 0.5}))
    report = run_optimize("zoo:yolov3-tiny-coco", recipe, tmp_path / "out", runs=4, fidelity_frames_count=4)
    details = report["steps"][0]["details"][0]
    assert details["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert "do not change" in details["note"]
    assert report["variant"]["params"] == report["baseline"]["params"]
    assert report["size_ratio"] == pytest.approx(1.0, abs=0.01)  # zeros are stored: the file does not shrink


def test_low_rank_factorises_linear_and_pointwise_layers(tmp_path, effnet_handle):
    plugin = default_registry().get("lowrank.svd")
    ctx = TaskContext(workdir=tmp_path)
    variant = plugin.apply(effnet_handle, plugin.Settings(mode="ratio", rank_ratio=0.25), ctx)
    report = ctx.reports[-1]
    assert report["factorised"] >= 5 and report["params_saved"] > 100_000
    assert variant.params == effnet_handle.params - report["params_saved"]
    assert all(row["rank"] * sum(row["shape"]) < row["shape"][0] * row["shape"][1] for row in report["layers"])
    from studio.recovery.distill import torch_fidelity

    fidelity = torch_fidelity(effnet_handle, variant.torch_module, frames=6)
    assert fidelity["metric"] == "top1_agreement"


def test_low_rank_on_yolo_survives_ultralytics_export(tmp_path, fall_handle):
    from studio.runtime.onnx_export import ensure_onnx

    plugin = default_registry().get("lowrank.svd")
    variant = plugin.apply(fall_handle, plugin.Settings(mode="ratio", rank_ratio=0.3),
                           TaskContext(workdir=tmp_path))
    assert variant.params < fall_handle.params
    import onnx

    graph = onnx.load(str(ensure_onnx(variant)))
    convs = sum(1 for node in graph.graph.node if node.op_type == "Conv")
    baseline = onnx.load(str(ensure_onnx(fall_handle)))
    assert convs > sum(1 for node in baseline.graph.node if node.op_type == "Conv")  # factor pairs are there


def _relative_head_error(module, reference, batch) -> float:
    import torch

    with torch.no_grad():
        got, want = module(batch)[1], reference(batch)[1]
    return float(sum((got[k] - want[k]).norm() ** 2 for k in ("boxes", "scores")) ** 0.5
                 / sum(want[k].norm() ** 2 for k in ("boxes", "scores")) ** 0.5)


def test_bias_compensation_shrinks_the_error_of_the_same_prune(fall_handle):
    """The same channels removed (L1), with and without folding their mean into the consumers."""
    import torch
    import torch_pruning as tp

    from plugins.prune.compensate import InputStats, compensate_group, stats_batches
    from studio.compress_target import prune_target

    errors, folded = {}, {}
    for fold in (False, True):
        target = prune_target(fall_handle)
        batches, _ = stats_batches(fall_handle, target.example_shape, TaskContext(), samples=8)
        stats = InputStats(target.module.eval(), batches)
        pruner = tp.pruner.MetaPruner(target.module, torch.zeros(target.example_shape), pruning_ratio=0.1,
                                      importance=tp.importance.MagnitudeImportance(p=1),
                                      ignored_layers=target.ignored, round_to=8)
        folded[fold] = 0
        for group in pruner.step(interactive=True):
            folded[fold] += compensate_group(group, pruner.DG, stats, fold=fold)
            group.prune()
        errors[fold] = _relative_head_error(target.module.eval(), prune_target(fall_handle).module.eval(),
                                            batches[0])
    assert folded[False] == 0 and folded[True] > 40  # every layer that lost inputs got a bias
    assert errors[True] < 0.9 * errors[False], errors  # 0.470 -> 0.386 measured


def test_output_error_pruning_keeps_the_detector_closer_than_l1(fall_handle, tmp_path):
    """The plugin's default (output-error importance + compensation) against plain L1 at 10 %."""
    from plugins.prune.compensate import stats_batches
    from studio.compress_target import prune_target

    plugin = default_registry().get("prune.channels")
    reference = prune_target(fall_handle).module.eval()
    batch = stats_batches(fall_handle, prune_target(fall_handle).example_shape, TaskContext(), samples=4)[0][0]
    errors = {}
    for name, settings in {"default": {}, "l1": {"criterion": "l1", "compensate": False}}.items():
        variant = plugin.apply(fall_handle, plugin.Settings(ratio=0.1, **settings), TaskContext(workdir=tmp_path))
        errors[name] = _relative_head_error(variant.torch_module.eval(), reference, batch)
    assert errors["default"] < 0.8 * errors["l1"], errors


def test_version_1_pruning_recipes_replay_as_they_were():
    plugin = default_registry().get("prune.channels")
    old = settings_from_dict(plugin, {"ratio": 0.3}, 1)
    assert (old.criterion, old.compensate) == ("l1", False)
    assert settings_from_dict(plugin, {"ratio": 0.3}, 2).criterion == "output_error"
