"""The recovery trainer's own contract on a tiny network (milliseconds): it learns, judges, keeps the best
weights, stops at a target, averages with EMA, and leaves the teacher untouched."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from studio.tasks import TaskContext  # noqa: E402
from studio.train import TrainPlan, train  # noqa: E402


def _pair(seed: int = 0):
    torch.manual_seed(seed)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                  torch.nn.Conv2d(8, 4, 1)).eval()
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for param in student.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return teacher, student


def _setup(teacher, steps: int):
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, 16, 16, generator=generator) for _ in range(steps)]
    held_out = torch.randn(8, 3, 16, 16, generator=generator)

    def forward(module, x):
        return module(x)

    def criterion(student_out, teacher_out):
        return torch.nn.functional.mse_loss(student_out, teacher_out)

    def judge(module):  # a fidelity in (0, 1]: 1 when the student answers exactly like the teacher
        with torch.no_grad():
            return {"value": float(1 / (1 + criterion(module(held_out), teacher(held_out))))}

    return batches, held_out, forward, criterion, judge


def _train(teacher, student, plan, ctx=None, **extra):
    batches, held_out, forward, criterion, judge = _setup(teacher, plan.steps)
    return train(student, teacher, batches=extra.pop("batches", batches), held_out=held_out, forward=forward,
                 criterion=criterion, judge=judge, plan=plan, ctx=ctx or TaskContext(), **extra)


def test_the_trainer_learns_and_reports_where_it_ran():
    teacher, student = _pair()
    before = copy.deepcopy(teacher.state_dict())
    report = _train(teacher, student, TrainPlan(steps=60, lr=1e-2, eval_every=10, patience=100))
    assert report["held_out_loss_after"] < 0.5 * report["held_out_loss_before"]
    assert report["fidelity_best"] > report["fidelity_start"] and report["best_step"] > 0
    assert report["device"]["device"] == "cpu" and report["precision"] == "fp32"
    assert [point["step"] for point in report["fidelity_curve"]] == [0, 10, 20, 30, 40, 50, 60]
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the teacher is never trained
    assert not any(p.requires_grad for p in student.parameters())


def test_a_run_that_only_hurts_ends_where_it_started():
    teacher, student = _pair()
    start = copy.deepcopy(student.state_dict())
    report = _train(teacher, student, TrainPlan(steps=20, lr=5.0, optimizer="sgd", eval_every=5, clip=1e6))
    assert report["best_step"] == 0 and report["fidelity_best"] == report["fidelity_start"]
    assert all(torch.equal(start[k], v) for k, v in student.state_dict().items())


def test_it_stops_at_the_target_and_when_fidelity_stops_rising():
    teacher, student = _pair()
    reached = _train(teacher, student, TrainPlan(steps=200, lr=1e-2, eval_every=5, target=0.5))
    assert reached["stopped"].startswith("target") and reached["steps"] < 200
    teacher, student = _pair()
    stalled = _train(teacher, student, TrainPlan(steps=100, lr=0.0, eval_every=5, patience=2, batchnorm="frozen"))
    assert stalled["stopped"].startswith("fidelity did not rise") and stalled["steps"] == 10


def test_a_long_run_is_patient_for_a_tenth_of_its_planned_evaluations():
    teacher, student = _pair()  # 400 steps judged every 5: 80 evaluations, so 8 without progress, not 2
    stalled = _train(teacher, student, TrainPlan(steps=400, lr=0.0, eval_every=5, patience=2, batchnorm="frozen"))
    assert stalled["stopped"] == "fidelity did not rise for 8 evaluations" and stalled["steps"] == 40


def test_ema_weights_are_judged_and_kept():
    teacher, student = _pair()
    report = _train(teacher, student, TrainPlan(steps=40, lr=1e-2, eval_every=10, ema=0.9, patience=100))
    assert report["ema"] == 0.9 and report["fidelity_best"] > report["fidelity_start"]
    assert report["held_out_loss_after"] < report["held_out_loss_before"]


def test_stop_and_keep_best_ends_early_with_the_best_weights_and_publishes_the_curve():
    teacher, student = _pair()
    seen: list[dict] = []
    ctx = TaskContext(on_metric=seen.append)
    batches, *_ = _setup(teacher, 200)

    class StopAfter:  # the user presses "Stop and keep best" while step 23 trains
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            if index == 22:
                ctx.request_stop()
            return batches[index]

    report = _train(teacher, student, TrainPlan(steps=200, lr=1e-2, eval_every=10, patience=100), ctx=ctx,
                    batches=StopAfter())
    assert report["stopped"].startswith("stopped by the user") and report["steps"] == 23
    assert report["fidelity_curve"][-1]["step"] == 23  # judged once more when stopped
    assert report["fidelity_best"] > report["fidelity_start"]
    losses = [m for m in seen if "loss" in m]
    assert [m["step"] for m in losses] == list(range(1, 24)) and all(m["kind"] == "train" for m in seen)
    assert [m["step"] for m in seen if "fidelity" in m] == [0, 10, 20, 23]


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path):
    plan = TrainPlan(steps=40, lr=1e-2, eval_every=10, patience=100)
    teacher, student = _pair()
    whole = _train(teacher, student, plan)
    uninterrupted = copy.deepcopy(student.state_dict())

    checkpoint = tmp_path / "run.pt"
    batches, *_ = _setup(teacher, 40)

    class Killed(Exception):
        pass

    class KillAt:  # the process dies while building batch 26 (after the step-20 checkpoint)
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            if index == 25:
                raise Killed
            return batches[index]

    teacher, student = _pair()
    with pytest.raises(Killed):
        _train(teacher, student, plan, batches=KillAt(), resume=checkpoint)
    assert checkpoint.is_file()
    teacher, student = _pair()  # a new process: the same job from scratch
    resumed = _train(teacher, student, plan, resume=checkpoint)
    assert resumed["resumed_from_step"] == 20 and resumed["steps"] == 40
    assert [p["step"] for p in resumed["fidelity_curve"]] == [0, 10, 20, 30, 40]
    assert resumed["fidelity_best"] == pytest.approx(whole["fidelity_best"], rel=1e-5)
    for key, value in student.state_dict().items():
        assert torch.allclose(value, uninterrupted[key], atol=1e-6), key
    assert not checkpoint.exists()  # finished: the next run starts afresh


def test_a_checkpoint_of_another_plan_is_not_resumed(tmp_path):
    checkpoint = tmp_path / "run.pt"
    teacher, student = _pair()
    batches, *_ = _setup(teacher, 40)

    class Stop(Exception):
        pass

    def killed(index):
        if index == 15:
            raise Stop
        return batches[index]

    class KillAt:
        __len__ = batches.__len__
        __getitem__ = staticmethod(killed)

    with pytest.raises(Stop):
        _train(teacher, student, TrainPlan(steps=40, lr=1e-2, eval_every=10), batches=KillAt(), resume=checkpoint)
    teacher, student = _pair()
    report = _train(teacher, student, TrainPlan(steps=40, lr=5e-3, eval_every=10), resume=checkpoint)
    assert "resumed_from_step" not in report


def test_only_the_trainable_parameters_move_and_labelled_batches_add_the_task_loss():
    teacher, student = _pair()
    first = student[0]
    frozen = copy.deepcopy(first.state_dict())
    batches, *_ = _setup(teacher, 30)
    labelled = [{"img": b, "target": torch.zeros(b.shape[0], 4, 16, 16)} for b in batches]
    calls: list[int] = []

    def task_loss(outputs, batch):
        calls.append(1)
        return torch.nn.functional.mse_loss(outputs, batch["target"])

    report = _train(teacher, student, TrainPlan(steps=30, lr=1e-2, eval_every=10, patience=100), batches=labelled,
                    task_loss=task_loss, trainable=lambda m: list(m[3].parameters()))
    assert all(torch.equal(frozen[k], v) for k, v in first.state_dict().items())
    assert len(calls) == 30 and report["task_loss"]["batches"] == 30


def test_training_uses_every_core_even_after_a_one_thread_measurement():
    import os

    teacher, student = _pair()
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what a one-thread benchmark or fidelity check leaves behind
    try:
        report = _train(teacher, student, TrainPlan(steps=2, lr=1e-2, eval_every=1, patience=100))
        assert torch.get_num_threads() == 1  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert report["device"]["name"].endswith(f"{len(os.sched_getaffinity(0))} threads)")


class _Endless:
    """As many random batches as asked for, made on demand (a time budget, not the steps, ends the run)."""

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int):
        return torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(index))


def test_a_time_budget_schedules_the_learning_rate_over_the_minutes_not_the_planned_steps():
    # Planned steps far beyond what the budget allows: the warm-up and the cosine decay follow the clock,
    # so the run reaches its full rate and ends decayed. (Scheduled on steps, it would still be warming
    # up — at a tenth of its rate — when the minutes ran out.)
    # Judged every step with a budget of seconds, so a loaded machine (slow steps) still samples the peak
    # and the end of the schedule (at 1.8 s and every 5 steps it once missed them in CI).
    teacher, student = _pair()
    plan = TrainPlan(steps=10**9, minutes=0.1, lr=1e-2, eval_every=1, patience=10**6, warmup=0.2)
    _, held_out, forward, criterion, judge = _setup(teacher, 1)
    report = train(student, teacher, batches=_Endless(), held_out=held_out, forward=forward, criterion=criterion,
                   judge=judge, plan=plan, ctx=TaskContext())
    rates = [point["lr"] for point in report["fidelity_curve"][1:]]
    assert report["stopped"] == "budget (minutes)" and len(rates) >= 4
    assert max(rates) > 0.8 * plan.lr  # warmed up within the budget
    assert rates[-1] < 0.1 * plan.lr  # and decayed by its end
    assert rates.index(max(rates)) < len(rates) - 1


def test_a_step_budget_warms_up_and_decays_over_the_planned_steps():
    teacher, student = _pair()
    report = _train(teacher, student, TrainPlan(steps=100, lr=1e-2, eval_every=10, patience=100, warmup=0.1))
    rates = {point["step"]: point["lr"] for point in report["fidelity_curve"][1:]}
    assert rates[10] == pytest.approx(0.91e-2, rel=0.01)  # step 10 is taken at progress 0.09 of a 0.1 warm-up
    assert rates[100] < 0.011 * 1e-2  # cosine down to 1 % of the rate at the last step
    after_warmup = [rate for step, rate in rates.items() if step >= 20]
    assert after_warmup == sorted(after_warmup, reverse=True) and after_warmup[0] > 0.95e-2


def test_the_ema_decay_ramps_up_to_its_cap_and_integer_buffers_follow_the_student():
    from studio.train import ramped_ema

    update = ramped_ema(0.5)
    averaged, current = [torch.zeros(3)], [torch.ones(3)]
    update(averaged, current, torch.tensor(0))  # first update: decay min(0.5, 1/10) → the average moves 90 %
    assert torch.allclose(averaged[0], torch.full((3,), 0.9))
    update(averaged, [torch.zeros(3)], torch.tensor(90))  # late: decay capped at 0.5
    assert torch.allclose(averaged[0], torch.full((3,), 0.45))
    counts = [torch.tensor(3)]
    update(counts, [torch.tensor(7)], torch.tensor(5))
    assert int(counts[0]) == 7


def test_without_keep_best_an_ema_run_ends_on_the_averaged_weights_not_the_last_step():
    def final(ema: float):
        teacher, student = _pair()
        _train(teacher, student, TrainPlan(steps=30, lr=1e-2, eval_every=10, ema=ema, patience=100, keep_best=False))
        return {k: v for k, v in student.state_dict().items() if v.is_floating_point()}

    last, barely, averaged = final(0.0), final(1e-9), final(0.8)  # EMA off; an average of the last step only; EMA
    assert all(torch.allclose(last[k], barely[k], atol=1e-6) for k in last)  # the same trajectory, its last point
    assert max(float((last[k] - averaged[k]).abs().max()) for k in last) > 1e-3  # the average lags behind it
