"""The engine's recovery trainer (studio.train) as pruning uses it: held-out loss down, fidelity up over no
recovery on the same seed, never worse than where it started, and the fixes issue 17 found."""

from __future__ import annotations

import copy
import math

import pytest

from studio.registry import default_registry
from studio.tasks import TaskContext


def _prune(handle, tmp_path, **settings):
    plugin = default_registry().get("prune.channels")
    ctx = TaskContext(workdir=tmp_path)
    variant = plugin.apply(handle, plugin.Settings(**settings), ctx)
    return variant, ctx.reports[-1]


@pytest.mark.slow
def test_recovery_lowers_held_out_loss_and_beats_no_recovery_on_a_detector(darknet_handle, tmp_path):
    _, trained = _prune(darknet_handle, tmp_path, ratio=0.3, recovery_steps=30, recovery_batch=4,
                         recovery_imgsz=192)
    recovery = trained["recovery"]
    assert recovery["held_out_loss_after"] < recovery["held_out_loss_before"]
    assert recovery["fidelity_best"] >= recovery["fidelity_start"]  # the best judged weights are what it keeps
    # The same prune measured before recovery is the no-recovery model: recovery must agree better with the teacher.
    assert trained["fidelity_after_recovery"]["value"] > trained["fidelity_before_recovery"]["value"]
    assert "choosing frames" in recovery["judged_on"]  # the checkpoint is chosen on held-out training runs …
    split = recovery["frames"]
    assert split["choosing"] > 0 and split["training"] + split["choosing"] == split["frames"]
    assert recovery["batchnorm"] == "train" and recovery["device"]["device"] == "cpu"


def test_the_checkpoint_is_chosen_on_frames_neither_trained_on_nor_judged_on(darknet_handle, monkeypatch):
    """Recovery picks its best weights on whole runs of the training side held out from training: the
    judging side, which reports before/after, chooses nothing, and no choosing frame is ever trained on."""
    import copy

    import numpy as np

    import studio.train_data as train_data
    from studio.evaluate.frames import judging_frames
    from studio.recovery import distill
    from studio.train import TrainPlan

    seen: dict[str, list] = {}
    make_judge, batches = distill.make_judge, train_data.Batches

    def recording_judge(handle, frames, ctx, **kwargs):
        seen["choosing"] = frames
        return make_judge(handle, frames, ctx, **kwargs)

    def recording_batches(frames, *args):
        seen["training"] = frames
        return batches(frames, *args)

    monkeypatch.setattr(distill, "make_judge", recording_judge)
    monkeypatch.setattr(train_data, "Batches", recording_batches)
    report = distill.distill(copy.deepcopy(darknet_handle.torch_module), darknet_handle.torch_module, darknet_handle,
                             plan=TrainPlan(steps=1, batch=2), source=None, ctx=TaskContext(), imgsz=128)

    def key(frame):
        return hash(np.ascontiguousarray(frame).tobytes())

    choosing, training = {key(f) for f in seen["choosing"]}, {key(f) for f in seen["training"]}
    judging = {key(f) for f in judging_frames(27)[0]}
    assert choosing and training and not choosing & training and not choosing & judging and not training & judging
    assert report["frames"]["choosing"] >= len(seen["choosing"]) and "choosing frames" in report["judged_on"]


def test_a_fidelity_check_leaves_torch_threads_as_they_were(darknet_handle):
    import torch

    from studio.recovery.distill import torch_fidelity

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch_fidelity(darknet_handle, darknet_handle.torch_module, frames=2)
        assert torch.get_num_threads() == 2  # it used to set 1 for the whole process: training ran 1.4–1.65× slower
    finally:
        torch.set_num_threads(before)


def test_the_torch_backend_names_the_device_it_runs_on(darknet_handle):
    import torch

    from studio.runtime.backends import TorchBackend

    assert TorchBackend(darknet_handle.torch_module).describe()["device"] == "cpu"
    # The module's own device, not a constant (torch's "meta" device stands in for a GPU on this machine).
    assert TorchBackend(torch.nn.Linear(2, 2).to("meta")).describe()["device"] == "meta"


def test_a_missing_device_is_an_error_not_a_cpu_fallback():
    import torch

    from studio.device import pick
    from studio.errors import StudioError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: asking for it is not an error here")
    with pytest.raises(StudioError, match="'cuda' is not available"):
        pick("cuda")
    assert pick("auto").kind in ("cpu", "mps")


def test_v2_recipes_replay_with_frozen_batchnorm():
    from studio.plugin_api import settings_from_dict

    plugin = default_registry().get("prune.channels")
    settings = settings_from_dict(plugin, {"ratio": 0.3, "recovery_steps": 10}, 2)
    assert (settings.recovery_batchnorm, settings.recovery_lr, settings.recovery_batch) == ("frozen", 5e-4, 2)
    assert settings_from_dict(plugin, {"ratio": 0.3}, 3).recovery_batchnorm == "train"


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="no CUDA GPU on this machine (CI has none)")
def test_recovery_trains_on_the_gpu_and_says_so(darknet_handle, tmp_path):
    import torch

    _, report = _prune(darknet_handle, tmp_path, ratio=0.3, recovery_steps=20, recovery_batch=16,
                       recovery_device="cuda")
    recovery = report["recovery"]
    assert recovery["device"]["device"] == "cuda" and recovery["device"]["name"] == torch.cuda.get_device_name(0)
    assert "mixed precision" in recovery["precision"] and "worker processes" in recovery["batches"]
    assert recovery["held_out_loss_after"] < recovery["held_out_loss_before"]
    assert next(darknet_handle.torch_module.parameters()).device.type == "cpu"  # the teacher went back


@pytest.mark.slow
def test_recovery_lowers_held_out_loss_and_beats_no_recovery_on_a_classifier(effnet_handle, tmp_path):
    """EfficientNet-Lite0 pruned by 30 % agreed with the original on no frame (README); measured here: 0.00
    pruned, 0.12 after BatchNorm re-estimation, 0.20 after 60 steps on this CPU."""
    _, trained = _prune(effnet_handle, tmp_path, ratio=0.3, recovery_steps=30, recovery_batch=8)
    recovery = trained["recovery"]
    assert recovery["held_out_loss_after"] < recovery["held_out_loss_before"]
    assert recovery["fidelity_best"] >= recovery["fidelity_start"]
    assert trained["fidelity_after_recovery"]["metric"] == "top1_agreement"
    assert trained["fidelity_after_recovery"]["value"] > trained["fidelity_before_recovery"]["value"]


IMGSZ_BN = 160


@pytest.mark.slow
def test_frozen_batchnorm_is_why_the_loss_fell_while_the_answers_got_worse(fall_handle, tmp_path):
    """Issue 17: with BatchNorm frozen, distillation lowered its loss while mAP50 collapsed. Same prune, same
    seed, same batches: only the BatchNorm mode differs, and only training mode raises held-out fidelity.

    Both end on their last weights here; that the trainer keeps the best judged weights, so that a run which
    only made things worse ends where it started, is tests/engine/test_train.py's."""
    from studio.recovery.distill import distill, torch_fidelity_judge
    from studio.train import TrainPlan

    pruned, _ = _prune(fall_handle, tmp_path, ratio=0.3)
    results, judged = {}, {}
    judge = torch_fidelity_judge(fall_handle, frames=27)  # the judging side, which chose nothing
    for mode in ("train", "frozen"):
        student = copy.deepcopy(pruned.torch_module)
        plan = TrainPlan(steps=25, batch=8, batchnorm=mode, eval_every=25, keep_best=False)
        results[mode] = distill(student, fall_handle.torch_module, fall_handle, plan=plan, source=None, imgsz=IMGSZ_BN,
                                ctx=TaskContext(workdir=tmp_path))
        judged[mode] = judge(student)["value"]  # the weights of step 25, as trained
    train, frozen = results["train"], results["frozen"]
    assert train["fidelity_start"] == frozen["fidelity_start"]  # the same starting point (BatchNorm re-estimated)
    assert frozen["loss_end"] < frozen["loss_start"]  # frozen: the training loss falls …
    assert frozen["fidelity_curve"][-1]["fidelity"] <= frozen["fidelity_start"]  # … and the answers do not improve
    # Training mode: well above frozen after the same 25 steps, on the judging side
    # (measured: 0.074 against 0.004 at 256 px; over 100 steps at 320 px it rose monotonically 0.055 → 0.200
    # while frozen stayed at 0.02–0.03).
    assert judged["train"] > judged["frozen"] + 0.02, judged
    # Not asserted, measured: frozen's held-out distillation loss ended *lower* (11.1 against 12.9) — the loss is
    # no proxy for the answers, which is why the trainer selects weights by held-out fidelity, not by loss.


@pytest.mark.slow
def test_low_rank_recovers_with_the_same_trainer(effnet_handle, tmp_path):
    plugin = default_registry().get("lowrank.svd")
    ctx = TaskContext(workdir=tmp_path)
    # A budget in epochs (steps left at 0): a fifth of a pass over the training frames, a batch of 4 a step.
    variant = plugin.apply(effnet_handle, plugin.Settings(mode="ratio", rank_ratio=0.5, recovery_steps=0,
                                                          recovery_epochs=0.2, recovery_batch=4, recovery_ema=0.9),
                           ctx)
    report = ctx.reports[-1]
    recovery = report["recovery"]
    steps = math.ceil(0.2 * recovery["frames"]["training"] / 4)
    assert 3 <= steps <= 12 and recovery["planned_steps"] == steps and recovery["epochs"] == 0.2
    # Measured: rank ratio 0.5 leaves EfficientNet agreeing on no judging frame, and a few steps do not yet
    # change a top-1 answer (nor is a 6-step loss trend reliable: batch-to-batch noise is larger); what is
    # checked here is that low rank goes through the engine's trainer and keeps what is never worse.
    assert recovery["steps"] == steps and recovery["loss_start"] is not None and recovery["device"]["device"] == "cpu"
    assert [p["step"] for p in recovery["fidelity_curve"]] == [0, steps]
    assert recovery["ema"] == 0.9 and "EMA 0.9" in recovery["method"]  # the plugin's setting reached the trainer
    assert report["fidelity_after_recovery"]["value"] >= report["fidelity_before_recovery"]["value"]
    assert variant.name.endswith("lowrankr")


def test_a_language_model_is_not_given_vision_recovery(smollm):
    from studio.plugin_api import SettingsError

    plugin = default_registry().get("lowrank.svd")
    with pytest.raises(SettingsError, match="set recovery steps and epochs to 0"):
        plugin.apply(smollm, plugin.Settings(recovery_steps=10), TaskContext())


@pytest.mark.slow
def test_prune_recover_prune_recovers_after_every_step(darknet_handle, tmp_path):
    _, report = _prune(darknet_handle, tmp_path, ratio=0.3, iterative_steps=2, recovery_schedule="each_step",
                       recovery_steps=4, recovery_batch=2)
    rounds = report["recovery"]["rounds"]
    assert len(rounds) == 2 and all(r["steps"] == 2 for r in rounds)
    assert "fidelity_after_recovery" in report


def test_v3_recipes_replay_without_labels_and_with_mse_features():
    from studio.plugin_api import settings_from_dict

    plugin = default_registry().get("prune.channels")
    old = settings_from_dict(plugin, {"ratio": 0.3, "recovery_steps": 10}, 3)
    assert (old.recovery_features, old.recovery_labels, old.recovery_batchnorm) == ("mse", False, "train")
    new = settings_from_dict(plugin, {"ratio": 0.3}, 4)
    assert (new.recovery_features, new.recovery_labels, new.recovery_schedule) == ("cwd", True, "end")
