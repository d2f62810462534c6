"""Recovery with labels: when the model's frames are a labelled dataset, pruning recovery mixes the
model's own loss (Ultralytics' detection loss) into distillation, on the training side only.

The dataset is built here from the bundled bikes.mp4 and labelled *by the unpruned model itself*
(teacher labels at confidence 0.25, written as YOLO .txt files, with a note saying so): it exercises
the labelled path with real frames and real boxes, not ground truth."""

from __future__ import annotations

import cv2
import pytest

from studio.data import FrameSet
from studio.registry import default_registry
from studio.tasks import TaskContext


@pytest.fixture(scope="module")
def teacher_labelled_folder(tmp_path_factory, fall_handle):
    from studio.media import bundled_video
    from studio.runtime.backends import TorchBackend
    from studio.runtime.predictor import Predictor
    from studio.sources import take_frames

    root = tmp_path_factory.mktemp("bikes-teacher-labelled")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    (root / "LABELS.md").write_text("Labels are yolov8s-fall's own predictions (conf ≥ 0.25) on bundled bikes.mp4 "
                                    "frames: teacher labels for tests, not ground truth.\n")
    teacher = Predictor(fall_handle, TorchBackend(fall_handle.torch_module), conf=0.25)
    boxes = 0
    for index, frame in enumerate(take_frames(bundled_video("bikes.mp4"), 250)[::12]):
        height, width = frame.shape[:2]
        found = teacher(frame).result
        lines = [f"{c} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} "
                 f"{(y1 - y0) / height:.6f}" for (x0, y0, x1, y1), c in zip(found.boxes, found.class_ids, strict=True)]
        boxes += len(lines)
        cv2.imwrite(str(root / "images" / f"bikes_{index:03d}.jpg"), frame)
        (root / "labels" / f"bikes_{index:03d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    assert boxes > 10  # the teacher does find people in this video
    return root


@pytest.mark.slow
def test_labels_on_the_training_side_add_the_models_own_loss(fall_handle, teacher_labelled_folder, tmp_path):
    plugin = default_registry().get("prune.channels")
    frames = FrameSet.open(teacher_labelled_folder)
    ctx = TaskContext(workdir=tmp_path, frames=frames)
    settings = plugin.Settings(ratio=0.3, recovery_steps=4, recovery_batch=2, recovery_imgsz=256,
                               recovery_recalibrate=False)
    plugin.apply(fall_handle, settings, ctx)
    recovery = ctx.reports[-1]["recovery"]
    labels = recovery["labels"]
    training = {span.path for span in frames.calibration}
    assert labels["used"] and labels["labelled"] == len(training) and labels["boxes"] > 0
    assert recovery["task_loss"]["batches"] == recovery["steps"] == 4
    assert "choosing frames" in recovery["judged_on"]
    assert recovery["held_out_loss_after"] <= recovery["held_out_loss_before"]
    # Labels switched off: plain distillation batches, no task loss (checked without training again).
    from studio.recovery.distill import _batches
    from studio.train import TrainPlan

    batches, task_loss, used, _, _ = _batches(frames.calibration_frames(2)[0], [], fall_handle,
                                           fall_handle.torch_module, (256, 256), TrainPlan(steps=2, batch=2), None,
                                           False, ctx)
    assert task_loss is None and not used["used"] and not isinstance(batches[0], dict)
