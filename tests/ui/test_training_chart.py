"""Live training figures reach the GUI thread as Job.metric, Stop reaches the job's context, and the
training chart draws what it is given with the best evaluation marked."""

from __future__ import annotations

import threading

import numpy as np

from ui.jobs import Job
from ui.training_chart import TrainingChart, recovery_reports, recovery_summary
from ui.training_devices import describe, resolve


def test_metrics_arrive_on_the_gui_thread_and_stop_reaches_the_context(qtbot):
    stop_seen = threading.Event()

    def trains(ctx):
        for step in range(1, 6):
            ctx.metric(kind="train", step=step, steps=100, loss=1.0 / step)
        while not ctx.stop_requested:  # a trainer checks between steps
            ctx.check_cancelled()
            threading.Event().wait(0.01)
        stop_seen.set()
        return "kept the best"

    job = Job("train", trains)
    arrived = []
    job.metric.connect(lambda fields: arrived.append((fields, threading.current_thread())))
    job.start()
    qtbot.waitUntil(lambda: len(arrived) == 5, timeout=5000)
    assert [fields["step"] for fields, _ in arrived] == [1, 2, 3, 4, 5]  # every figure, in order: none throttled
    assert {thread for _, thread in arrived} == {threading.main_thread()}
    with qtbot.waitSignal(job.succeeded, timeout=5000) as done:
        job.request_stop()
    assert job.ctx.stop_event.is_set() and stop_seen.is_set()
    assert done.args == ["kept the best"]  # stop is not cancel: the job finishes and its result counts


def test_the_chart_plots_its_points_and_marks_the_first_best(qtbot):
    chart = TrainingChart()
    qtbot.addWidget(chart)
    chart.reset("cpu (test)")
    chart.add({"kind": "train", "step": 0, "steps": 60, "fidelity": 0.4, "best": 0.4})
    for step in range(1, 61):
        chart.add({"kind": "train", "step": step, "steps": 60, "loss": 2.0 - step / 60})
        if step % 20 == 0:
            value = {20: 0.7, 40: 0.7, 60: 0.6}[step]  # a tie: the trainer keeps the first
            chart.add({"kind": "train", "step": step, "steps": 60, "fidelity": value, "best": 0.7})
    chart.set_progress_text("recovery step 60/60, held-out fidelity 0.700, about 12 s left")
    chart.redraw()
    x, y = chart.loss_curve.getData()
    assert np.array_equal(x, np.arange(1, 61)) and y[0] == 2.0 - 1 / 60
    x, y = chart.fidelity_curve.getData()
    assert list(x) == [0, 20, 40, 60] and list(y) == [0.4, 0.7, 0.7, 0.6]
    best = chart.best_marker.getData()
    assert list(best[0]) == [20] and list(best[1]) == [0.7]
    text = chart.numbers.text()
    assert "cpu (test)" in text and "best 0.700 at step 20" in text and "about 12 s left" in text
    chart.reset("next run")  # a new training job starts from nothing
    assert chart.loss_curve.getData()[0] is None or len(chart.loss_curve.getData()[0]) == 0
    assert len(chart.best_marker.getData()[0]) == 0


def test_redraws_are_coalesced_not_one_per_figure(qtbot):
    chart = TrainingChart()
    qtbot.addWidget(chart)
    before = chart.redraws
    for step in range(1, 501):
        chart.add({"kind": "train", "step": step, "steps": 500, "loss": 1.0})
    qtbot.waitUntil(lambda: chart.redraws > before, timeout=2000)
    assert chart.redraws - before <= 2 and len(chart.loss_curve.getData()[0]) == 500


def test_report_summary_and_device_words():
    recovery = {"stopped": "stopped by the user (best weights kept)", "steps": 3, "planned_steps": 40,
                "best_step": 0, "fidelity_best": 0.12, "minutes": 0.4, "device": {"device": "cpu", "name": "cpu (x)"}}
    report = {"steps": [{"details": [{"ratio": 0.3, "recovery": recovery}]}, {"details": [{}]}]}
    assert recovery_reports(report) == [recovery] and recovery_reports(None) == []
    assert recovery_summary(recovery).startswith("stopped by the user (best weights kept) at step 3 of 40")
    cpu_only = [("cpu", "cpu (x)")]
    gpu = [("cpu", "cpu (x)"), ("cuda", "NVIDIA H100")]
    assert describe(cpu_only) == "Training device: CPU — no GPU seen by torch"
    assert "CUDA: NVIDIA H100" in describe(gpu)
    assert resolve("auto", gpu) == "CUDA: NVIDIA H100" and resolve("auto", cpu_only) == "cpu (x)"
    assert "not present" in resolve("cuda", cpu_only) and "'auto'" in resolve("auto", None)
