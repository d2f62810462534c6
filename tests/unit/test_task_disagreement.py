"""A/B disagreement judged by each task's own similarity, on hand-made masks, keypoints and oriented boxes."""

from __future__ import annotations

import numpy as np

from studio.disagreement import (
    COCO_SIGMAS,
    MASK_GRID,
    disagreement,
    keypoint_oks,
    mask_iou,
    unmatched,
)
from studio.runtime.decode_tasks import probiou
from studio.runtime.results import Classification, Detections

LABELS = ("person", "car")


def _detections(boxes, class_ids, **task) -> Detections:
    boxes = np.asarray(boxes, np.float32)
    scores = np.linspace(0.9, 0.5, len(boxes)).astype(np.float32)
    return Detections(boxes, scores, np.asarray(class_ids, np.int64), LABELS, **task)


def _masks(shape, rects) -> np.ndarray:
    out = np.zeros((len(rects), *shape), bool)
    for index, (x1, y1, x2, y2) in enumerate(rects):
        out[index, y1:y2, x1:x2] = True
    return out


def test_identical_masks_agree():
    rects = [(10, 10, 50, 60), (60, 20, 90, 40)]
    a = _detections(rects, [0, 1], masks=_masks((80, 100), rects))
    assert disagreement(a, a) == 0


def test_a_mask_shifted_inside_the_same_box_is_counted_where_boxes_would_agree():
    box = [(10, 10, 50, 50)]
    left = _detections(box, [0], masks=_masks((64, 64), [(10, 10, 30, 50)]))
    right = _detections(box, [0], masks=_masks((64, 64), [(30, 10, 50, 50)]))  # same box, disjoint pixels
    assert disagreement(left, right) == 2
    boxes_only = _detections(box, [0])
    assert disagreement(boxes_only, boxes_only) == 0


def test_mask_iou_counts_pixels():
    boxes_a, boxes_b = np.array([(0, 0, 20, 20)], float), np.array([(10, 0, 30, 20), (30, 30, 40, 40)], float)
    a, b = _masks((40, 40), boxes_a.astype(int)), _masks((40, 40), boxes_b.astype(int))
    iou = mask_iou(a, b, boxes_a, boxes_b)
    assert np.isclose(iou[0, 0], 200 / 600)
    assert iou[0, 1] == 0.0
    only_first = mask_iou(a, b, boxes_a, boxes_b, np.array([[False, True]]))
    assert only_first[0, 0] == 0.0  # a pair the candidates leave out is not computed
    fractional = mask_iou(a, b, boxes_a - 0.4, boxes_b + 0.4)  # boxes in floats cover their masks' pixels
    assert np.isclose(fractional[0, 0], 200 / 600)
    assert mask_iou(a[:0], b, boxes_a[:0], boxes_b).shape == (0, 2)


def _ellipses(shape, boxes) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros((len(boxes), *shape), bool)
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        out[index] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    return out


def test_large_frames_compare_large_masks_on_a_grid_and_small_ones_pixel_by_pixel():
    shape = (1080, 1920)  # far above MASK_GRID samples a side: large instances go through the grid
    assert max(shape) > 4 * MASK_GRID
    boxes_a = np.array([(100, 100, 700, 900), (1000, 200, 1012, 210), (1500, 500, 1509, 507)], float)
    boxes_b = boxes_a + np.array([[90, 0, 90, 0], [0, 0, 0, 0], [5, 0, 5, 0]])  # big one shifted, tiny one same
    a, b = _ellipses(shape, boxes_a), _ellipses(shape, boxes_b)
    iou = mask_iou(a, b, boxes_a, boxes_b)
    exact = [np.count_nonzero(a[i] & b[i]) / np.count_nonzero(a[i] | b[i]) for i in range(3)]
    assert np.allclose(np.diag(iou), exact, atol=0.01), (np.diag(iou), exact)
    assert exact[0] > 0.5 and exact[1] == 1.0 and exact[2] < 0.5
    left = _detections(boxes_a, [0, 1, 1], masks=a)
    assert disagreement(left, left) == 0  # tiny instances a grid would miss still match themselves
    assert disagreement(left, _detections(boxes_b, [0, 1, 1], masks=b)) == 2  # only the tiny shifted one


def _skeleton(centre_x: float, centre_y: float, k: int = 17) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, k, endpoint=False)
    points = np.stack([centre_x + 30 * np.cos(angles), centre_y + 60 * np.sin(angles), np.ones(k)], axis=1)
    return points.astype(np.float32)[None]


def test_identical_keypoints_agree_and_moved_ones_are_counted():
    box = [(70, 40, 130, 160)]
    a = _detections(box, [0], keypoints=_skeleton(100, 100))
    assert disagreement(a, a) == 0
    nudged = _detections(box, [0], keypoints=_skeleton(101, 100))
    assert disagreement(a, nudged) == 0
    moved = _detections(box, [0], keypoints=_skeleton(130, 100))  # the box is unchanged: only OKS sees it
    assert keypoint_oks(a.keypoints, moved.keypoints, a.boxes, moved.boxes)[0, 0] < 0.5
    assert disagreement(a, moved) == 2


def test_oks_follows_cocos_formula():
    a, b = _skeleton(100, 100), _skeleton(103, 100)
    box = np.array([[70, 40, 130, 160]], np.float64)
    area = 60 * 120 * 0.53
    expected = np.exp(-9 / ((2 * COCO_SIGMAS) ** 2 * area * 2)).mean()
    assert np.isclose(keypoint_oks(a, b, box, box)[0, 0], expected, atol=1e-6)


def test_invisible_keypoints_are_not_counted_and_other_skeletons_weigh_points_alike():
    a = _skeleton(100, 100, k=5)
    b = a.copy()
    b[0, 0, :2] += 200  # far off, but seen by neither side
    a[0, 0, 2] = b[0, 0, 2] = 0.1
    box = np.array([[70, 40, 130, 160]], np.float64)
    assert np.isclose(keypoint_oks(a, b, box, box)[0, 0], 1.0, atol=1e-6)
    b[0, 0, 2] = 0.9  # now one side sees it: it counts, and pulls OKS down by one point in five
    assert np.isclose(keypoint_oks(a, b, box, box)[0, 0], 0.8, atol=1e-3)


def test_a_person_whose_keypoints_neither_side_sees_is_judged_by_its_box():
    box = [(70, 40, 130, 160)]
    unseen = _skeleton(100, 100)
    unseen[..., 2] = 0.1
    assert np.isnan(keypoint_oks(unseen, unseen, np.array(box, float), np.array(box, float))[0, 0])
    a = _detections(box, [0], keypoints=unseen)
    assert disagreement(a, a) == 0
    assert disagreement(a, _detections([(130, 40, 190, 160)], [0], keypoints=unseen)) == 2


def test_rotated_boxes_by_probabilistic_iou():
    boxes = np.array([[50, 50, 40, 10, 0.3], [150, 80, 20, 20, 0.0]], np.float32)
    assert np.allclose(np.diag(probiou(boxes, boxes)), 1.0, atol=1e-3)
    upright = [(30, 40, 70, 60), (140, 70, 160, 90)]
    a = _detections(upright, [0, 1], rotated=boxes)
    assert disagreement(a, a) == 0
    turned = boxes.copy()
    turned[0, 4] += np.pi / 2  # the same centre and upright box, the long side now across
    b = _detections(upright, [0, 1], rotated=turned)
    assert disagreement(a, b) == 2


def test_class_must_match_and_empty_sides_count_whole():
    rects = [(10, 10, 50, 60)]
    a = _detections(rects, [0], masks=_masks((80, 100), rects))
    b = _detections(rects, [1], masks=_masks((80, 100), rects))
    assert unmatched(a, b) == 2
    assert unmatched(a, Detections.empty(LABELS)) == 1


def test_classifiers_unchanged():
    first = Classification(np.array([3, 1]), np.array([0.6, 0.3]), ("a", "b", "c", "d"))
    second = Classification(np.array([1, 3]), np.array([0.5, 0.4]), ("a", "b", "c", "d"))
    assert disagreement(first, first) == 0
    assert disagreement(first, second) == 1
