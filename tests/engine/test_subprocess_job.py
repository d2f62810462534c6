"""Exports in a child process: the same report, and cancel is a kill that leaves nothing behind."""

from __future__ import annotations

import os
import time

import pytest

from studio.errors import StudioError
from studio.subprocess_job import export_in_subprocess
from studio.tasks import Cancelled, TaskContext


def test_export_in_a_child_process_reports_progress_and_parity(tmp_path):
    seen = []
    report = export_in_subprocess("zoo:yolov3-tiny-coco", ["onnx"], tmp_path,
                                  ctx=TaskContext(on_progress=lambda f, t: seen.append((f, t))))
    item = report["exports"][0]
    assert os.path.isfile(item["path"]) and item["parity"]["agreement"]["map50"] > 0.98
    assert seen and seen[-1][0] > 0.5  # progress lines crossed the process boundary


def test_cancel_kills_the_converter_and_leaves_no_file(tmp_path):
    ctx = TaskContext()
    started = []

    def on_progress(fraction: float, text: str) -> None:
        started.append(time.monotonic())
        if "litert" in text:  # inside the native converter: only a kill stops it
            ctx.cancel()

    ctx.on_progress = on_progress
    with pytest.raises(Cancelled):
        export_in_subprocess("zoo:yolov3-tiny-coco", ["tflite"], tmp_path / "out", ctx=ctx)
    assert started, "the child never reported progress"
    assert list((tmp_path / "out").iterdir()) == []  # staging removed, nothing published


def test_errors_of_the_child_arrive_as_one_line(tmp_path):
    with pytest.raises(StudioError, match="no exporter for pdf"):
        export_in_subprocess("zoo:yolov3-tiny-coco", ["pdf"], tmp_path)
