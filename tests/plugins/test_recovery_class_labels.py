"""Recovery with class labels: when the model's frames are a class-folder dataset (ImageNet's and Ultralytics'
classify layout, ``ROOT/<split>/<class>/*.jpg``), pruning recovery mixes the classifier's cross-entropy
against each frame's folder into distillation, on the training side only.

The dataset is built here from frames of the bundled bikes.mp4 and Big Buck Bunny, each written into the
folder named by *the unpruned EfficientNet-Lite0's own top-1 class* (teacher labels, with a note saying
so): it exercises the labelled path with real frames and real ImageNet class names, not ground truth."""

from __future__ import annotations

import math

import cv2
import pytest

from studio.data import FrameSet
from studio.registry import default_registry
from studio.tasks import TaskContext

UNKNOWN = "not a class of the model"


@pytest.fixture(scope="module")
def teacher_labelled_classes(tmp_path_factory, effnet_handle):
    """(root, {image path: the teacher's top-1 index}): Ultralytics' layout with train/ and val/ splits; val/
    folders spell the class names with capitals and underscores ("Mountain_Bike"), and one folder names no
    ImageNet class (its frames are labelled by nothing)."""
    import torch

    from studio.data import Span, read_spread, video_length
    from studio.media import bundled_video
    from studio.runtime.backends import TorchBackend
    from studio.runtime.predictor import Predictor
    from studio.train_class_labels import imagenet_synsets

    root = tmp_path_factory.mktemp("teacher-labelled-classes")
    (root / "LABELS.md").write_text("Each frame's folder is efficientnet-lite0's own top-1 ImageNet class on it: "
                                    "teacher labels for tests, not ground truth.\n")
    labels = effnet_handle.labels
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this shared test host oversubscribes two threads (3 s a frame instead of 0.05)
    try:
        teacher = Predictor(effnet_handle, TorchBackend(effnet_handle.torch_module))
        truth = {}
        for video, count in (("bikes.mp4", 24), ("bigbuckbunny.mp4", 12)):
            path = bundled_video(video)
            for index, frame in enumerate(read_spread((Span(path, 0, video_length(path)[0]),), count)):
                top = int(teacher(frame).result.class_ids[0])
                name = labels[top] if labels.count(labels[top]) == 1 else imagenet_synsets()[top][0]  # "crane" ×2
                split = "train" if index % 3 else "val"
                folder = root / split / (name if split == "train" else name.title().replace(" ", "_"))
                if index % 6 == 5:
                    folder = root / "train" / UNKNOWN  # a frame whose folder the model has no class for
                folder.mkdir(parents=True, exist_ok=True)
                file = folder / f"{video.split('.')[0]}_{index:03d}.jpg"
                cv2.imwrite(str(file), frame)
                truth[file] = None if folder.name == UNKNOWN else top
    finally:
        torch.set_num_threads(threads)
    assert len({t for t in truth.values() if t is not None}) >= 4  # the teacher sees several classes here
    return root, truth


def test_class_folders_map_to_the_models_class_indices_and_an_unknown_folder_is_dropped(
        teacher_labelled_classes, effnet_handle):
    from studio.train_class_labels import class_training_labels

    root, truth = teacher_labelled_classes
    frames = FrameSet.open(root)  # the class-folder layout opens as any folder of images: split by file
    training = {span.path for span in frames.calibration}
    expected = {path: top for path, top in truth.items() if path in training and top is not None}
    items, info = class_training_labels(frames, tuple(effnet_handle.labels))
    assert {item.path: item.label for item in items} == expected  # the teacher's own index, file by file
    assert any(path.parent.parent.name == "val" for path in expected)  # "Mountain_Bike" found "mountain bike"
    unknown_on_training_side = [p for p in training if p.parent.name == UNKNOWN]
    assert unknown_on_training_side  # the split leaves some of them on the training side (stable hash)
    assert info["dropped_folders"] == 1 and info["dropped_names"] == [UNKNOWN]
    assert info["dropped_images"] == len(unknown_on_training_side)
    assert info["labelled"] == len(expected) and info["classes"] == len(set(expected.values()))
    assert info["names"].startswith("ImageNet")


@pytest.mark.slow
def test_a_pruned_classifier_recovers_with_cross_entropy_on_its_labelled_training_frames(
        teacher_labelled_classes, effnet_handle, tmp_path, monkeypatch):
    import studio.recovery.distill as distill
    import studio.train_class_labels as class_labels

    root, truth = teacher_labelled_classes
    read = []
    original = class_labels.read_image
    monkeypatch.setattr(class_labels, "read_image", lambda path: read.append(path) or original(path))
    monkeypatch.setattr(distill, "CHOOSING_FRAMES", 6)  # held-out fidelity on fewer frames: this host is slow
    plugin = default_registry().get("prune.channels")
    frames = FrameSet.open(root)
    ctx = TaskContext(workdir=tmp_path, frames=frames)
    settings = plugin.Settings(ratio=0.3, recovery_steps=3, recovery_batch=2, recovery_recalibrate=False)
    pruned = plugin.apply(effnet_handle, plugin.Settings(ratio=0.3), TaskContext(workdir=tmp_path))
    recovery = distill.recover(effnet_handle, pruned.torch_module, settings, plugin.id, ctx, steps=3)
    labels = recovery["labels"]
    training = {span.path for span in frames.calibration}
    labelled = {path for path, top in truth.items() if path in training and top is not None}
    assert labels["used"] and labels["format"] == "class folders" and "cross-entropy" in labels["loss"]
    assert labels["labelled"] == len(labelled) and labels["dropped_folders"] == 1
    assert labels["classes"] == len({truth[path] for path in labelled})
    assert recovery["task_loss"]["batches"] == recovery["steps"] == 3 and recovery["task_loss"]["start"] > 0
    assert "choosing frames" in recovery["judged_on"]
    # Every image the batches read was a labelled training-side file: 3 steps × 2 frames …
    assert len(read) == 6 and set(read) <= labelled
    # … and none of the labelled runs held out to choose the checkpoint.
    from studio.train_class_labels import class_training_labels
    from studio.train_data import choosing_split

    held = {item.path for item in choosing_split(class_training_labels(frames, tuple(effnet_handle.labels))[0],
                                                 distill.CHOOSING_RUNS, distill.CHOOSING_HELD_OUT)[1]}
    assert held and not set(read) & held and 0 < recovery["frames"]["choosing"] <= len(held)


def test_no_judging_side_file_is_ever_in_the_labelled_training_set(teacher_labelled_classes, effnet_handle):
    from studio.recovery.distill import _batches
    from studio.train import TrainPlan

    root, truth = teacher_labelled_classes
    frames = FrameSet.open(root)
    judging = {span.path for span in frames.judging}
    assert judging and any(truth[path] is not None for path in judging)  # labelled frames sit on the judging side
    ctx = TaskContext(frames=frames)
    plan = TrainPlan(steps=40, batch=4)
    batches, task_loss, info, _, sized = _batches([], [], effnet_handle, effnet_handle.torch_module, (224, 224), plan,
                                               None, True, ctx)
    assert task_loss is not None and info["used"] and sized == plan  # no epoch budget: the steps stand
    drawn = {item.path for item in batches.items}
    assert drawn and not drawn & judging and drawn <= {span.path for span in frames.calibration}
    # The same frames given as a step's own "recovery frames" folder are the model's frames: still only one side.
    again, _, _, _, _ = _batches([], [], effnet_handle, effnet_handle.torch_module, (224, 224), plan, root, True, ctx)
    # an epoch budget counts the labelled images the classes hold, not the frames
    _, _, _, _, by_epochs = _batches([], [], effnet_handle, effnet_handle.torch_module, (224, 224),
                                     TrainPlan(epochs=2.0, batch=4), None, True, ctx)
    assert by_epochs.steps == math.ceil(2.0 * len(batches.items) / 4)
    assert {item.path for item in again.items} == drawn


def test_an_ultralytics_classifier_is_distilled_and_trained_on_its_logits_not_its_probabilities():
    """Ultralytics' Classify head returns (probabilities, logits) in eval mode; softened probabilities made the
    distillation KL nearly flat and cross-entropy on them would be wrong. (Random weights: shapes only.)"""
    import torch

    from studio.loaders.ultralytics_yaml import load_bundled
    from studio.recovery.outputs import distillation_outputs
    from studio.recovery.task_loss import task_loss_for

    handle = load_bundled("yolov8n-cls.yaml")
    module = handle.torch_module.eval()
    images = torch.rand(2, 3, 224, 224)
    outputs = distillation_outputs(module, images, handle)
    probabilities, logits = module(images)
    assert len(outputs) == 1 and torch.equal(outputs[0], logits) and not torch.equal(logits, probabilities)
    loss, how = task_loss_for(handle, module)
    labels = torch.tensor([3, 7])
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert "cross-entropy" in how and torch.allclose(loss(outputs, {"img": images, "cls": labels}), expected)


def test_a_few_images_in_a_folder_that_happens_to_name_a_class_do_not_replace_the_frames(
        teacher_labelled_classes, effnet_handle, tmp_path):
    """Labelled training trains on the labelled images only: one image in a folder named "brass" among many
    unlabelled ones must not leave a recovery training on that one image (measured on a 921-image folder)."""
    import shutil

    from studio.recovery.distill import MIN_LABELLED_SHARE, _batches
    from studio.train import TrainPlan

    root, _ = teacher_labelled_classes
    images = sorted(root.rglob("*.jpg"))
    for number, image in enumerate(images[1:]):  # every frame in folders that name no class of the model …
        folder = tmp_path / "frames" / f"album {number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, folder / f"{number:03d}.jpg")
    (tmp_path / "frames" / "brass").mkdir()
    for name in (f"{k}.jpg" for k in range(20)):  # … but one, on the training side (the split hashes names)
        shutil.copyfile(images[0], tmp_path / "frames" / "brass" / name)
        frames = FrameSet.open(tmp_path / "frames")
        training = [span.path for span in frames.calibration]
        if any(path.parent.name == "brass" for path in training):
            break
        (tmp_path / "frames" / "brass" / name).unlink()
    else:
        pytest.fail("no name put the brass image on the training side")
    ctx = TaskContext(frames=frames)
    plan = TrainPlan(steps=40, batch=4)
    plain = [cv2.imread(str(path)) for path in training]
    batches, task_loss, info, _, sized = _batches(plain, [], effnet_handle, effnet_handle.torch_module, (224, 224),
                                                  plan, None, True, ctx)
    assert MIN_LABELLED_SHARE * len(training) > 1
    assert info["labelled"] == 1 and info["training_images"] == len(training)  # "brass" is found …
    assert task_loss is None and not info["used"] and not isinstance(batches[0], dict)  # … and not trained alone
    assert len(batches.frames) == len(training) and sized.steps == plan.steps  # distillation on every frame
    assert f"labels on 1 of {len(training)} training images" in info["note"]
