"""True accuracy against a user's labelled folder, in YOLO or COCO format.

YOLO: ``images/`` and ``labels/`` side by side (or images with ``.txt`` files beside them), each label
line ``class cx cy w h`` normalised to the image; for a segmentation, pose or oriented-box model, the rows of
its task (Ultralytics' dataset formats, all normalised): ``class x1 y1 x2 y2 …`` (a polygon of at least three
points), ``class cx cy w h`` then K × ``x y v`` (or ``x y``), ``class x1 y1 … x4 y4`` (the four corners).
The model's task decides how a row reads (an OBB row and a four-point polygon look alike); a folder whose
rows are all plain boxes judges any model by its boxes.
COCO: a folder holding one ``*.json`` annotation file (``images``, ``annotations`` with ``bbox`` = x, y, w, h
in pixels, ``categories``) and the images.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import BadInputError
from studio.runtime.results import Detections
from studio.sources import IMAGE_SUFFIXES, read_image

ROW_FORMS = {"segment": "class x1 y1 x2 y2 x3 y3 … (a polygon of at least 3 points)",
             "pose": "class cx cy w h then x y v (or x y) for each keypoint",
             "obb": "class x1 y1 x2 y2 x3 y3 x4 y4 (the four corners)"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    boxes: np.ndarray  # (N, 4) xyxy pixels
    classes: np.ndarray  # (N,) int
    # The task's own labels, row-aligned with boxes, in pixels (None when the labels are boxes):
    polygons: tuple[np.ndarray, ...] | None = None  # segmentation: (P, 2) per instance, rasterised when judged
    keypoints: np.ndarray | None = None  # pose: (N, K, 3) x, y, visibility (0 unseen; 1.0 for [K, 2] labels)
    rotated: np.ndarray | None = None  # oriented boxes: (N, 5) xywhr

    def targets(self, height: int, width: int, labels: tuple[str, ...]) -> Detections:
        """The labels as ``Detections`` (score 1), masks drawn at the image's size, for the task metrics."""
        masks = None
        if self.polygons is not None:
            import cv2

            masks = np.zeros((len(self.polygons), height, width), np.uint8)
            for index, polygon in enumerate(self.polygons):
                cv2.fillPoly(masks[index], [np.round(polygon).astype(np.int32)], 1)
            masks = masks.astype(bool)
        return Detections(self.boxes, np.ones(len(self.classes), np.float32), self.classes, labels, masks=masks,
                          keypoints=self.keypoints, rotated=self.rotated)


def yolo_labels(label_file: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for number, line in enumerate(label_file.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise BadInputError(f"line {number} should be 'class cx cy w h'", path=label_file,
                                fix="use YOLO-format labels (normalised centre, width, height)")
        rows.append([float(p) for p in parts[:5]])
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    data = np.asarray(rows, np.float64)
    cx, cy, w, h = data[:, 1] * width, data[:, 2] * height, data[:, 3] * width, data[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
    return boxes, data[:, 0].astype(np.int64)


def _rows(label_file: Path, task: str) -> list[list[float]]:
    rows = []
    for number, line in enumerate(label_file.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise BadInputError(f"line {number} holds a value that is not a number", path=label_file,
                                fix=f"write each line as '{ROW_FORMS[task]}', normalised to the image") from None
        if not _row_fits(task, len(parts)):
            raise BadInputError(f"line {number} has {len(parts)} values: not a row of {task} labels", path=label_file,
                                fix=f"write each line as '{ROW_FORMS[task]}', normalised to the image")
    return rows


def _row_fits(task: str, values: int) -> bool:
    if task == "segment":
        return values >= 7 and values % 2 == 1
    if task == "obb":
        return values == 9
    return values > 5 and ((values - 5) % 3 == 0 or (values - 5) % 2 == 0)


def _keypoint_dims(rows: list[list[float]], kpt_shape: tuple[int, int] | None, label_file: Path) -> tuple[int, int]:
    """(K, 2 or 3) of a file's pose rows: the model's kpt_shape, else what every row's length allows
    (a length both allow reads as x y v, the common [K, 3])."""
    if kpt_shape is not None:
        keypoints, dims = kpt_shape
        if any(len(row) != 5 + keypoints * dims for row in rows):
            raise BadInputError(f"a row is not 'class cx cy w h' then {keypoints} × {'x y v' if dims == 3 else 'x y'}",
                                path=label_file, fix=f"label {keypoints} keypoints per instance, as the model has")
        return keypoints, dims
    lengths = {len(row) - 5 for row in rows}
    if len(lengths) != 1:
        raise BadInputError("pose rows of different lengths", path=label_file,
                            fix="label the same keypoints on every instance (x y v each)")
    values = lengths.pop()
    dims = 3 if values % 3 == 0 else 2
    return values // dims, dims


def task_labels(label_file: Path, width: int, height: int, task: str,
                kpt_shape: tuple[int, int] | None = None) -> LabelledImage:
    """One label file of a segmentation, pose or oriented-box dataset, in pixels (``path`` is the label file)."""
    rows = _rows(label_file, task)
    if not rows:  # a background image
        return dataclasses.replace(task_labels_empty(task, kpt_shape), path=label_file)
    classes = np.asarray([int(row[0]) for row in rows], np.int64)
    scale = np.array([width, height], np.float64)
    if task == "pose":
        keypoints, dims = _keypoint_dims(rows, kpt_shape, label_file)
        data = np.asarray(rows, np.float64)
        boxes = _xywh_boxes(data[:, 1:5], scale)
        points = data[:, 5:].reshape(len(rows), keypoints, dims)
        visible = points[..., 2:3] if dims == 3 else np.ones((len(rows), keypoints, 1))
        pose = np.concatenate([points[..., :2] * scale, visible], -1).astype(np.float32)
        return LabelledImage(label_file, boxes, classes, keypoints=pose)
    polygons = tuple(np.asarray(row[1:], np.float64).reshape(-1, 2) * scale for row in rows)
    boxes = np.asarray([[*p.min(0), *p.max(0)] for p in polygons], np.float32).reshape(-1, 4)
    if task == "segment":
        return LabelledImage(label_file, boxes, classes, polygons=polygons)
    from ultralytics.utils.ops import xyxyxyxy2xywhr

    rotated = xyxyxyxy2xywhr(np.asarray(polygons, np.float32)).astype(np.float32)
    return LabelledImage(label_file, boxes, classes, rotated=rotated)


def _xywh_boxes(xywh: np.ndarray, scale: np.ndarray) -> np.ndarray:
    centre, size = xywh[:, :2] * scale, xywh[:, 2:] * scale
    return np.concatenate([centre - size / 2, centre + size / 2], 1).astype(np.float32)


def load_yolo_folder(folder: Path, task: str | None = None,
                     kpt_shape: tuple[int, int] | None = None) -> list[LabelledImage]:
    """The folder's images and labels; ``task`` (segment, pose, obb) reads its rows as that task's."""
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else image_dir
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if task in ROW_FORMS and _box_rows_only([label_dir / f"{p.stem}.txt" for p in images]):
        task = None  # a box-labelled folder: the model is judged by its boxes
    items = []
    for image_path in images:
        label_file = label_dir / f"{image_path.stem}.txt"
        height, width = read_image(image_path).shape[:2]
        if task in ROW_FORMS:
            labelled = (task_labels(label_file, width, height, task, kpt_shape) if label_file.exists()
                        else task_labels_empty(task, kpt_shape))
            items.append(dataclasses.replace(labelled, path=image_path))
            continue
        boxes, classes = (yolo_labels(label_file, width, height) if label_file.exists()
                          else (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
        items.append(LabelledImage(image_path, boxes, classes))
    return items


def _box_rows_only(label_files: list[Path]) -> bool:
    """Whether every label row of the folder is a plain ``class cx cy w h`` box."""
    return all(len(line.split()) == 5 for file in label_files if file.exists()
               for line in file.read_text().splitlines() if line.strip())


def task_labels_empty(task: str, kpt_shape: tuple[int, int] | None) -> LabelledImage:
    """A background image of a task dataset: no instance, but the task's (empty) arrays."""
    boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    if task == "segment":
        return LabelledImage(Path(), boxes, classes, polygons=())
    if task == "pose":
        keypoints = kpt_shape[0] if kpt_shape else 0
        return LabelledImage(Path(), boxes, classes, keypoints=np.zeros((0, keypoints, 3), np.float32))
    return LabelledImage(Path(), boxes, classes, rotated=np.zeros((0, 5), np.float32))


def coco_index(annotation: Path, label_names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each image's ``file_name`` (in the json's order) → (boxes xyxy pixels, classes). COCO categories are
    matched to the model's classes by name (COCO ids are not contiguous); crowd boxes are left out."""
    data = json.loads(annotation.read_text())
    by_name = {name: index for index, name in enumerate(label_names)}
    category = {c["id"]: by_name.get(c["name"]) for c in data.get("categories", [])}
    per_image: dict[int, list[tuple[list[float], int]]] = {}
    for ann in data.get("annotations", []):
        cls = category.get(ann.get("category_id"))
        if cls is not None and not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            per_image.setdefault(ann["image_id"], []).append(([x, y, x + w, y + h], cls))
    index = {}
    for image in data.get("images", []):
        entries = per_image.get(image["id"], [])
        index[image["file_name"]] = (np.asarray([e[0] for e in entries], np.float32).reshape(-1, 4),
                                     np.asarray([e[1] for e in entries], np.int64))
    return index


def load_coco_folder(folder: Path, annotation: Path, label_names: tuple[str, ...]) -> list[LabelledImage]:
    items = []
    for name, (boxes, classes) in coco_index(annotation, label_names).items():
        path = folder / name
        if not path.exists():
            path = folder / "images" / name
        items.append(LabelledImage(path, boxes, classes))
    return items


def coco_annotation(folder: Path) -> Path | None:
    """The folder's COCO annotation file: a .json holding ``images`` and ``annotations`` (a labelling tool's
    other .json files, such as Label Studio's notes.json beside a YOLO export, are not one)."""
    for candidate in sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json")):
        try:
            data = json.loads(candidate.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "images" in data and "annotations" in data:
            return candidate
    return None


def load_labelled(folder: Path, label_names: tuple[str, ...], task: str | None = None,
                  kpt_shape: tuple[int, int] | None = None) -> list[LabelledImage]:
    """Read a labelled folder (COCO when it holds a .json annotation file, else YOLO). ``task`` (the model's:
    segment, pose, obb) reads YOLO rows as that task's; COCO folders give boxes."""
    if not folder.is_dir():
        raise BadInputError("not a folder", path=folder, fix="give a folder with images and labels")
    annotation = coco_annotation(folder)
    items = (load_coco_folder(folder, annotation, label_names) if annotation is not None
             else load_yolo_folder(folder, task, kpt_shape))
    if not items:
        raise BadInputError("no labelled images found", path=folder,
                            fix="use images/ + labels/ (YOLO) or images with a COCO .json")
    return items


def labelled_map(predictor: Any, items: list[LabelledImage]) -> dict[str, Any]:
    """True mAP of ``predictor`` (its conf should be low, e.g. 0.001) on labelled images: by the task's own IoU
    (mask, OKS, probiou; ``studio.evaluate.task_map``) when the labels are the task's, with the box mAP beside it.
    Each image is reduced to its matches before the next is predicted, so its masks do not outlive it."""
    from studio.evaluate.task_iou import TASK_METRICS
    from studio.evaluate.task_map import FrameScore, frame_score, summary

    scores = []
    for item in items:
        image = read_image(item.path)
        result = predictor(image).result
        height, width = image.shape[:2]
        scores.append(frame_score(item.targets(height, width, result.labels), result))
    task = next((name for name, held in (("masks", "polygons"), ("keypoints", "keypoints"), ("rotated", "rotated"))
                 if any(getattr(item, held) is not None for item in items)), None)
    if task is None:  # box labels: a segmentation model is judged by its boxes, not by masks nobody labelled
        scores = [FrameScore(s.box, {}, s.agnostic) for s in scores]
    result = summary(scores, unit="labelled", task=task)
    by = f"; matched by {TASK_METRICS[task][1]}, box mAP50 beside it" if task else ""
    return result | {"method": f"predictions scored against the folder's labels{by}"}
