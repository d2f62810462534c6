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


def _train(teacher, student, plan):
    batches, held_out, forward, criterion, judge = _setup(teacher, plan.steps)
    return train(student, teacher, batches=batches, held_out=held_out, forward=forward, criterion=criterion,
                 judge=judge, plan=plan, ctx=TaskContext())


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
    stalled = _train(teacher, student, TrainPlan(steps=200, lr=0.0, eval_every=5, patience=2, batchnorm="frozen"))
    assert stalled["stopped"].startswith("fidelity did not rise") and stalled["steps"] == 10


def test_ema_weights_are_judged_and_kept():
    teacher, student = _pair()
    report = _train(teacher, student, TrainPlan(steps=40, lr=1e-2, eval_every=10, ema=0.9, patience=100))
    assert report["ema"] == 0.9 and report["fidelity_best"] > report["fidelity_start"]
    assert report["held_out_loss_after"] < report["held_out_loss_before"]
