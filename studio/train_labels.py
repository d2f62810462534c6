"""Labels on the training side of the model's frames, and labelled training batches.

When the user's frames are a labelled dataset — a YOLO folder (``images/`` beside ``labels/``, or a
``.txt`` beside each image), an Ultralytics ``data.yaml``, or a folder holding a COCO ``.json`` — the
recovery trainer mixes the model's own task loss into distillation. Only the training (calibration)
side is read: the judging side's labels are never used for training.

A frame counts as labelled when it has a label file (an empty one is a background image); in an
``images/`` + ``labels/`` layout an image without one is a background image too, as Ultralytics' trainer
and the studio's own labelled evaluation read it. Beside plain images a missing ``.txt`` says nothing (the
folder may be a photo folder with a stray text file), so such an image is unlabelled. When the labelled
frames are most of the training side, recovery trains on them only: Ultralytics' loss would read a frame
without labels as "nothing here" and teach the model to miss what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.evaluate.labelled import coco_annotation, coco_index, yolo_labels
from studio.model import ModelHandle
from studio.runtime.preprocess import prepare
from studio.sources import VIDEO_SUFFIXES, read_image
from studio.train_data import apply_augment, augment_params, spread

MIN_BOX_SHARE = 0.25  # a box cropped to less than this share of its area is dropped (too little left to find)


@dataclass(frozen=True)
class LabelledFrame:
    path: Path
    image: np.ndarray  # BGR
    boxes: np.ndarray  # (N, 4) xyxy pixels, float32
    classes: np.ndarray  # (N,) int64


def _paired_labels(image: Path) -> tuple[Path, Path] | None:
    """Ultralytics' convention: (the dataset's ``labels`` folder, the image's label file in it), the last
    ``images`` folder of the image's path become ``labels``; None when the path has no ``images`` folder."""
    parts = list(image.parts)
    if "images" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("images")
    labels = Path(*parts[:index], "labels")
    return labels, labels.joinpath(*parts[index + 1:]).with_suffix(".txt")


def yolo_label_file(image: Path) -> Path | None:
    """Ultralytics' convention (the last ``images`` folder in the path becomes ``labels``), else a ``.txt``
    beside the image; None when there is neither."""
    paired = _paired_labels(image)
    if paired is not None and paired[1].is_file():
        return paired[1]
    beside = image.with_suffix(".txt")
    return beside if beside.is_file() else None


def is_background(image: Path) -> bool:
    """An image of an ``images/`` + ``labels/`` dataset that has no label file: a background image."""
    paired = _paired_labels(image)
    return paired is not None and paired[0].is_dir() and yolo_label_file(image) is None


def _coco_index(root: Path, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Image file name → (boxes, classes) from the folder's COCO annotation file (a .json in ``root`` or
    ``root/annotations`` that holds ``images`` and ``annotations``; a labelling tool's other .json files
    beside it are not one)."""
    annotation = coco_annotation(root)
    if annotation is None:
        return {}
    return {Path(name).name: labels for name, labels in coco_index(annotation, names).items()}


def training_labels(frames: Any, names: tuple[str, ...], limit: int, ctx: Any = None
                    ) -> tuple[list[LabelledFrame], dict[str, Any]]:
    """Labelled frames spread over the training side of ``frames`` (a ``studio.data.FrameSet``, or None)."""
    if frames is None:
        return [], {"labelled": 0, "note": "no labels: the bundled media are unlabelled"}
    images = [span.path for span in frames.calibration if span.path.suffix.lower() not in VIDEO_SUFFIXES]
    coco = _coco_index(frames.path if frames.path.is_dir() else frames.path.parent, names)
    labelled: list[tuple[Path, Any]] = []
    backgrounds = 0
    for path in images:
        label = yolo_label_file(path) or coco.get(path.name)
        if label is None and is_background(path):
            label, backgrounds = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)), backgrounds + 1
        if label is not None:
            labelled.append((path, label))
    chosen = spread(labelled, limit)
    items = []
    for path, label in chosen:
        if ctx is not None:
            ctx.check_cancelled()
        image = read_image(path)
        height, width = image.shape[:2]
        boxes, classes = yolo_labels(label, width, height) if isinstance(label, Path) else label
        keep = (classes >= 0) & (classes < len(names))  # a class the model does not have cannot be learnt
        items.append(LabelledFrame(path, image, boxes[keep], classes[keep]))
    info = {"labelled": len(items), "labelled_available": len(labelled), "training_images": len(images),
            "boxes": int(sum(len(item.boxes) for item in items)), "backgrounds_without_label_file": backgrounds,
            "format": "COCO json" if coco else "YOLO .txt"}
    return items, info


def augment_labelled(item: LabelledFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same crop, flip and photometric change as ``studio.train_data.augment``, with the boxes moved too."""
    params = augment_params(item.image.shape[:2], rng)
    image = apply_augment(item.image, params)
    top, left, crop_h, crop_w, flip = params[:5]
    boxes = item.boxes.copy()
    if len(boxes):
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] - left, 0, crop_w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] - top, 0, crop_h)
        if flip:
            boxes[:, [0, 2]] = crop_w - boxes[:, [2, 0]]
        kept = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        visible = kept >= MIN_BOX_SHARE * np.maximum(area, 1e-6)
        return image, boxes[visible], item.classes[visible]
    return image, boxes, item.classes


class LabelledBatches:
    """Batch ``i`` (seeded by ``(seed, i)``, like ``studio.train_data.Batches``) as Ultralytics' trainer
    feeds its loss: ``img`` NCHW, ``batch_idx``, ``cls`` and ``bboxes`` (normalised centre x, y, w, h of
    the network input)."""

    def __init__(self, items: list[LabelledFrame], handle: ModelHandle, size: tuple[int, int], batch: int, seed: int,
                 count: int):
        self.items, self.handle, self.size = items, handle, size
        self.batch, self.seed, self.count = batch, seed, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        rng = np.random.default_rng([self.seed, index])
        images, indices, classes, boxes = [], [], [], []
        for slot, pick in enumerate(rng.integers(0, len(self.items), size=self.batch)):
            image, xyxy, cls = augment_labelled(self.items[pick], rng)
            tensor, geometry = prepare(image, self.handle.required_image_input(), self.size, rect=False)
            images.append(tensor)
            gain_x, gain_y = geometry.gain_xy
            pad_x, pad_y = geometry.pad_xy
            height, width = geometry.input_hw
            net = xyxy * np.array([gain_x, gain_y, gain_x, gain_y]) + np.array([pad_x, pad_y, pad_x, pad_y])
            centre = np.stack([(net[:, 0] + net[:, 2]) / 2 / width, (net[:, 1] + net[:, 3]) / 2 / height,
                               (net[:, 2] - net[:, 0]) / width, (net[:, 3] - net[:, 1]) / height], 1)
            boxes.append(centre.astype(np.float32))
            classes.append(cls.astype(np.float32))
            indices.append(np.full(len(cls), slot, np.float32))
        return {"img": torch.from_numpy(np.concatenate(images)),
                "batch_idx": torch.from_numpy(np.concatenate(indices)),
                "cls": torch.from_numpy(np.concatenate(classes)).view(-1, 1),
                "bboxes": torch.from_numpy(np.concatenate(boxes).reshape(-1, 4))}
