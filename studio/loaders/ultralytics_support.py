"""Which Ultralytics architectures the studio runs, and the one line that refuses the others.

Ultralytics ships heads whose outputs the studio's runtimes do not decode (depth maps, per-pixel
classes) or that need inputs it cannot give (YOLO-World and YOLOE take text or visual prompt embeddings).
Each loader asks here before it builds or describes a model, so that such a file is refused by name
instead of failing later with a library's own error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from studio.errors import BadInputError, UnsupportedError
from studio.model import Resize, Task, TensorSpec

SUPPORTED = ("the studio runs Ultralytics detect, segment (masks), pose (keypoints), OBB (rotated boxes) and "
             "classify models (YOLOv3, v5, v6, v8, v9, v10, 11, 12 and YOLO26, end-to-end heads included) and RT-DETR "
             "detectors")

# Heads the runtimes decode (subclasses such as Segment26, Pose26, OBB26 are found through their bases).
RUN_HEADS = frozenset({"Detect", "v10Detect", "Segment", "Pose", "OBB", "Classify", "RTDETRDecoder"})

# Checked before RUN_HEADS: YOLO-World and YOLOE heads subclass Detect but cannot run without prompts.
_PROMPTED = "heads (open-vocabulary, prompted by {what}) are not supported yet"
REFUSED_HEADS = {
    "WorldDetect": "YOLO-World " + _PROMPTED.format(what="CLIP text embeddings"),
    "YOLOEDetect": "YOLOE " + _PROMPTED.format(what="text or visual embeddings"),
    "Depth": "depth-estimation heads (Depth) are not supported yet",
    "SemanticSegment": "semantic-segmentation heads (SemanticSegment) are not supported yet",
}

# Tasks Ultralytics knows and the studio does not (what an exported file's metadata or a checkpoint says).
REFUSED_TASKS = {
    "depth": "Ultralytics depth-estimation models are not supported yet",
    "semantic": "Ultralytics semantic-segmentation models are not supported yet",
}

# Heads whose exported ONNX graph differs from what the studio's decoders read (none since RT-DETR is decoded).
# YOLO-World and YOLOE are not here: Ultralytics bakes their prompt embeddings in, and the graph is a plain detector.
ONNX_REFUSED_HEADS: dict[str, str] = {}

RTDETR_HEAD = "RTDETRDecoder"


def is_rtdetr(meta: Mapping[str, str]) -> bool:
    """Whether an Ultralytics export's metadata describes an RT-DETR model: its exporter writes the head's class
    ("head": "RTDETRDecoder"); releases without that key name the model file in the description ("Ultralytics
    rtdetr-l model", "Ultralytics YOLOv8-rtdetr model")."""
    if "head" in meta:
        return meta["head"] == RTDETR_HEAD
    description = meta.get("description", "").lower().replace("-", "")
    return description.startswith("ultralytics") and "rtdetr" in description


def ultralytics_resize(task: Task, decoder: str) -> Resize:
    """How Ultralytics' own predictor turns a frame into this model's input: RT-DETR stretches to its square
    (LetterBox(scale_fill=True)), a classifier crops the centre, every other head letterboxes."""
    if decoder == "rtdetr":
        return Resize.STRETCH
    return Resize.CENTER_CROP if task == Task.CLASSIFY else Resize.LETTERBOX


def head_refusal(class_names: Iterable[str]) -> str | None:
    """Why a head is refused, given its class name and its base classes' (most derived first); None
    when the studio runs it."""
    names = list(class_names)
    for name in names:
        if name in REFUSED_HEADS:
            return REFUSED_HEADS[name]
        if name in RUN_HEADS:
            return None
    return f"the head '{names[0] if names else '?'}' is not one the studio runs"


def class_chain(cls: type) -> list[str]:
    return [klass.__name__ for klass in cls.__mro__]


def check_head(class_names: Iterable[str], path: Path) -> None:
    reason = head_refusal(class_names)
    if reason is not None:
        raise UnsupportedError(reason, path=path, fix=SUPPORTED)


def check_task(task: object, path: Path) -> None:
    """Refuse a task Ultralytics knows but the studio does not run (or none at all)."""
    text = str(task) if task else ""
    if text in REFUSED_TASKS:
        raise UnsupportedError(REFUSED_TASKS[text], path=path, fix=SUPPORTED)
    if text not in {t.value for t in (Task.DETECT, Task.SEGMENT, Task.POSE, Task.OBB, Task.CLASSIFY)}:
        shown = f"task {text[:40]!r}" if text else "no recognisable task"
        raise UnsupportedError(f"an Ultralytics model with {shown} is not supported", path=path, fix=SUPPORTED)


def check_onnx_head(head: str | None, path: Path) -> None:
    if head in ONNX_REFUSED_HEADS:
        raise UnsupportedError(f"{ONNX_REFUSED_HEADS[head]} (this Ultralytics export has one)", path=path,
                               fix=SUPPORTED)


# The decoders a file of each task may name (studio.runtime.decoders); every loader checks a file's claim here.
TASK_DECODERS = {Task.DETECT: ("yolo", "yolo-end2end", "darknet", "rtdetr"), Task.SEGMENT: ("yolo", "yolo-end2end"),
                 Task.POSE: ("yolo", "yolo-end2end"), Task.OBB: ("yolo-obb",),
                 Task.CLASSIFY: ("classify-logits", "classify-probs"), Task.TENSOR: ("tensor",)}

# Post-processing family per task of an Ultralytics-exported ONNX graph (see studio.runtime.decoders).
_ONNX_DECODERS = {"detect": "yolo", "segment": "yolo", "pose": "yolo", "obb": "yolo-obb", "classify": "classify-probs"}


def ultralytics_onnx_decoder(task: object, end2end: bool, outputs: tuple[TensorSpec, ...], labels: tuple[str, ...],
                             path: Path, *, rtdetr: bool = False) -> str:
    """The decoder for an Ultralytics export, after checking that output0 has the layout it reads.

    An NMS-free export (YOLO26, YOLOv10 with end2end) writes rows [x1, y1, x2, y2, score, class, extras…];
    its metadata says so, and its shape alone cannot (at imgsz 64, 84 anchors and 84 rows look alike).
    A graph whose metadata claims a task its output does not have is refused, not decoded into garbage. An RT-DETR
    export (``rtdetr``: see ``is_rtdetr``) has rows [1, queries, 6] (or [1, queries, 4 + classes]), never a YOLO head.
    """
    decoder = "rtdetr" if rtdetr and str(task) == "detect" else _ONNX_DECODERS.get(str(task), "tensor")
    shape: tuple[int | str, ...] = outputs[0].shape if outputs else ()
    if decoder == "yolo" and (end2end or (len(shape) == 3 and shape[-1] == 6)):
        decoder = "yolo-end2end"
    expected = {"yolo": (3, 1, 4 + len(labels)), "yolo-obb": (3, 2, 7) if end2end else (3, 1, 5 + len(labels)),
                "yolo-end2end": (3, 2, 6), "rtdetr": (3, 2, 6),
                "classify-probs": (2, 1, max(len(labels), 1))}.get(decoder)
    if expected is None:
        return decoder
    rank, axis, least = expected
    if len(shape) != rank or (isinstance(dim := shape[axis], int) and dim < least):
        raise BadInputError(f"its metadata says an Ultralytics {task} model, but output "
                            f"'{outputs[0].name if outputs else '?'}' has shape {list(shape)}, which is not that "
                            f"head's layout", path=path,
                            fix="re-export it with Ultralytics, or remove its metadata to open it as a generic "
                                "tensor model")
    return decoder


DEFAULT_MASK_CHANNELS = 32  # Ultralytics' Segment heads: nm=32 prototypes unless a yaml says otherwise
MAX_KEYPOINTS = 1024


def kpt_shape_from(meta: Mapping[str, str]) -> tuple[int, int] | None:
    """A pose model's [keypoints, values per keypoint] from its metadata text, or None when absent or malformed (the
    decoder then reads it from the output's channel count)."""
    import ast

    text = meta.get("kpt_shape", "")
    if not text or len(text) > 40:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    if (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value)
            and 1 <= value[0] <= MAX_KEYPOINTS and value[1] in (2, 3)):
        return int(value[0]), int(value[1])
    return None


def _extra_channels(shape: tuple[int | str, ...], labels: tuple[str, ...], end2end: bool, *,
                    by_axis: bool = True) -> int | None:
    """Channels a row carries beyond its box and scores: [1, 4 + classes + extra, anchors], or end-to-end rows
    [1, detections, 6 + extra] (with ``by_axis``, also recognised by being the longer axis); None when the shape is
    symbolic."""
    if len(shape) != 3 or not isinstance(shape[1], int) or not isinstance(shape[2], int):
        return None
    rows = end2end or (by_axis and shape[2] < shape[1])
    extra = shape[2] - 6 if rows else shape[1] - 4 - len(labels)
    return extra if extra > 0 else None


def task_decode_fields(task: Task, meta: Mapping[str, str], outputs: tuple[TensorSpec, ...],
                       labels: tuple[str, ...]) -> tuple[tuple[int, int] | None, int, bool]:
    """(kpt_shape, mask channels, end2end) a task's decoder needs, from the model's metadata first and its output
    shapes otherwise; the decoder checks them against the rows it is given."""
    end2end = str(meta.get("end2end", "")).lower() == "true"
    shape: tuple[int | str, ...] = outputs[0].shape if outputs else ()
    if task == Task.POSE:
        found = kpt_shape_from(meta)
        extra = _extra_channels(shape, labels, end2end)
        if found is None and extra is not None:
            from studio.runtime.decode_tasks import infer_kpt_shape

            found = infer_kpt_shape(extra)
        return found or (17, 3), 0, end2end
    if task == Task.SEGMENT:
        channels = meta.get("mask_channels", "")
        if channels.isdigit() and 0 < int(channels) <= 1024:
            return None, int(channels), end2end
        preds = next((o.shape for o in outputs if len(o.shape) == 3), ())
        protos = next((o.shape for o in outputs if len(o.shape) == 4), None)
        # The rows' extra channels, found on the prototypes: no guess. Both layouts are tried, as at a tiny input
        # the anchors can be fewer than the channels ([1, 116, 84] at 64 px) and the longer axis misleads.
        layouts = (False, True) if not end2end else (True,)
        for rows in layouts:
            extra = _extra_channels(preds, labels, rows, by_axis=False)
            if protos is not None and extra is not None and extra in (protos[1], protos[3]):
                return None, extra, end2end
        if protos is not None:  # [1, C, H, W], or channel-last [1, H, W, C] (TFLite): C is the smaller side
            first, last = protos[1], protos[3]
            if isinstance(first, int) and not (isinstance(last, int) and last < first):
                return None, first, end2end
            if isinstance(last, int):
                return None, last, end2end
        return None, DEFAULT_MASK_CHANNELS, end2end
    return None, 0, end2end
