"""True accuracy against a user's labelled folder, in YOLO or COCO format.

YOLO: ``images/`` and ``labels/`` side by side (or images with ``.txt`` files beside them), each label
line ``class cx cy w h`` normalised to the image. COCO: a folder holding one ``*.json`` annotation
file (``images``, ``annotations`` with ``bbox`` = x, y, w, h in pixels, ``categories``) and the images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import BadInputError
from studio.sources import IMAGE_SUFFIXES, read_image


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    boxes: np.ndarray  # (N, 4) xyxy pixels
    classes: np.ndarray  # (N,) int


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


def load_yolo_folder(folder: Path) -> list[LabelledImage]:
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else image_dir
    items = []
    for image_path in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label_file = label_dir / f"{image_path.stem}.txt"
        height, width = read_image(image_path).shape[:2]
        boxes, classes = (yolo_labels(label_file, width, height) if label_file.exists()
                          else (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
        items.append(LabelledImage(image_path, boxes, classes))
    return items


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


def load_labelled(folder: Path, label_names: tuple[str, ...]) -> list[LabelledImage]:
    """Read a labelled folder (COCO when it holds a .json annotation file, else YOLO)."""
    if not folder.is_dir():
        raise BadInputError("not a folder", path=folder, fix="give a folder with images and labels")
    annotations = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    items = load_coco_folder(folder, annotations[0], label_names) if annotations else load_yolo_folder(folder)
    if not items:
        raise BadInputError("no labelled images found", path=folder,
                            fix="use images/ + labels/ (YOLO) or images with a COCO .json")
    return items


def labelled_map(predictor, items: list[LabelledImage]) -> dict:
    """True mAP of ``predictor`` (its conf should be low, e.g. 0.001) on labelled images."""
    from studio.evaluate.detection_map import FrameBoxes, frame_matches, map_of_matches
    from studio.evaluate.evidence import bootstrap_interval, evidence

    frames = []
    for item in items:
        result = predictor(read_image(item.path)).result
        frames.append(FrameBoxes(result.boxes, result.scores, result.class_ids, item.boxes, item.classes))
    parts = frame_matches(frames)
    result = map_of_matches(parts)
    return result | {"interval": bootstrap_interval(lambda rows: map_of_matches([parts[i] for i in rows])["map50"],
                                                    len(parts)),
                     "evidence": evidence(len(parts), int(result["targets"]), "labelled boxes"),
                     "method": "predictions scored against the folder's labels"}
