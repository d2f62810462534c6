"""The engine's small shared types: one-line errors, progress spans and cancel, timing summaries, handles."""

from __future__ import annotations

import pytest

from studio.atomic import write_text_atomic
from studio.errors import BadInputError, StudioError
from studio.metrics import summarize_ms
from studio.model import Task, task_noun
from studio.tasks import Cancelled, TaskContext
from tests.unit.handles import handle


def test_an_error_is_one_line_with_its_file_and_fix():
    error = BadInputError("not an ONNX file.\n  (protobuf   parse error)", path="/m/x.onnx", fix="re-export it.")
    assert str(error) == "/m/x.onnx: not an ONNX file. (protobuf parse error) — re-export it"
    assert (error.what, error.path, error.fix) == ("not an ONNX file.\n  (protobuf   parse error)", "/m/x.onnx",
                                                   "re-export it.")
    assert str(StudioError("plain.")) == "plain"
    assert str(Cancelled()) == "cancelled by the user" and isinstance(Cancelled(), StudioError)


def test_progress_of_a_sub_step_maps_onto_its_share_and_is_clamped():
    seen: list[tuple[float, str]] = []
    ctx = TaskContext(on_progress=lambda fraction, text: seen.append((round(fraction, 4), text)))
    step = ctx.sub(0.5, 1.0).sub(0.5, 1.0)
    step.progress(0.5, "half")
    step.progress(2.0, "over")
    ctx.sub(0.2, 0.4).progress(-1.0, "under")
    assert seen == [(0.875, "half"), (1.0, "over"), (0.2, "under")]


def test_cancel_and_stop_reach_every_sub_context_but_reports_do_not():
    ctx = TaskContext()
    sub = ctx.sub(0.0, 0.5)
    sub.add_report({"step": 1})
    assert sub.reports == [{"step": 1}] and ctx.reports == []
    ctx.request_stop()
    assert sub.stop_requested
    ctx.cancel()
    with pytest.raises(Cancelled):
        sub.progress(0.1)
    with pytest.raises(Cancelled):
        sub.sub(0.0, 1.0).check_cancelled()


def test_metrics_reach_the_callback_as_plain_fields():
    got: list[dict] = []
    TaskContext(on_metric=got.append).sub(0, 1).metric(kind="train", step=10, loss=0.3)
    assert got == [{"kind": "train", "step": 10, "loss": 0.3}]
    TaskContext().metric(kind="train")  # no listener: nothing happens


def test_scratch_folders_are_made_inside_the_workdir(tmp_path):
    ctx = TaskContext(workdir=tmp_path / "work")
    first, second = ctx.sub(0, 1).scratch("fp16-"), ctx.scratch("fp16-")
    assert first != second and first.parent == second.parent == tmp_path / "work"
    assert first.name.startswith("fp16-") and first.is_dir()


def test_timing_summary():
    # sorted 1, 2, 3, 4, 100: p95 sits at rank 3.8, 80 % of the way from 4 to 100 (linear interpolation)
    summary = summarize_ms([4.0, 1.0, 3.0, 2.0, 100.0])
    assert summary == {"p50": 3.0, "p95": 80.8, "p99": 96.16, "mean": 22.0, "min": 1.0}


def test_atomic_writes_leave_the_new_text_and_nothing_else(tmp_path):
    target = tmp_path / "sub" / "settings.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "twø")
    assert target.read_text(encoding="utf-8") == "twø"
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_handles_name_their_task_and_flag_random_weights():
    assert task_noun(Task.GENERATE) == "text-generation" and task_noun("obb") == "oriented-box detection"
    assert task_noun("something-new") == "something-new"
    model = handle()
    assert model.display_name == "yolo-net"
    noisy = model.replace(random_weights=True)
    assert noisy.display_name == "yolo-net [RANDOM WEIGHTS]" and model.random_weights is False
    summary = noisy.summary()
    assert summary["name"] == "yolo-net [RANDOM WEIGHTS]" and summary["task"] == "detect"
    assert summary["image_input"]["size"] == [640, 640] and summary["image_input"]["resize"] == "letterbox"
    assert summary["inputs"] == [{"name": "images", "shape": [1, 3, "height", "width"], "dtype": "float32"}]
