"""Early exit: classifier exit heads (present, trained, used) and the video cascade (paths, fidelity)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from studio.optimize import run_optimize
from studio.plugin_api import SettingsError, settings_from_dict
from studio.recipe import Recipe, Step, save_recipe
from studio.registry import default_registry
from studio.tasks import TaskContext


def _key(frame) -> bytes:
    import hashlib

    return hashlib.sha256(frame.tobytes()).digest()


@pytest.fixture(scope="module")
def exit_variant(effnet_handle):
    """The plugin applied once (small budget), with every frame set it measured on recorded."""
    from plugins.early_exit import exit_threshold

    measured: dict[str, list] = {}
    real = exit_threshold.measure

    def spy(model, variant, frames, ctx, what, repeats=exit_threshold.TIMING_REPEATS):
        samples = real(model, variant, frames, ctx, what, repeats=1)
        measured[what] = (frames, samples)
        return samples

    plugin = default_registry().get("early_exit.classifier")
    ctx = TaskContext()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exit_threshold, "measure", spy)
        variant = plugin.apply(effnet_handle, plugin.Settings(epochs=0.7, batch=4, lr=1e-2, target_agreement=0.9,
                                                              warm_start=False), ctx)  # ~20 steps
    return variant, ctx.reports[-1], measured


def test_exit_heads_are_trained_by_the_engine_trainer(exit_variant, effnet_handle):
    import copy

    import torch

    from plugins.early_exit.exit_training import AgreementJudge
    from studio.evaluate.frames import judging_frames
    from studio.train_data import plain_batch

    variant, report, _ = exit_variant
    heads = [s.head for s in variant.torch_module.segments if s.head is not None]
    assert len(heads) == 2 and report["exits_after_blocks"] == [7, 11]
    training = report["training"]
    assert training["device"]["device"] == "cpu" and training["batchnorm"] == "frozen"
    # the budget was given in epochs: passes over the training frames, a batch of 4 a step
    steps = math.ceil(0.7 * training["frames"]["training"] / 4)
    assert training["epochs"] == 0.7 and training["planned_steps"] == steps
    assert training["held_out_loss_after"] < training["held_out_loss_before"]
    # Held out: agreement of the exits with the final head on the judging side, trained heads against the same
    # heads untrained (freshly initialised).
    judge = AgreementJudge(variant.torch_module, plain_batch(judging_frames(27)[0], effnet_handle,
                                                             effnet_handle.image_input.size))
    untrained = copy.deepcopy(variant.torch_module)
    torch.manual_seed(0)
    for segment in untrained.segments[:-1]:
        segment.head.fc.reset_parameters()
    assert judge(variant.torch_module)["value"] > judge(untrained)["value"]


def test_threshold_is_chosen_on_frames_that_are_not_reported(exit_variant):
    from studio.evaluate.frames import judging_frames

    _, report, measured = exit_variant
    choosing, judging = measured["choosing frames"][0], measured["judging frames"][0]
    assert len(choosing) == report["choice"]["frames"] >= 8
    assert not {_key(f) for f in choosing} & {_key(f) for f in judging}
    # The reported curve and figures come from the judging side (all of it), not from the choosing frames.
    assert [_key(f) for f in judging] == [_key(f) for f in judging_frames(256)[0]]
    assert report["chosen"]["evidence"]["frames"] == len(judging)


def test_choosing_runs_are_held_out_from_training():
    from plugins.early_exit.exit_training import choosing_split

    frames = list(range(100))
    training, choosing = choosing_split(frames)
    assert not set(training) & set(choosing) and sorted(training + choosing) == frames
    # Whole contiguous runs: a choosing frame's neighbours are mostly choosing frames too.
    assert sum(1 for f in choosing if f + 1 in choosing) >= len(choosing) - 2


def test_report_curve_is_the_judging_side_and_the_variant_runs_at_the_chosen_threshold(exit_variant):
    from plugins.early_exit import exit_threshold

    variant, report, measured = exit_variant
    samples = measured["judging frames"][1]
    assert report["curve"] == exit_threshold.curve(samples)
    chosen = report["chosen"]
    threshold = json.loads(variant.metadata["runtime_settings"])["threshold"]
    assert variant.torch_module.threshold == threshold == chosen["threshold"]
    if "warnings" in report:  # no candidate reached the target: the variant never leaves early
        assert threshold == exit_threshold.NEVER and chosen["exit_share"][-1] == 1.0
    else:
        choice = {p["threshold"]: p for p in report["choice"]["curve"]}
        assert choice[threshold]["top1_agreement"] >= 0.9
        assert all(p["mean_ms"] >= choice[threshold]["mean_ms"] for p in choice.values() if p["top1_agreement"] >= 0.9)
    interval = chosen["top1_agreement_interval"]
    assert interval["low"] <= chosen["top1_agreement"] <= interval["high"]


def test_exit_curve_covers_thresholds_and_exits_are_used(exit_variant):
    _, report, _ = exit_variant
    gate = {point["threshold"]: point for point in report["curve"]}
    softmax = {point["threshold"]: point for point in report["softmax_same_heads"]["curve"]}
    for curve in (gate, softmax):
        assert set(curve) >= {0.3, 0.5, 0.9}
        for point in curve.values():
            assert sum(point["exit_share"]) == pytest.approx(1.0, abs=1e-3)
            assert 0.0 <= point["top1_agreement"] <= 1.0 and point["mean_ms"] > 0
        # A sample that never leaves early agrees with the full model by construction.
        assert all(p["top1_agreement"] == 1.0 for p in curve.values() if p["exit_share"][-1] == 1.0)
        assert curve[0.3]["exit_share"][-1] <= curve[0.9]["exit_share"][-1]
    # At the lowest threshold some samples leave early on their top probability (0.05 of 1000 classes is clear even
    # for weak heads).
    assert sum(softmax[min(softmax)]["exit_share"][:-1]) > 0


def test_the_variant_is_measured_and_chosen_on_its_gate(exit_variant, effnet_handle):
    """The scores the threshold was chosen on are the gate's (recomputed here from torch logits), not the heads' top
    probabilities, and the variant carries the same gates to both runtimes."""
    import numpy as np
    import torch

    from plugins.early_exit import exit_threshold
    from studio.runtime.exit_score import exit_scores
    from studio.train_data import plain_batch

    variant, report, measured = exit_variant
    spec = json.loads(variant.metadata["runtime_settings"])
    gates = variant.torch_module.gates
    assert report["exit_score"] == spec["score"] == "gate" and spec["gates"] == gates and len(gates) == 2
    assert len(gates[0]["weights"]) == len(report["gate"]["features"]) and report["gate"]["frames"] >= 8
    frames, samples = measured["judging frames"]
    with torch.no_grad():
        logits = [o.numpy() for o in variant.torch_module.all_logits(
            plain_batch(frames, effnet_handle, effnet_handle.image_input.size))]
    for index, sample in enumerate(samples):
        expected = exit_scores([exit_logits[index] for exit_logits in logits[:-1]], gates)
        assert [score for _, score, _ in sample.exits[:-1]] == pytest.approx(expected, abs=1e-3)
    assert any(abs(score - top) > 1e-3
               for s in samples for (_, score, _), top in zip(s.exits[:-1], s.top[:-1], strict=True))
    chosen, _ = exit_threshold.choose(measured["choosing frames"][1], 0.9)
    assert spec["threshold"] == (exit_threshold.NEVER if chosen is None else chosen)
    # The comparison in the report is the same heads and timings exiting on their top probability.
    softmax = report["softmax_same_heads"]
    assert softmax["curve"] == exit_threshold.curve(exit_threshold.with_softmax(samples))
    assert report["chosen"]["threshold"] == spec["threshold"] and len(report["separation"]) == 2
    assert all(np.isfinite(gate["bias"]) and np.all(np.isfinite(gate["weights"])) for gate in gates)


def test_runtimes_exit_on_the_gate_score_not_the_top_probability(exit_variant, effnet_handle):
    """Hand-made gates: 'always leave at the first exit', then 'leave at the second exit when it agrees with the first'.
    Both runtimes must follow the gate where the top probability would send every frame to the end."""
    import copy

    import torch

    from studio.evaluate.frames import judging_frames
    from studio.runtime.early_exit import EarlyExitBackend, ensure_segments
    from studio.runtime.preprocess import prepare

    variant = exit_variant[0]
    image = effnet_handle.image_input
    tensors = [prepare(frame, image, image.size, False)[0] for frame in judging_frames(8)[0]]
    net = copy.deepcopy(variant.torch_module).eval()
    with torch.no_grad():
        answers = [[int(o.argmax()) for o in net.all_logits(torch.from_numpy(t))] for t in tensors]
        tops = [float(torch.softmax(o, 1).max()) for t in tensors for o in net.all_logits(torch.from_numpy(t))[:-1]]
    threshold = 0.999
    assert max(tops) < threshold  # on its top probability, no frame would leave early at this threshold
    zero = [0.0] * 5
    always = [{"weights": zero, "bias": 50.0}, {"weights": zero, "bias": -50.0}]
    agreeing = [{"weights": zero, "bias": -50.0}, {"weights": [0.0, 0.0, 0.0, 0.0, 100.0], "bias": -50.0}]
    cases = ((always, [0] * len(answers)), (agreeing, [1 if a[0] == a[1] else 2 for a in answers]))
    for gates, expected in cases:
        backend = EarlyExitBackend(ensure_segments(variant), threshold, gates=gates)
        net.threshold, net.gates = threshold, gates
        taken_ort, taken_torch = [], []
        for tensor in tensors:
            backend.run(tensor)
            taken_ort.append(backend.last_exit)
            with torch.no_grad():
                net(torch.from_numpy(tensor))
            taken_torch.append(net.last_exit)
        assert taken_ort == taken_torch == expected


def test_warm_start_fits_fresh_heads_to_the_final_layer(effnet_handle):
    import copy

    from plugins.early_exit.exit_training import AgreementJudge, warm_start
    from studio.evaluate.frames import judging_frames
    from studio.nets.early_exit import EarlyExitNet, efficientnet_segments
    from studio.train_data import plain_batch

    net = EarlyExitNet(efficientnet_segments(copy.deepcopy(effnet_handle.torch_module).eval(), [7, 11], 1000), 1.0)
    frames = judging_frames(12)[0]
    judge = AgreementJudge(net, plain_batch(frames, effnet_handle, effnet_handle.image_input.size))
    before = judge(net)["value"]
    report = warm_start(net, frames, effnet_handle, 2.0)
    assert report["frames"] == 12 and judge(net)["value"] > before + 0.3
    assert report["agreement_on_these_frames"] == judge(net)["per_exit"]


def test_gate_fit_finds_the_informative_feature():
    import numpy as np

    from plugins.early_exit.exit_gate import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[:, 2] = 1.0  # a constant feature (the first exit's "agrees with the previous exit")
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(float)
    weights, bias = fit_logistic(x, y)
    assert weights[2] == 0.0 and weights[0] > 5 * abs(weights[1])
    p = 1 / (1 + np.exp(-(x @ weights + bias)))
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.85
    # An exit that always agrees gets a finite gate that says so.
    weights, bias = fit_logistic(x, np.ones(400))
    assert np.all(np.isfinite(weights)) and 1 / (1 + np.exp(-(x[0] @ weights + bias))) > 0.9


def test_a_version_1_recipe_keeps_its_fixed_threshold_and_batch():
    plugin = default_registry().get("early_exit.classifier")
    old = settings_from_dict(plugin, {"steps": 5, "lr": 0.002}, 1)
    assert (old.threshold, old.batch, old.steps, old.lr) == ("0.8", 8, 5, 0.002)
    assert settings_from_dict(plugin, {"threshold": 0.5}, 1).threshold == "0.5"
    assert settings_from_dict(plugin, {}, 2).threshold == "auto"
    # Versions 1 and 2 exited on the top probability; version 3 (a gate by default) keeps what a recipe says.
    assert old.exit_score == settings_from_dict(plugin, {}, 2).exit_score == "softmax"
    assert not old.warm_start and not settings_from_dict(plugin, {}, 2).warm_start
    assert settings_from_dict(plugin, {}, 3).exit_score == "gate" and settings_from_dict(plugin, {}, 3).warm_start
    assert settings_from_dict(plugin, {"exit_score": "softmax"}, 3).exit_score == "softmax"
    with pytest.raises(SettingsError, match="threshold"):
        plugin.apply(None, settings_from_dict(plugin, {"threshold": "soon"}, 2), TaskContext())
    cascade = default_registry().get("early_exit.video_cascade")
    old = settings_from_dict(cascade, {"escalate_below": 0.3}, 1)
    assert (old.escalate_below, old.reuse_below) == ("0.3", "2.0")


def test_early_exit_variant_runs_on_both_runtimes(exit_variant, bus_path):
    import cv2

    from studio.runtime.predictor import make_predictor

    variant, _, _ = exit_variant
    frame = cv2.imread(str(bus_path))
    for runtime in ("ort", "torch"):
        prediction = make_predictor(variant, runtime, threads=1)(frame)
        assert prediction.path.startswith("exit") and len(prediction.result.as_list()) == 5


def test_early_exit_optimize_writes_segments_and_reloads(tmp_path, bus_path):
    """A version 1 recipe (fixed threshold 0.8, the plugin's own training loop then) replays."""
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
    settings = plugin.Settings(evaluation_video=still_then_moving_video, evaluation_frames=20, escalate_below="0.3",
                               reuse_below="2.0")
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
    variant = plugin.apply(fall_handle, plugin.Settings(evaluation_frames=10, escalate_below="0.5", reuse_below="2"),
                           TaskContext())
    report = run_predict(variant, str(bikes_path), max_frames=12)
    paths = {frame["path"] for frame in report["frames"]}
    assert paths <= {"reuse", "low", "full"} and len(report["frames"]) == 12


def test_video_cascade_thresholds_are_chosen_for_a_target_on_frames_not_reported(fall_handle, bikes_path):
    from plugins.early_exit import cascade_choice

    plugin = default_registry().get("early_exit.video_cascade")
    ctx = TaskContext()
    variant = plugin.apply(fall_handle, plugin.Settings(evaluation_video=bikes_path, evaluation_frames=30,
                                                        target_map50=0.8), ctx)
    report = ctx.reports[-1]
    choice = report["choice"]
    # 30 frames: the first 12 choose, 5 are left out, the last 13 report (contiguous, so disjoint).
    assert choice["frames"] == 12 and report["frames"] == 30 - 12 - cascade_choice.GAP_FRAMES
    chosen = json.loads(variant.metadata["runtime_settings"])
    assert (chosen["escalate_below"], chosen["reuse_below"]) == (report["escalate_below"], report["reuse_below"])
    if "warnings" not in report:
        picked = next(c for c in choice["candidates"] if (c["escalate_below"], c["reuse_below"])
                      == (chosen["escalate_below"], chosen["reuse_below"]))
        assert picked["map50"] >= 0.8
        assert all(c["speedup_estimate"] <= picked["speedup_estimate"] for c in choice["candidates"]
                   if c["map50"] >= 0.8)
    assert report["fidelity"]["evidence"]["frames"] == report["frames"]


def test_video_cascade_replay_matches_the_runtime_decisions():
    import numpy as np

    from plugins.early_exit.cascade_choice import Record, replay

    still, moved = np.zeros((36, 64), np.float32), np.full((36, 64), 50, np.float32)
    records = [Record(t, f"low{i}", top, 1.0, f"full{i}", 10.0, 0.1)
               for i, (t, top) in enumerate([(still, 0.9), (still, 0.9), (moved, 0.2), (moved, 0.9)])]
    produced, spent = replay(records, escalate=0.5, reuse=2.0, max_reuse=4)
    assert produced == ["low0", "low0", "full2", "full2"]
    assert spent == pytest.approx(0.4 + 1.0 + 1.0 + 10.0)


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
