"""How many answers two variants disagree on, frame by frame (the A/B view's count).

Instances are matched by the similarity of their model's own task, as Ultralytics' validators judge them: masks
by mask IoU, keypoints by OKS, oriented boxes by probabilistic IoU, plain boxes by box IoU; a same-class pair
at or above 0.5 is a match. Pure numpy: it runs on the preview's inference thread for every frame.
"""

from __future__ import annotations

import numpy as np

from studio.runtime.decode_tasks import probiou
from studio.runtime.results import Classification, Detections

MATCH = 0.5

# COCO's per-keypoint sigmas (Ultralytics' OKS_SIGMA); a skeleton of another length weighs each point alike.
COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
                        0.89, 0.89], np.float64) / 10.0
VISIBLE = 0.5
# COCO's ratio of a person's segmented area to its box; Ultralytics' pose validator scales box areas by it.
AREA_RATIO = 0.53
_EPS = 1e-7
MASK_GRID = 160  # samples on the frame's long side where masks are compared on a grid (see mask_iou)
MIN_SAMPLES = 256  # an instance with fewer grid samples is compared pixel by pixel


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _regions(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 4) integer [r0, r1, c0, c1] ranges covering each xyxy box (and so its mask), clipped to the frame."""
    out = np.empty((len(boxes), 4), np.int64)
    out[:, 0] = np.clip(np.floor(boxes[:, 1]), 0, height)
    out[:, 1] = np.clip(np.ceil(boxes[:, 3]) + 1, 0, height)
    out[:, 2] = np.clip(np.floor(boxes[:, 0]), 0, width)
    out[:, 3] = np.clip(np.ceil(boxes[:, 2]) + 1, 0, width)
    return out


class _Pixels:
    """One side's masks, read pixel by pixel inside their boxes, each instance's count and pixels read once."""

    def __init__(self, masks: np.ndarray, boxes: np.ndarray):
        self.masks = masks
        self.flat = masks.reshape(len(masks), -1)
        self.regions = _regions(boxes, *masks.shape[1:])
        self._areas: dict[int, int] = {}
        self._pixels: dict[int, np.ndarray] = {}

    def area(self, index: int) -> int:
        if index not in self._areas:
            r0, r1, c0, c1 = self.regions[index]
            self._areas[index] = int(np.count_nonzero(self.masks[index, r0:r1, c0:c1]))
        return self._areas[index]

    def pixels(self, index: int) -> np.ndarray:
        """Flat indices of the instance's pixels in the frame."""
        if index not in self._pixels:
            r0, r1, c0, c1 = self.regions[index]
            rows, cols = np.nonzero(self.masks[index, r0:r1, c0:c1])
            self._pixels[index] = (rows + r0) * self.masks.shape[2] + cols + c0
        return self._pixels[index]


def _exact_mask_iou(a: _Pixels, b: _Pixels, pairs: np.ndarray, a_smaller: np.ndarray) -> np.ndarray:
    """IoU of the (i, j) ``pairs``: the smaller instance's pixels looked up in the other mask, so a pair costs
    the small instance's pixel count, however large the other is."""
    out = np.zeros(len(pairs), np.float64)
    for index, ((i, j), small_is_a) in enumerate(zip(pairs, a_smaller, strict=True)):
        inter = int(np.count_nonzero(b.flat[j, a.pixels(i)] if small_is_a else a.flat[i, b.pixels(j)]))
        out[index] = inter / max(a.area(i) + b.area(j) - inter, 1)
    return out


def _packed_grid(masks: np.ndarray, step: int) -> np.ndarray:
    """(N, words) uint64: every ``step``-th pixel of each mask, one bit each."""
    grid = masks[:, step // 2::step, step // 2::step]
    bits = np.packbits(grid.reshape(grid.shape[0], grid.shape[1] * grid.shape[2]), axis=1)
    bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 8)))
    return np.ascontiguousarray(bits).view(np.uint64)


def mask_iou(a: np.ndarray, b: np.ndarray, boxes_a: np.ndarray, boxes_b: np.ndarray,
             candidates: np.ndarray | None = None) -> np.ndarray:
    """Pairwise IoU of (N, H, W) and (M, H, W) bool masks that lie inside their xyxy boxes; 0 for the pairs
    ``candidates`` (N, M) leaves out.

    Every pair is first measured on a grid of about MASK_GRID samples on the frame's long side, as packed bits
    (AND, then popcount): the masks were upsampled from prototypes no finer than that (160 for a 640 input), so
    the grid moves an instance's IoU by the share of its boundary samples only. Pixel-by-pixel pairs took
    seconds per frame on this thread (271 random-weight instances of a 1080 × 810 frame), and a float matrix
    product went through a threaded BLAS that stalled for tenths of a second beside the model's own threads.
    Pairs with an instance too small for the grid (under MIN_SAMPLES samples) are then counted pixel by pixel:
    the decoders crop masks to their boxes (as Ultralytics' crop_mask does), so each is read inside its box.
    """
    wanted = np.ones((len(a), len(b)), bool) if candidates is None else candidates
    step = max(1, -(-max(a.shape[1:]) // MASK_GRID))
    grid_a, grid_b = _packed_grid(a, step), _packed_grid(b, step)
    inter = np.empty((len(a), len(b)), np.int64)
    for row, bits in enumerate(grid_a):
        inter[row] = np.bitwise_count(bits & grid_b).sum(axis=1)
    samples_a, samples_b = np.bitwise_count(grid_a).sum(axis=1), np.bitwise_count(grid_b).sum(axis=1)
    iou = np.where(wanted, inter / np.maximum(samples_a[:, None] + samples_b[None, :] - inter, 1), 0.0)
    if step > 1:
        small = wanted & (np.minimum(samples_a[:, None], samples_b[None, :]) < MIN_SAMPLES)
        pairs = np.argwhere(small)
        if len(pairs):
            a_smaller = samples_a[pairs[:, 0]] <= samples_b[pairs[:, 1]]
            iou[pairs[:, 0], pairs[:, 1]] = _exact_mask_iou(_Pixels(a, boxes_a), _Pixels(b, boxes_b), pairs, a_smaller)
    return iou


def keypoint_oks(a: np.ndarray, b: np.ndarray, boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise OKS of (N, K, 3) and (M, K, 3) keypoints, Ultralytics' kpt_iou made symmetric.

    Neither side is ground truth, so a keypoint counts when either side sees it (visibility ≥ 0.5), and the
    object's area is the mean of the two boxes' areas × 0.53. A pair where neither side sees any keypoint has
    nothing to compare: NaN, for the caller to judge otherwise.
    """
    k = a.shape[1]
    sigmas = COCO_SIGMAS if k == len(COCO_SIGMAS) else np.full(k, 1.0 / k)
    area_a = (boxes_a[:, 2:] - boxes_a[:, :2]).clip(0).prod(axis=1)
    area_b = (boxes_b[:, 2:] - boxes_b[:, :2]).clip(0).prod(axis=1)
    area = (area_a[:, None] + area_b[None, :]) / 2 * AREA_RATIO  # (N, M)
    # float32 and in place: (N, M, K) arrays of a few hundred instances each side, on every frame
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    e = a32[:, None, :, 0] - b32[None, :, :, 0]
    e *= e
    dy = a32[:, None, :, 1] - b32[None, :, :, 1]
    e += dy * dy
    e *= (-1.0 / (2 * (area[..., None] + _EPS) * (2 * sigmas) ** 2)).astype(np.float32)
    np.exp(e, out=e)
    counted = (a32[:, None, :, 2] >= VISIBLE) | (b32[None, :, :, 2] >= VISIBLE)  # (N, M, K)
    e *= counted
    seen = counted.sum(axis=-1)
    return np.where(seen > 0, e.sum(axis=-1, dtype=np.float64) / np.maximum(seen, 1), np.nan)


def _greedy_unmatched(similarity: np.ndarray, threshold: float) -> int:
    """Rows and columns left without a partner at ``threshold``, rows (sorted by score) picking first."""
    matched = 0
    taken = np.zeros(similarity.shape[1], bool)
    for row in similarity:  # a is sorted by score: the most confident instance picks first
        row = np.where(taken, 0.0, row)
        best = int(row.argmax())
        if row[best] >= threshold:
            taken[best] = True
            matched += 1
    return similarity.shape[0] + similarity.shape[1] - 2 * matched


def _task_similarity(a: Detections, b: Detections, same_class: np.ndarray) -> np.ndarray:
    if a.masks is not None and b.masks is not None and a.masks.shape[1:] == b.masks.shape[1:]:
        # Masks lie inside their boxes: pairs whose boxes do not touch cannot overlap and are skipped.
        return mask_iou(a.masks, b.masks, a.boxes, b.boxes, same_class & (_iou(a.boxes, b.boxes) > 0))
    if a.keypoints is not None and b.keypoints is not None and a.keypoints.shape[1:] == b.keypoints.shape[1:]:
        oks = keypoint_oks(a.keypoints, b.keypoints, a.boxes, b.boxes)
        # Two detections of a person whose keypoints neither side sees: their boxes are all there is to compare.
        return np.where(np.isnan(oks), _iou(a.boxes, b.boxes), oks)
    if a.rotated is not None and b.rotated is not None:
        return probiou(a.rotated, b.rotated)
    return _iou(a.boxes, b.boxes)


def unmatched(a: Detections, b: Detections, threshold: float = MATCH) -> int:
    """Instances of either side with no same-class partner on the other at ≥ ``threshold`` by their task's
    similarity (mask IoU, OKS, probabilistic IoU; box IoU when the two sides share no task array)."""
    if not len(a) or not len(b):
        return len(a) + len(b)
    same_class = a.class_ids[:, None] == b.class_ids[None, :]
    similarity = np.where(same_class, _task_similarity(a, b, same_class), 0.0)
    return _greedy_unmatched(similarity, threshold)


def unmatched_boxes(a: Detections, b: Detections, iou: float = MATCH) -> int:
    """Boxes of either side with no same-class box on the other side at IoU ≥ ``iou`` (greedy by score)."""
    if not len(a) or not len(b):
        return len(a) + len(b)
    overlaps = np.where(a.class_ids[:, None] == b.class_ids[None, :], _iou(a.boxes, b.boxes), 0.0)
    return _greedy_unmatched(overlaps, iou)


def disagreement(a: object, b: object) -> int:
    """Unmatched instances for detectors (by their task), 1 when the top-1 class differs for classifiers, else 0."""
    if isinstance(a, Detections) and isinstance(b, Detections):
        return unmatched(a, b)
    if isinstance(a, Classification) and isinstance(b, Classification):
        return int(len(a.class_ids) and len(b.class_ids) and int(a.class_ids[0]) != int(b.class_ids[0]))
    return 0
