"""Labelled training data: labels found where Ultralytics looks for them, read from the training side
only, and moved with every crop and flip so a box still frames its object in the network input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from studio.data import FrameSet
from studio.train_labels import LabelledBatches, LabelledFrame, training_labels, yolo_label_file


def _dataset(root, count=20):
    """A YOLO folder of synthetic frames, each with one white rectangle and its label."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        image = np.zeros((240, 320, 3), np.uint8)
        x0, y0 = int(rng.integers(20, 180)), int(rng.integers(20, 120))
        w, h = int(rng.integers(40, 120)), int(rng.integers(40, 100))
        image[y0:y0 + h, x0:x0 + w] = 255
        cv2.imwrite(str(root / "images" / f"f{index:03d}.png"), image)
        (root / "labels" / f"f{index:03d}.txt").write_text(
            f"0 {(x0 + w / 2) / 320:.6f} {(y0 + h / 2) / 240:.6f} {w / 320:.6f} {h / 240:.6f}\n")
    return root


def test_label_files_are_found_where_ultralytics_looks(tmp_path):
    root = _dataset(tmp_path / "set", 2)
    assert yolo_label_file(root / "images" / "f000.png") == root / "labels" / "f000.txt"
    beside = tmp_path / "flat"
    beside.mkdir()
    (beside / "a.jpg").write_bytes(b"")
    (beside / "a.txt").write_text("")
    assert yolo_label_file(beside / "a.jpg") == beside / "a.txt"
    assert yolo_label_file(root / "images" / "missing.png") is None


def test_only_the_training_side_is_read_and_no_judging_frame_is_ever_trained_on(tmp_path):
    frames = FrameSet.open(_dataset(tmp_path / "set", 30))
    items, info = training_labels(frames, ("box",), 1000)
    judging = {span.path for span in frames.judging}
    training = {span.path for span in frames.calibration}
    assert judging and items and info["labelled"] == len(items) == len(training)
    assert {item.path for item in items} == training and not judging & training
    assert info["boxes"] == len(items)


@pytest.mark.parametrize("index", range(6))
def test_boxes_follow_every_crop_flip_and_letterbox(tmp_path, index, fall_handle):
    frames = FrameSet.open(_dataset(tmp_path / "set", 12))
    items, _ = training_labels(frames, tuple(fall_handle.labels), 1000)
    batch = LabelledBatches(items, fall_handle, (256, 256), 1, seed=3, count=10)[index]
    image = batch["img"][0].numpy().transpose(1, 2, 0)  # RGB 0..1, letterboxed (padding is grey, 114/255)
    bright = np.argwhere(image.mean(axis=2) > 0.6)
    if not len(batch["bboxes"]):  # the crop cut the rectangle below a quarter of its area: dropped
        assert len(bright) < 0.25 * 40 * 40
        return
    cx, cy, w, h = batch["bboxes"][0].numpy() * 256
    (y0, x0), (y1, x1) = bright.min(axis=0), bright.max(axis=0) + 1
    assert abs(cx - (x0 + x1) / 2) < 2 and abs(cy - (y0 + y1) / 2) < 2
    assert abs(w - (x1 - x0)) < 3 and abs(h - (y1 - y0)) < 3
    assert batch["cls"].shape == (1, 1) and batch["batch_idx"].tolist() == [0.0]


def test_a_class_the_model_does_not_have_is_not_trained(tmp_path):
    root = _dataset(tmp_path / "set", 10)
    for label in (root / "labels").iterdir():
        label.write_text("7 0.5 0.5 0.2 0.2\n")
    items, info = training_labels(FrameSet.open(root), ("a", "b"), 1000)
    assert items and info["boxes"] == 0 and all(isinstance(i, LabelledFrame) for i in items)


def _coco_dataset(root, yolo, annotation="annotations.json"):
    """``root/images`` (the YOLO folder's images) and a COCO file labelling their rectangles as category 9 "box"."""
    import json
    import shutil

    shutil.copytree(yolo / "images", root / "images")
    images, annotations = [], []
    for number, image in enumerate(sorted((root / "images").iterdir())):
        cx, cy, w, h = (float(v) for v in (yolo / "labels" / f"{image.stem}.txt").read_text().split()[1:])
        images.append({"id": number, "file_name": image.name})
        annotations.append({"id": number, "image_id": number, "category_id": 9, "iscrowd": 0,
                            "bbox": [(cx - w / 2) * 320, (cy - h / 2) * 240, w * 320, h * 240]})
    (root / annotation).write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 9, "name": "box"}]}))
    return root


def test_a_coco_json_labels_the_training_side_by_category_name(tmp_path):
    root = _coco_dataset(tmp_path / "coco", _dataset(tmp_path / "yolo", 10))
    frames = FrameSet.open(root)
    items, info = training_labels(frames, ("other", "box"), 1000)
    assert info["format"] == "COCO json" and {i.path for i in items} == {s.path for s in frames.calibration}
    assert all(item.classes.tolist() == [1] for item in items)  # matched by name, not by COCO id
    bright = np.argwhere(items[0].image.mean(axis=2) > 128)
    assert np.allclose(items[0].boxes[0], [*bright.min(axis=0)[::-1], *(bright.max(axis=0) + 1)[::-1]], atol=1)


def test_the_coco_file_is_the_json_that_holds_images_and_annotations_not_the_first_json(tmp_path):
    """Label Studio's COCO export is ``result.json``; a labelling tool's config beside it sorts first."""
    root = _coco_dataset(tmp_path / "coco", _dataset(tmp_path / "yolo", 10), annotation="result.json")
    (root / "config.json").write_text('["box", "other"]')
    frames = FrameSet.open(root)
    items, info = training_labels(frames, ("other", "box"), 1000)
    assert info["format"] == "COCO json" and {i.path for i in items} == {s.path for s in frames.calibration}
    assert all(item.classes.tolist() == [1] for item in items)


def test_an_image_without_a_label_file_is_a_background_in_a_labels_folder_and_unlabelled_beside_images(tmp_path):
    """As Ultralytics' trainer (and the studio's labelled evaluation) read an images/ + labels/ dataset: an image
    without a label file has no objects. Beside plain images a missing .txt says nothing."""
    import shutil

    root = _dataset(tmp_path / "set", 30)
    removed = {label.stem for label in sorted((root / "labels").iterdir())[::2]}
    flat = tmp_path / "flat"
    shutil.copytree(root / "images", flat)
    for label in (root / "labels").iterdir():
        if label.stem in removed:
            label.unlink()
        else:
            shutil.copy(label, flat / label.name)
    frames = FrameSet.open(root)
    items, info = training_labels(frames, ("box",), 1000)
    assert {item.path for item in items} == {span.path for span in frames.calibration}
    backgrounds = [item for item in items if item.path.stem in removed]
    assert backgrounds and all(len(item.boxes) == 0 for item in backgrounds)
    assert all(len(item.boxes) == 1 for item in items if item.path.stem not in removed)
    assert info["backgrounds_without_label_file"] == len(backgrounds)
    assert info["labelled_available"] == info["training_images"]

    frames = FrameSet.open(flat)
    items, info = training_labels(frames, ("box",), 1000)
    labelled = {span.path for span in frames.calibration if span.path.stem not in removed}
    assert labelled and {item.path for item in items} == labelled
    assert info["backgrounds_without_label_file"] == 0 and info["training_images"] > len(labelled)


def _class_folders(root, folders, per_folder=4):
    """``root/<split>/<folder>/*.png`` (split ``train`` unless the folder is given as ``split/folder``):
    synthetic frames, class by class a different grey level."""
    for level, folder in enumerate(folders):
        where = root / folder if "/" in folder else root / "train" / folder
        where.mkdir(parents=True)
        for index in range(per_folder):
            cv2.imwrite(str(where / f"f{index}.png"), np.full((96, 128, 3), 40 * level, np.uint8))
    return root


def test_class_folders_match_imagenet_names_synonyms_and_synsets_case_and_underscores_aside():
    from studio.imagenet import imagenet_labels
    from studio.train_class_labels import ClassNames

    names = ClassNames(imagenet_labels())
    assert names.imagenet
    assert names.match("tench") == names.match("TENCH") == names.match("n01440764") == 0
    assert names.match("Great_White_Shark") == names.match("man-eater") == names.match("white shark") == 2
    assert names.match("Tiger  shark") == 3
    assert names.match("crane") == "ambiguous"  # a bird and a machine: ImageNet names both "crane"
    assert names.match("not a class") is None
    own = ClassNames(("great white shark", "cat"))  # not an ImageNet model: its own names only
    assert not own.imagenet and own.match("GREAT_WHITE_SHARK") == 0 and own.match("man-eater") is None


def test_class_folders_label_only_the_training_side_and_unknown_folders_are_dropped(tmp_path):
    from studio.train_class_labels import class_training_labels

    root = _class_folders(tmp_path / "set", ["cat", "Dog", "val/hot_dog", "zebra"], per_folder=8)
    cv2.imwrite(str(root / "loose.png"), np.zeros((32, 32, 3), np.uint8))  # in no class folder: unlabelled
    frames = FrameSet.open(root)
    items, info = class_training_labels(frames, ("cat", "dog", "hot dog"))
    judging = {span.path for span in frames.judging}
    training = {span.path for span in frames.calibration}
    expected = {p: {"cat": 0, "Dog": 1, "hot_dog": 2}[p.parent.name] for p in training if p.parent.name != "zebra"
                and p.parent != root}
    assert {item.path: item.label for item in items} == expected and not judging & {item.path for item in items}
    assert info["dropped_folders"] == 1 and info["dropped_names"] == ["zebra"] and info["classes"] == 3
    assert info["dropped_images"] == len(training) - len(expected) > 0


def test_class_batches_keep_each_frames_label_through_crops_and_flips(tmp_path, effnet_handle):
    from studio.train_class_labels import ClassBatches, class_training_labels

    frames = FrameSet.open(_class_folders(tmp_path / "set", ["black", "white"], per_folder=6))
    for path in (tmp_path / "set" / "train" / "white").iterdir():
        cv2.imwrite(str(path), np.full((96, 128, 3), 255, np.uint8))
    items, _ = class_training_labels(frames, ("black", "white"))
    assert {item.label for item in items} == {0, 1}
    batches = ClassBatches(items, effnet_handle, (224, 224), 8, seed=1, count=5)
    for index in range(5):
        batch = batches[index]
        assert batch["img"].shape == (8, 3, 224, 224) and batch["cls"].dtype.is_floating_point is False
        brightness = batch["img"].mean(dim=(1, 2, 3))  # (x - 127) / 128: black ≈ -1, white ≈ +1 after ±20 %
        assert ((brightness > 0).long() == batch["cls"]).all()
    assert batches[3]["cls"].tolist() == ClassBatches(items, effnet_handle, (224, 224), 8, 1, 5)[3]["cls"].tolist()
