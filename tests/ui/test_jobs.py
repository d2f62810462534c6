"""Cancel answers at once: a job stuck in a call that never checks for cancellation is abandoned —
reported cancelled, its late result discarded — and a job that checks stops by itself. A job that crashes
is one line in the window and a traceback in the studio's log."""

from __future__ import annotations

import time

from ui.jobs import ABANDON_AFTER_S, Job


def test_a_job_that_never_checks_is_abandoned_and_its_result_discarded(qtbot):
    def stuck(ctx):
        time.sleep(3.0)  # a native call: no cancellation check for seconds
        return "late result"

    job = Job("stuck", stuck)
    seen = []
    job.succeeded.connect(lambda result: seen.append(result))
    job.start()
    started = time.monotonic()
    with qtbot.waitSignal(job.cancelled, timeout=int((ABANDON_AFTER_S + 1.5) * 1000)):
        job.cancel()
    answered = time.monotonic() - started
    assert not job.running and answered < 3.0  # well before the call returned
    assert job.wait(5.0)  # the thread unwinds in the background…
    qtbot.wait(200)
    assert seen == [] and job.result is None  # …and what it produced is dropped


def test_a_job_that_checks_stops_by_itself_and_ends_once(qtbot):
    def polite(ctx):
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    job = Job("polite", polite)
    ends = []
    job.finished.connect(lambda: ends.append("finished"))
    job.start()
    with qtbot.waitSignal(job.cancelled, timeout=2000):
        job.cancel()
    qtbot.wait(int(ABANDON_AFTER_S * 1000) + 300)  # the abandon timer fires after the job ended: no second end
    assert ends == ["finished"] and not job.running



def test_a_job_that_crashes_reports_one_line_and_logs_its_traceback(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_STUDIO_CACHE", str(tmp_path))

    def buggy_plugin_call(ctx):
        return {}["missing key"]

    job = Job("Export demo", buggy_plugin_call)
    with qtbot.waitSignal(job.failed, timeout=5000) as failure:
        job.start()
    message = failure.args[0]
    log = tmp_path / "logs" / "studio.log"
    assert "\n" not in message and message.startswith("Export demo failed: KeyError")
    assert str(log) in message  # the dialog names where the traceback went
    assert "buggy_plugin_call" in log.read_text()


def test_a_runner_adopted_from_a_closed_dialog_is_dropped(qtbot):
    from PySide6.QtCore import QObject
    from PySide6.QtWidgets import QApplication

    from ui.jobs import JobRunner

    window_runner = JobRunner()
    owner = QObject()
    window_runner.adopt(JobRunner(owner))
    assert len(window_runner._adopted) == 1
    owner.deleteLater()
    qtbot.waitUntil(lambda: not window_runner._adopted, timeout=2000)
    QApplication.processEvents()
    assert window_runner.cancel_all() == []
