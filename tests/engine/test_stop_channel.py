"""How a worker process hears "Stop and keep best" and reports live figures: a stop file its context
watches, and ``@metric`` lines its parent parses (studio.progress, studio.subprocess_job)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from studio.progress import METRIC_PREFIX, PROGRESS_ENV, STOP_FILE_ENV, cli_context


def test_the_stop_file_sets_the_contexts_stop_request(tmp_path, monkeypatch):
    stop = tmp_path / "stop"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop))
    ctx = cli_context()
    sub = ctx.sub(0.2, 0.8)
    time.sleep(0.5)
    assert not sub.stop_requested
    stop.touch()
    deadline = time.monotonic() + 5
    while not sub.stop_requested and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sub.stop_requested and not ctx.cancel_event.is_set()  # stop is not cancel


def test_metrics_are_json_lines_for_a_parent_and_silent_otherwise(tmp_path):
    script = ("from studio.progress import cli_context\n"
              "ctx = cli_context()\n"
              "ctx.sub(0, 0.5).metric(kind='train', step=3, loss=0.25)\n")
    for mode, expected in (("lines", [{"kind": "train", "step": 3, "loss": 0.25}]), ("", [])):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", PROGRESS_ENV: mode, "PYTHONPATH": "."})
        assert done.returncode == 0, done.stderr
        metrics = [json.loads(line[len(METRIC_PREFIX):]) for line in done.stderr.splitlines()
                   if line.startswith(METRIC_PREFIX)]
        assert metrics == expected
