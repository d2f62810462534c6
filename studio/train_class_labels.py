"""Class labels on the training side of the model's frames: the class-folder layout of image classifiers.

ImageNet and Ultralytics' classify datasets keep each image in a folder named after its class,
``ROOT/<split>/<class>/*.jpg`` (the split folder — ``train``, ``val``, ``test`` — is optional). The class
of a training-side image is its parent folder's name, matched to the model's class names ignoring case
and with spaces and underscores alike. For an ImageNet-1k model (its names agree with the ImageNet lists
that ship in timm) a folder may also be named by any synonym of the class's lemma ("great white shark",
"white shark", "man-eater"…) or by its WordNet synset ("n01484850", the layout of ImageNet's own
archives). A folder that names no class of the model, or several, is dropped and counted.

Only the training (calibration) side is read: no judging-side file is ever labelled or trained on.
Images are read when a batch is built, so a large dataset is never held in memory.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import BadInputError
from studio.model import ModelHandle
from studio.runtime.preprocess import prepare
from studio.sources import VIDEO_SUFFIXES, read_image
from studio.train_data import augment

IMAGENET_AGREEMENT = 0.9  # share of a 1000-class model's names that must be ImageNet's lemmas, index by index
DROPPED_NAMES_SHOWN = 10


@dataclass(frozen=True)
class ClassFrame:
    path: Path
    label: int  # index into the model's class names


def normalise(name: str) -> str:
    """A class or folder name as compared: case-folded, underscores as spaces, runs of spaces as one."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().casefold()


@cache
def imagenet_synsets() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(synset, its lemma's synonyms) of the 1000 ImageNet-1k classes in index order, from timm's lists
    (located, not imported); empty when timm is not installed."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return tuple((s, tuple(part.strip() for part in lemmas[s].split(",") if part.strip())) for s in synsets)


class ClassNames:
    """Folder name → the model's class index: its own names first, then (ImageNet models) synsets, then synonyms."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.own: dict[str, set[int]] = {}
        for index, name in enumerate(names):
            self.own.setdefault(normalise(name), set()).add(index)
        self.synsets: dict[str, int] = {}
        self.synonyms: dict[str, set[int]] = {}
        self.imagenet = _is_imagenet(names)
        if self.imagenet:
            for index, (synset, lemmas) in enumerate(imagenet_synsets()):
                self.synsets[synset.casefold()] = index
                for lemma in lemmas:
                    self.synonyms.setdefault(normalise(lemma), set()).add(index)

    def match(self, folder: str) -> int | str | None:
        """The class index, ``None`` when the folder names no class, ``"ambiguous"`` when it names several."""
        key = normalise(folder)
        for found in (self.own.get(key), {self.synsets[key]} if key in self.synsets else None,
                      self.synonyms.get(key)):
            if found:
                return next(iter(found)) if len(found) == 1 else "ambiguous"
        return None


def _is_imagenet(names: tuple[str, ...]) -> bool:
    synsets = imagenet_synsets() if len(names) == 1000 else ()
    if len(synsets) != len(names):
        return False
    agree = sum(normalise(name) in {normalise(lemma) for lemma in lemmas}
                for name, (_, lemmas) in zip(names, synsets, strict=True))
    return agree >= IMAGENET_AGREEMENT * len(names)


def class_training_labels(frames: Any, names: tuple[str, ...], ctx: Any = None
                          ) -> tuple[list[ClassFrame], dict[str, Any]]:
    """Every training-side image of ``frames`` (a ``studio.data.FrameSet``, or None) whose folder names
    one of the model's classes, and what was found (labelled images, classes, dropped folders)."""
    if frames is None:
        return [], {"labelled": 0, "note": "no labels: the bundled media are unlabelled"}
    root = frames.path if frames.path.is_dir() else frames.path.parent
    images = [span.path for span in frames.calibration if span.path.suffix.lower() not in VIDEO_SUFFIXES]
    classes = ClassNames(names)
    verdicts: dict[Path, int | str | None] = {}
    items: list[ClassFrame] = []
    for number, path in enumerate(images):
        if ctx is not None and number % 256 == 0:
            ctx.check_cancelled()
        folder = path.parent
        if folder not in verdicts:
            verdicts[folder] = classes.match(folder.name) if folder != root else None
        verdict = verdicts[folder]
        if isinstance(verdict, int):
            items.append(ClassFrame(path, verdict))
    dropped = sorted({folder.name for folder, verdict in verdicts.items() if not isinstance(verdict, int)
                      and folder != root})
    ambiguous = sorted({folder.name for folder, verdict in verdicts.items() if verdict == "ambiguous"})
    info = {"format": "class folders", "labelled": len(items), "training_images": len(images),
            "classes": len({item.label for item in items}),
            "folders": len({folder.name for folder, verdict in verdicts.items() if isinstance(verdict, int)}),
            "dropped_folders": len(dropped), "dropped_images": len(images) - len(items),
            "dropped_names": dropped[:DROPPED_NAMES_SHOWN], "names": "ImageNet lemmas, synonyms and synsets"
            if classes.imagenet else "the model's class names"}
    if ambiguous:
        info["ambiguous_folders"] = ambiguous[:DROPPED_NAMES_SHOWN]
    if info["classes"] == 1:
        info["note"] = "one class only: its loss pulls every frame toward it; distillation keeps the others"
    return items, info


class ClassBatches:
    """Batch ``i`` (seeded by ``(seed, i)``, like ``studio.train_data.Batches``): ``img`` NCHW, augmented as
    ``studio.train_data.augment`` does (crops and flips keep a class label), and ``cls`` the class indices.
    Images are read here; one that cannot be read is replaced by the next readable one of the list."""

    def __init__(self, items: list[ClassFrame], handle: ModelHandle, size: tuple[int, int], batch: int, seed: int,
                 count: int):
        self.items, self.handle, self.size = items, handle, size
        self.batch, self.seed, self.count = batch, seed, count

    def __len__(self) -> int:
        return self.count

    def _read(self, pick: int) -> tuple[np.ndarray, int]:
        for offset in range(len(self.items)):
            item = self.items[(pick + offset) % len(self.items)]
            try:
                return read_image(item.path), item.label
            except BadInputError:
                continue
        raise BadInputError("no labelled training image can be read", path=self.items[0].path.parent,
                            fix="check the image files of the class folders")

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        rng = np.random.default_rng([self.seed, index])
        images, labels = [], []
        for pick in rng.integers(0, len(self.items), size=self.batch):
            image, label = self._read(int(pick))
            images.append(prepare(augment(image, rng), self.handle.required_image_input(), self.size, rect=False)[0])
            labels.append(label)
        return {"img": torch.from_numpy(np.concatenate(images)), "cls": torch.tensor(labels, dtype=torch.long)}
